"""The common score format: one ROOT file per model and evaluation set (tree ``scores``).

Branches: run, event, label, energy, weight, score (``amsnb.schema.SCORES``). Every classifier of amsnb
(BDT, likelihood, CoAtNet, CvT, CNN, MDA) writes it (:func:`write_scores`, the one writer), and :mod:`amsnb.metrics`
and the threshold tuner read it, so a user can also bring scores from any other tool by writing these six branches.

:func:`load_scores` is the one reader of score files found rather than just made (notebooks 03, 04, 05, the threshold
tuner, :func:`amsnb.ecal.experiment.target_electron_fraction`): it skips a stale file, one whose model or events
changed since it was written (``amsnb.provenance.is_current``). :func:`on_set` picks one evaluation set of its result.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import io, provenance
from .errors import ConfigError, EmptySelectionError, InputFileError, SchemaError
from .schema import SCORES
from .workdir import Workdir


@dataclass(frozen=True)
class ScoreKind:
    """What a score file's classes and ``energy`` axis are, for readouts and axis labels: the ECAL's electrons
    (label 1) against protons (label 0) in reconstructed energy by default; a nuclei selection's signal nucleus
    against its background in rigidity. Written into the file's provenance stamp (:func:`write_scores`)."""

    signal: str = "electron"
    background: str = "proton"
    axis: str = "energy"
    unit: str = "GeV"

    @property
    def axis_label(self) -> str:
        return f"{self.axis} [{self.unit}]"


#: The ECAL study's classes: what a score file without a recorded kind (or brought from another tool) holds.
ELECTRON_PROTON = ScoreKind()


def score_kind(path: str | os.PathLike) -> ScoreKind:
    """The :class:`ScoreKind` recorded in a score file's stamp; :data:`ELECTRON_PROTON` when none is recorded."""
    stamp = provenance.read_stamp(path)
    kind = (stamp.request.get("kind") if stamp is not None else None) or {}
    return ScoreKind(**kind) if kind else ELECTRON_PROTON


def score_path(workdir: Workdir | str | os.PathLike, model: str, eval_set: str) -> Path:
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    return wd.scores / model / f"{eval_set}.root"


def write_scores(path: str | os.PathLike, *, run, event, label, energy, weight, score,
                 made_by: provenance.Stamp | None = None, kind: ScoreKind = ELECTRON_PROTON) -> Path:
    """Write one score file; all arrays have one entry per event.

    ``made_by``: the stamp of what made the scores (the model's identity and the scored set's), written beside
    the file once it is complete (:mod:`amsnb.provenance`); readers can check it with ``provenance.is_current``.
    ``kind``: what label 1 / label 0 and ``energy`` are (:class:`ScoreKind`), recorded in that stamp when it is not
    the default electron/proton.
    """
    if kind != ELECTRON_PROTON:
        if made_by is None:
            raise ConfigError(f"{path}: a score kind other than electron/proton needs a made_by stamp to record it")
        made_by = replace(made_by, request={**made_by.request, "kind": asdict(kind)})
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


def _current(path: Path, label: str) -> bool:
    """Whether :func:`load_scores` may read a score file (``provenance.is_current``); False, with one line saying
    why, for a stale one. A file without a stamp is read as it is."""
    if provenance.read_stamp(path) is None:
        return True
    current, why = provenance.is_current(path)
    if not current:
        print(f"{label}: {why}; skipped as stale (rerun the notebook that made it)")
    return current


def load_scores(workdir: Workdir | str | os.PathLike | None = None, models=None, sets=None, *,
                files=None) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """{model: {set: arrays}} of every score file in a workdir (``scores/<model>/<set>.root``, :func:`available`),
    or of the score ``files`` given instead (a list, or one string of comma-separated paths and globs; the model is
    a file's folder name and the set its stem); optionally only the given ``models`` / ``sets``, then in their order.

    A score file whose provenance stamp shows that its model or its events changed since it was written (the
    model was retrained, the sets reselected) is stale: it is skipped, and one line says so. Score files without a
    stamp (brought from another tool) are read as they are. Nothing left to read is an :class:`InputFileError`.
    """
    if (workdir is None) == (files is None):
        raise ConfigError("load_scores: give a workdir (its scores/<model>/<set>.root) or score files, one of them")
    if files is not None:
        from .io import expand_files

        paths = expand_files(files)
        if not paths:
            raise ConfigError("score files: the list is empty; give score files (scores/<model>/<set>.root) or a "
                              "workdir")
        found = [(f.parent.name, f.stem, f, str(f)) for f in paths]
    else:
        found = [(m, s, score_path(workdir, m, s), f"scores/{m}/{s}.root")
                 for m, model_sets in available(workdir).items() for s in model_sets]
    models = None if models is None else list(models)
    sets = None if sets is None else list(sets)
    model_rank = {m: i for i, m in enumerate(models if models is not None else dict.fromkeys(f[0] for f in found))}
    found = sorted((f for f in found if f[0] in model_rank and (sets is None or f[1] in sets)),
                   key=lambda f: (model_rank[f[0]], 0 if sets is None else sets.index(f[1])))
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    stale = 0
    for model, s, path, label in found:
        if _current(path, label):
            out.setdefault(model, {})[s] = read_scores(path)
        else:
            stale += 1
    if not out:
        where = f"{workdir}: under scores/," if files is None else f"{len(found)} score file(s) given:"
        raise InputFileError(f"{where} no score files{' for ' + str(models) if models else ''}"
                             f"{' of sets ' + str(sets) if sets else ''} to read ({stale} stale, skipped); "
                             "run notebooks 03/04 (or amsnb.ecal.baselines.ensure_baseline_scores) first")
    return out


def energy_text(models_on_set: dict[str, dict[str, np.ndarray]], unit: str = "GeV") -> str:
    """The energy range of one set's labelled events for a figure's legend, ``"1000-2000 GeV"`` (2 significant
    digits), from the score arrays of :func:`on_set`."""
    e = np.concatenate([np.asarray(a["energy"], float)[np.asarray(a["label"]) >= 0]
                        for a in models_on_set.values()] or [np.zeros(0)])
    if e.size == 0:
        return ""
    lo, hi = (float(f"{x:.2g}") for x in (e.min(), e.max()))
    return f"{lo:g}-{hi:g} {unit}"


def on_set(scores: dict, eval_set: str, models=None) -> dict[str, dict[str, np.ndarray]]:
    """{model: arrays} of the models that have a score file for ``eval_set`` (from :func:`load_scores`)."""
    out = {m: sets[eval_set] for m, sets in scores.items() if eval_set in sets and (models is None or m in models)}
    if not out:
        have = sorted({s for sets in scores.values() for s in sets})
        raise EmptySelectionError(f"no model has scores for the set '{eval_set}'; sets with scores: {have}")
    return out
