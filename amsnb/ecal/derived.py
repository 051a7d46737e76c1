"""The ECAL branches amsnb derives for files that lack them (registered in :mod:`amsnb.derive`).

From the cell image, with the simulation's own reconstruction (:func:`amsnb.ecal.reco.reconstruct`): the energy,
``energy_raw``, the shower axis (``entry_x/y``, ``dxdz/dydz``, estimated from the cells), the shower-shape variables
and ``n_hit_cells``/``n_saturated`` (cells at the nominal ADC saturation, :data:`amsnb.ecal.sim.SATURATION_MEV`);
then ``e_over_r`` from the energy and the rigidity, as the simulation writes it. A branch the file has is never
replaced: only the missing ones are taken from these computations.
"""

from __future__ import annotations

import numpy as np

from ..derive import Derivation, register
from .reco import RECO_BRANCHES, reconstruct


def _from_cells(arrays):
    from .sim import SATURATION_MEV

    with np.errstate(invalid="ignore"):  # NaN cells (kept by nan_policy="keep") give NaN variables, counted later
        return reconstruct(arrays["ecal_edep"], saturation_mev=SATURATION_MEV)


def _e_over_r(arrays):
    rig = np.abs(np.asarray(arrays["rigidity"], np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"e_over_r": np.asarray(arrays["energy"], np.float64) / rig}


CELLS = Derivation("amsnb.ecal.reco.reconstruct (the simulation's reconstruction) from ecal_edep",
                   ("ecal_edep",), RECO_BRANCHES, _from_cells)
E_OVER_R = Derivation("energy / |rigidity|", ("energy", "rigidity"), ("e_over_r",), _e_over_r)

register("ecal", CELLS)
register("ecal", E_OVER_R)
