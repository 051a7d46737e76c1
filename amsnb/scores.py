"""The common score format: one ROOT file per model and evaluation set (tree ``scores``).

Branches: run, event, label, energy, weight, score (``amsnb.schema.SCORES``). Every classifier of amsnb
(BDT, likelihood, CoAtNet, CvT, CNN, MDA) writes it, and :mod:`amsnb.metrics` and the threshold tuner read it,
so a user can also bring scores from any other tool by writing these six branches.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import io, provenance
from .errors import SchemaError
from .schema import SCORES
from .workdir import Workdir


def score_path(workdir: Workdir | str | os.PathLike, model: str, eval_set: str) -> Path:
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    return wd.scores / model / f"{eval_set}.root"


def write_scores(path: str | os.PathLike, *, run, event, label, energy, weight, score,
                 made_by: provenance.Stamp | None = None) -> Path:
    """Write one score file; all arrays have one entry per event.

    ``made_by``: the stamp of what made the scores (the model's identity and the scored set's), written beside
    the file once it is complete (:mod:`amsnb.provenance`); readers can check it with ``provenance.is_current``.
    """
    provenance.invalidate(path)
    arrays = {"run": run, "event": event, "label": label, "energy": energy, "weight": weight, "score": score}
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    bad = int((~np.isfinite(arrays["score"].astype(float))).sum())
    if bad:
        raise SchemaError(f"{path}: {bad} scores are NaN/inf; a model produced invalid outputs")
    out = io.write(path, arrays, SCORES)
    if made_by is not None:
        provenance.commit(path, made_by)
    return out


def read_scores(path: str | os.PathLike) -> dict[str, np.ndarray]:
    return io.read(path, SCORES)


def available(workdir: Workdir | str | os.PathLike) -> dict[str, list[str]]:
    """{model: [sets with a score file]} found in a workdir."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    out = {}
    if not wd.scores.is_dir():
        return out
    for d in sorted(p for p in wd.scores.iterdir() if p.is_dir()):
        sets = sorted(f.stem for f in d.glob("*.root"))
        if sets:
            out[d.name] = sets
    return out
