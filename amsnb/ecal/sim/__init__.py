"""Physics-based fast simulation of electrons and protons in the AMS-02 ECAL, written in the amsnb schema
(``docs/simulation.md``). One module per idea; this package re-exports their API, so ``from amsnb.ecal import sim``
and ``sim.simulate(...)`` work as before:

- :mod:`~amsnb.ecal.sim.physics`: constants with their sources, the ``mc``/``iss`` domains (:class:`EcalDomain`,
  :data:`DOMAINS`), :class:`ProtonModel`, fluxes, GFLASH showers, readout, tracker and TRD;
- :mod:`~amsnb.ecal.sim.events`: :func:`simulate` (seeding, blocks, weights, reconstruction into the schema arrays)
  and the seeding of chunks (``ROOT_CHUNK``: chunk ``k`` is seeded by ``(seed, k)``);
- :mod:`~amsnb.ecal.sim.table1`: the Table-1 preset (:class:`SetSpec`, ``TABLE1``, ``TEST_SAMPLE``) and the seeding
  of a set's chunks;
- :mod:`~amsnb.ecal.sim.engine`: the parallel engine (worker pool, shared memory, ROOT writing):
  :func:`simulate_chunked`, :func:`simulate_to_root`, :func:`n_workers`;
- :mod:`~amsnb.ecal.sim.artefacts`: :func:`table1_sizes`, :func:`write_set`, :func:`generate_table1`;
- :mod:`~amsnb.ecal.sim.digest`: :func:`generator_digest`, the code version of a Table-1 file, over exactly the
  source that determines its events (``DIGEST_FILES``: physics, events, table1, ``_kernels``, ``reco``, and the
  ECAL part of the schema; not the engine);
- :mod:`~amsnb.ecal.sim.cli`: ``amsnb simulate ecal`` (:func:`cli_main`).
"""

from __future__ import annotations

from dataclasses import replace

from .artefacts import TEST_ELECTRON_FRACTION, generate_table1, table1_sizes, write_set
from .cli import cli_main
from .digest import DIGEST_FILES, generator_digest
from .engine import WRITE_BASKET, n_workers, simulate_chunked, simulate_to_root
from .events import BLOCK, ROOT_CHUNK, simulate
from .physics import (
    DEPTH_CM,
    DEPTH_X0,
    DOMAINS,
    E_CRIT_GEV,
    E_HAT,
    F_S,
    FACE_HALF_CM,
    HAD_START_X0,
    IS_X,
    LAMBDA_I_CM,
    LAYER_X0,
    LAYER_Z,
    MDR_GV,
    MIN_LAYER_MEV,
    MIP_MPV_MEV,
    MIP_WIDTH,
    MOLIERE_CM,
    MS_TERM,
    PHOTON_CONV_X0,
    PHOTON_DT_MAX_X0,
    PROTON_INDEX,
    SATURATION_MEV,
    STOCHASTIC,
    V_MIN,
    V_REF,
    WINDOW,
    X0_CM,
    Z_EFF,
    EcalDomain,
    ProtonModel,
    flux,
    get_domain,
    gflash_parameters,
    p_over_e,
    radial_containment,
    radial_parameters,
)
from .table1 import TABLE1, TEST_SAMPLE, SetSpec

__all__ = [
    # simulation (events)
    "simulate", "EcalDomain", "ProtonModel", "DOMAINS", "get_domain", "replace", "BLOCK", "ROOT_CHUNK",
    # physics: parametrisations and constants (docs/simulation.md, physics.md)
    "flux", "p_over_e", "radial_containment", "gflash_parameters", "radial_parameters", "MOLIERE_CM", "E_CRIT_GEV",
    "Z_EFF", "LAMBDA_I_CM", "DEPTH_CM", "DEPTH_X0", "F_S", "E_HAT", "STOCHASTIC", "SATURATION_MEV", "MIP_MPV_MEV",
    "MIP_WIDTH", "MDR_GV", "MS_TERM", "PROTON_INDEX", "V_MIN", "V_REF", "WINDOW", "PHOTON_CONV_X0", "PHOTON_DT_MAX_X0",
    "MIN_LAYER_MEV", "HAD_START_X0", "FACE_HALF_CM", "X0_CM", "LAYER_X0", "LAYER_Z", "IS_X",
    # engine
    "simulate_to_root", "simulate_chunked", "n_workers", "WRITE_BASKET",
    # Table 1
    "SetSpec", "TABLE1", "TEST_SAMPLE", "TEST_ELECTRON_FRACTION", "table1_sizes", "write_set", "generate_table1",
    "generator_digest", "DIGEST_FILES",
    # CLI
    "cli_main",
]
