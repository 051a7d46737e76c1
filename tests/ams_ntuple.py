"""Test support: rewrite an amsnb schema file as a flat AMS-style ntuple, as analysts really have them.

The ECAL as sparse hits (1-based plane and cell, energies in GeV, in a record so the branches share one counter),
only energy, rigidity, tracker charge, TRD, track chi2, run/event and Geant3 particle codes, in the tree
``amsnt/data``; flight-like events (domain 1) get UNIX-time run numbers. Optional defects, as real files have them:
NaN energies, hits split in two (duplicates), out-of-range hits. Read it with amsnb/data/example_sparse_mapping.yaml.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from amsnb import io

MAPPING = Path(io.__file__).parent / "data" / "example_sparse_mapping.yaml"
TAG_MAPPING = Path(io.__file__).parent / "data" / "example_flight_tag_mapping.yaml"
FLIGHT_RUN0 = 1_300_000_000


def write_ams_ntuple(src, out, seed: int = 0, n_nan: int = 0, n_duplicates: int = 0, n_out_of_range: int = 0,
                     truth: bool = True):
    """Write ``src`` (an amsnb ECAL file) as an AMS-style ntuple ``out``; returns ``out``.

    ``truth=False``: no MCParticle_G3 branch, as flight files have none (read them with a mapping that declares a
    tag, e.g. amsnb/data/example_flight_tag_mapping.yaml).
    ``n_nan`` events get a NaN energy, ``n_duplicates`` events a hit split into two halves at the same cell,
    ``n_out_of_range`` events an extra hit at plane 19 (outside 1..18)."""
    a = io.read(src)
    n = len(a["event"])
    rng = np.random.default_rng(seed)
    ev, layer, cell = np.nonzero(a["ecal_edep"])
    edep = a["ecal_edep"][ev, layer, cell].astype(np.float64) / 1000.0  # GeV
    extra_ev, extra_l, extra_c, extra_e = [], [], [], []
    if n_duplicates:
        for e in rng.choice(np.unique(ev), n_duplicates, replace=False):
            i = np.flatnonzero(ev == e)[0]
            edep[i] *= 0.5
            extra_ev.append(e), extra_l.append(layer[i]), extra_c.append(cell[i]), extra_e.append(edep[i])
    for e in rng.choice(n, n_out_of_range, replace=False):
        extra_ev.append(e), extra_l.append(18), extra_c.append(0), extra_e.append(0.001)  # 0-based 18 = plane 19
    if extra_ev:
        ev = np.concatenate([ev, extra_ev])
        layer = np.concatenate([layer, extra_l])
        cell = np.concatenate([cell, extra_c])
        edep = np.concatenate([edep, extra_e])
        order = np.argsort(ev, kind="stable")
        ev, layer, cell, edep = ev[order], layer[order], cell[order], edep[order]
    counts = np.bincount(ev, minlength=n)
    energy = a["energy"].copy()
    energy[rng.choice(n, n_nan, replace=False)] = np.nan
    code = np.where(a["label"] == 0, 14, np.where(a["label"] < 0, 0, np.where(rng.random(n) < 0.5, 2, 3)))
    run = np.where(a["domain"] == 1, FLIGHT_RUN0 + a["run"], a["run"]).astype(np.int64)
    data = {
        "Run": run, "Event": a["event"].astype(np.int64), "EcalEnergyE": energy,
        "TrkRigidityInner": a["rigidity"], "TrkChargeInner": a["tracker_charge"], "TrdLogLikelihood": a["trd_llr"],
        "TrkChi2": a["track_chi2"],
        **({"MCParticle_G3": code.astype(np.int32)} if truth else {}),
        "EcalHit": ak.zip({"Plane": ak.unflatten((layer + 1).astype(np.int16), counts),
                           "Cell": ak.unflatten((cell + 1).astype(np.int16), counts),
                           "Edep": ak.unflatten(edep.astype(np.float32), counts)}),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(out) as f:
        types = {k: (v.dtype if isinstance(v, np.ndarray) else v.type) for k, v in data.items()}
        f.mktree("amsnt/data", types, field_name=lambda outer, inner: f"{outer}_{inner}")
        f["amsnt/data"].extend(data)
    return out
