"""The MDA's training sets, its training in the run folder and its scores (notebook 06 trains, notebook 07 reuses).

A model lands in ``models/mda_{Si,P,S}[_tag]/`` (safetensors + JSON, with the training history), its scores in
``scores/mda_{name}/{set}.root``. Both are :mod:`amsnb.provenance` artefacts, so a re-run reuses or resumes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import EmptySelectionError
from ..workdir import Workdir
from . import graph
from . import selections as selection

Arrays = dict[str, np.ndarray]

#: Producer names in the stamps of the models and score files. They still name the module that made them first:
#: a new name would retrain every model of an existing run folder for nothing.
TRAIN_PRODUCER = "amsnb.nuclei.study.train"
SCORES_PRODUCER = "amsnb.nuclei.study.scores"

#: Version of the MDA training recipe of :func:`train` (bump when its output changes for the same request).
TRAIN_VERSION = "1"


def split(arrays: Mapping[str, np.ndarray], frac: float = 0.8, seed: int = 0) -> tuple[Arrays, Arrays]:
    """Random train/validation split (the seed: 80 % training, 20 % testing)."""
    n = len(arrays["q_inner"])
    perm = np.random.default_rng(seed).permutation(n)
    k = int(frac * n)
    return selection.take(arrays, perm[:k]), selection.take(arrays, perm[k:])


def event_keys(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """One integer per event (primary Z, run, event): tells whether two sets share events."""
    return (arrays["z_primary"].astype(np.int64) * 10**6 + arrays["run"].astype(np.int64)) * 10**9 + \
        arrays["event"].astype(np.int64)


def composition_weights(arrays: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-event weights that give ``arrays`` the species composition of ``reference`` (its abundance-weighted
    shares per primary Z), normalised to mean 1; species absent from ``arrays`` are left out of the reference."""
    z = arrays["z_primary"]
    zr, wr = reference["z_primary"], reference["weight"].astype(float)
    species = np.unique(z)
    ref = {int(v): wr[zr == v].sum() for v in species}
    tot = sum(ref.values())
    if tot <= 0:
        raise EmptySelectionError("composition_weights: the reference has none of the species of the set")
    share = {v: (z == v).mean() for v in ref}
    w = np.array([ref[int(v)] / tot / share[int(v)] for v in z])
    return (w / w.mean()).astype(np.float32)


def physical_draw(arrays: Mapping[str, np.ndarray], seed: int = 0, min_share: float = 0.01) -> Arrays:
    """Unweighted MC events with the physical composition, as many as the species allow: each species' share is its
    summed abundance weight; the largest n for which every species of share >= ``min_share`` has n x share distinct
    events is drawn without replacement (rarer species are left out). Larger than
    :func:`amsnb.nuclei.physical_subsample` (which keeps each event with probability w / max w) when the rare species
    of a selection are well simulated."""
    z = arrays["z_primary"]
    w = arrays["weight"].astype(float)
    species = np.unique(z)
    share = {int(v): w[z == v].sum() / w.sum() for v in species}
    keep = {v: f for v, f in share.items() if f >= min_share}
    n = int(min((z == v).sum() / f for v, f in keep.items()))
    rng = np.random.default_rng([seed, 29])
    idx = np.concatenate([rng.choice(np.flatnonzero(z == v), int(round(n * f)), replace=False)
                          for v, f in keep.items() if int(round(n * f)) > 0])
    out = selection.take(arrays, rng.permutation(idx))
    out["weight"] = np.ones(len(idx), np.float32)
    return out


@dataclass
class TrainingSets:
    """The events of one selection's MDA: MC training and validation sets (the seed's composition), the unlabeled
    data-like DANN target, and the two held-out sets of the domain probe (MC of the physical composition never
    trained on, data never used as target). ``train``, ``val``, ``target`` are the network datasets
    (:class:`amsnb.nuclei.NucleiDataset`); ``composition`` is ``{Z: (events, distinct events)}`` of the MC set."""
    z_sel: int
    train_arrays: Arrays
    val_arrays: Arrays
    target_arrays: Arrays
    probe_mc_arrays: Arrays = field(default_factory=dict)
    probe_data_arrays: Arrays = field(default_factory=dict)
    composition: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, sets: TrainingSets | Mapping, z_sel: int) -> TrainingSets:
        """``sets`` itself, or the sets of a mapping with ``train_arrays``, ``val_arrays``, ``target_arrays``."""
        if isinstance(sets, TrainingSets):
            return sets
        return cls(int(z_sel), sets["train_arrays"], sets["val_arrays"], sets["target_arrays"],
                   sets.get("probe_mc_arrays", {}), sets.get("probe_data_arrays", {}), sets.get("composition", {}))

    @cached_property
    def train(self) -> graph.NucleiDataset:
        a = self.train_arrays
        return graph.NucleiDataset(a, selection.labels(a, self.z_sel), domain_weight=a.get("domain_weight"))

    @cached_property
    def val(self) -> graph.NucleiDataset:
        return graph.NucleiDataset(self.val_arrays, self.val_labels)

    @cached_property
    def target(self) -> graph.NucleiDataset:
        return graph.NucleiDataset(self.target_arrays, None, domain=1)

    @property
    def val_labels(self) -> np.ndarray:
        """1 signal / 0 background of the validation events (MC truth)."""
        return selection.labels(self.val_arrays, self.z_sel)

    @property
    def probe_sizes(self) -> tuple[int, int]:
        """Held-out events of the domain probe: (MC, data)."""
        return len(self.probe_mc_arrays["q_inner"]), len(self.probe_data_arrays["q_inner"])


def make_datasets(mc: Mapping[int, Mapping], data: Mapping[int, Mapping], z_sel: int, n_train: int, seed: int = 1,
                  n_target: int | None = None, target_frac: float = 0.5, domain_reweight: bool = True,
                  ) -> TrainingSets:
    """The :class:`TrainingSets` of selection ``z_sel``.

    The data-like events passing the selection are split once: at most ``target_frac`` of them (and at most
    ``n_target``) are the DANN target, the rest is never seen in training (``probe_data_arrays``). The MC side of the
    probe (``probe_mc_arrays``) is the global MC of the selection minus every training and validation event,
    resampled to the physical composition, so MC and data enter the probe with the same mix of species: a probe
    comparing the seed's 50 % signal composition with the data's physical mix measures the composition, not the
    detector.

    ``domain_reweight``: the training events carry ``domain_weight`` (:func:`composition_weights` to the global MC
    of the selection), so the DANN domain term compares MC and data of the same composition (the label loss keeps
    the seed's composition). Without it the domain head can tell the 50 % signal MC from the ~90-99 % signal data
    by the species alone, and the adversary pushes against the signal/background separation.
    """
    ts = selection.training_set(mc, z_sel, n_train, seed=seed, strict=False)
    tr, va = split(ts, 0.8, seed)
    dd = selection.pooled_set(data, z_sel)
    nd = len(dd["q_inner"])
    k = int(min(nd * target_frac, nd if n_target is None else n_target))
    if k < 10 or nd - k < 10:
        raise EmptySelectionError(f"{selection.selection(z_sel).name} selection: {nd} data-like events; the DANN "
                                  "target and the held-out probe need at least 10 each (simulate more data)")
    perm = np.random.default_rng([seed, 17]).permutation(nd)
    target, probe_data = selection.take(dd, perm[:k]), selection.take(dd, perm[k:])
    glob = selection.pooled_set(mc, z_sel)
    held = ~np.isin(event_keys(glob), event_keys(ts))
    probe_mc = physical_draw(selection.take(glob, held), seed=seed)
    if domain_reweight:
        tr["domain_weight"] = composition_weights(tr, glob)
    return TrainingSets(int(z_sel), tr, va, target, probe_mc, probe_data, selection.unique_counts(ts))


def model_name(z_sel: int, tag: str = "") -> str:
    """``mda_<species>[_tag]``: the model's folder under ``models/`` and its scores' under ``scores/``."""
    return f"mda_{selection.selection(z_sel).name}" + (f"_{tag}" if tag else "")


def train(wd: Workdir, sets: TrainingSets | Mapping, z_sel: int, train_config: Mapping,
          model_config: Mapping | str | None = None, tag: str = "", retrain: bool = False, fresh: bool = False):
    """Train (or load the finished) MDA for selection ``z_sel`` with :func:`amsnb.train.fit`.

    The model is saved in ``models/<name>/`` with its training history and the input-normalisation buffers. The
    folder is an :mod:`amsnb.provenance` artefact: a finished model is reused only if it was trained with the same
    training and model configs on the same events (a digest of the training, validation and target arrays); an
    interrupted training of the same request resumes from ``models/<name>/train/``; anything else retrains, and
    one line says why. ``retrain`` (or ``fresh``) forces training.
    """
    from .. import provenance
    from ..models import build, load_model, save_model
    from ..train.trainer import TrainConfig, fit, training_request
    from .model import fit_normalization

    sets = TrainingSets.of(sets, z_sel)
    name = model_name(z_sel, tag)
    folder = wd.models / name
    tc = dict(train_config)
    tc.setdefault("early_stopping_metric", "auc")
    cfg = TrainConfig.from_dict(tc)
    request = {"train_config": training_request(cfg),
               "model_config": model_config, "selection": int(z_sel)}
    inputs = {k: provenance.array_digest(getattr(sets, f"{k}_arrays")) for k in ("train", "val", "target")}
    stamp = provenance.Stamp(TRAIN_PRODUCER, TRAIN_VERSION, request, inputs)
    unfinished = {}

    def run(path: Path) -> bool:
        model = build("mda", model_config, seed=cfg.seed)
        fit_normalization(model, sets.train)
        res = fit(model, sets.train, sets.val, sets.target if cfg.use_da else None, cfg, path / "train",
                  collate_fn=graph.collate)
        if not res.finished:  # a time-sliced run (stop_after_epoch): stays pending, resumed by the next call
            unfinished["model"] = res.model
            return False
        extra = {"history": res.history, "best_epoch": res.best_epoch, "selection": int(z_sel),
                 "use_da": cfg.use_da, "train_events": len(sets.train), "target_events": len(sets.target)}
        save_model(path, res.model, "mda", extra=extra)
        return True

    provenance.ensure(folder, stamp, run, resumable=True, fresh=fresh or retrain, label=f"models/{name}",
                      verb="training")
    return unfinished.get("model") or load_model(folder)


def history(model) -> list[dict]:
    """The per-epoch training history saved with the model (for :func:`amsnb.plotting.training.plot_history`)."""
    return list(getattr(model, "amsnb_extra", {}).get("history", []))


def score(model, arrays: Mapping[str, np.ndarray]) -> dict:
    """MDA outputs for NUCLEI arrays (:func:`amsnb.train.predict`): ``score`` (P signal), ``domain_score``,
    ``attention`` (n, 4), ``features``, ``label``, ``weight``."""
    from ..train.trainer import predict

    return predict(model, graph.NucleiDataset(arrays), 2048, collate_fn=graph.collate, features=True)


def write_score_file(wd: Workdir, model_tag: str, set_name: str, arrays: Mapping[str, np.ndarray], z_sel: int,
                     scores: np.ndarray) -> Path:
    """The MDA's scores of one set through :func:`amsnb.scores.write_scores`: label 1 signal / 0 background (-1 for
    data), energy = |rigidity inner+L1|; stamped with the model folder and a digest of the scored events."""
    from .. import provenance
    from .. import scores as sc

    lab = selection.labels(arrays, z_sel) if (arrays["z_primary"] >= 0).all() and set_name != "data" \
        else np.full(len(scores), -1, np.int8)
    made_by = provenance.Stamp(SCORES_PRODUCER, TRAIN_VERSION, {"model": model_tag, "set": set_name},
                               {"model": provenance.file_input(wd.models / model_tag),
                                "events": provenance.array_digest({"run": arrays["run"], "event": arrays["event"]})})
    return sc.write_scores(sc.score_path(wd, model_tag, set_name), run=arrays["run"], event=arrays["event"],
                           label=lab, energy=np.abs(arrays["rig_inl1"]).astype(np.float32),
                           weight=arrays["weight"], score=np.asarray(scores, np.float32), made_by=made_by,
                           kind=sc.ScoreKind(signal=f"Z={z_sel} nucleus", background="background",
                                             axis="|rigidity|", unit="GV"))
