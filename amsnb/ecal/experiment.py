"""The ECAL e/p experiment of seed 000 around :func:`fit`: sets -> caches -> datasets, model tags, scores, diagnostics.

Seed 000's grid: train on ``mc_low`` (0.2-1 TeV) or ``mc_high`` (1-2 TeV), validate (early stopping) on MC
(a split of ``mc_high``) or on the labeled ISS validation set ``iss_val``, with or without domain adaptation to the
unlabeled ``iss_target``; evaluate on ``mc_test``, ``iss_val``, ``iss_test`` (and score ``iss_target``).
Notebook 04 is a thin story over these functions; every output name derives from :func:`model_tag`, so a sweep
of the notebook writes distinct models and score files into one workdir.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..workdir import Workdir
from .datasets import TABLE1_SETS, TEST_SET, load_manifest

# The set names are defined once, in amsnb.ecal.datasets; the experiment's roles derive from them.
MC_LOW, MC_HIGH, ISS_VAL, ISS_TEST, ISS_TARGET = TABLE1_SETS
TRAIN_SETS = (MC_LOW, MC_HIGH)
VAL_SETS = {"mc": MC_HIGH, "iss": ISS_VAL}
EVAL_SETS = (TEST_SET, ISS_VAL, ISS_TEST, ISS_TARGET)
#: Versions of this module's producers (bump when their output changes for the same request).
TRAIN_VERSION = "1"
SCORES_VERSION = "1"
#: Fraction of mc_high held out for validation when val_set = "mc".
MC_VAL_FRACTION = 0.2
#: Which iss_target events the DANN target holds: "train", those inside the reconstructed-energy range of the
#: training events (the domain head then cannot tell the domains apart by energy alone: the 0.2-2 TeV target
#: against 1-2 TeV mc_high training events is 60 % separable by energy, docs/training.md); "all", the whole
#: 0.2-2 TeV target set, as in seed 000's Table 1.
TARGET_WINDOWS = ("train", "all")


def model_tag(model: str, preset: str, use_da: bool, train_set: str = "mc_high", val_set: str = "iss",
              alignment: str = "dann") -> str:
    """``cvt_tiny_da``, ``coatnet_tiny``, ``cnn_small_da_mclow_valmc``, ``cnn_small_coral``: defaults (mc_high, iss,
    DANN) add nothing; another alignment method replaces ``da`` by its name (``cdan+e``: ``cdane``)."""
    tag = f"{model}_{preset}" + (("_da" if alignment == "dann" else "_" + alignment.replace("+", "")) if use_da
                                 else "")
    if train_set != "mc_high":
        tag += "_" + train_set.replace("_", "")
    if val_set != "iss":
        tag += f"_val{val_set}"
    return tag


@dataclass
class EcalData:
    train: object
    val: object
    target: object
    evaluation: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    #: The parameters that chose these events (part of every model's provenance stamp).
    request: dict = field(default_factory=dict)
    #: Weights of the training events in the domain loss (None: 1), see :func:`prepare`.
    domain_weights: np.ndarray | None = None

    @property
    def da_train(self):
        """The training items as a DANN run sees them (with their domain-loss weights)."""
        return self.train if self.domain_weights is None else self.train.with_domain_weights(self.domain_weights)

    def identities(self, with_target: bool = True) -> dict[str, str]:
        """Identities of the training, validation (and, for DA, target) items (:attr:`EcalDataset.identity`)."""
        if not with_target:
            return {"train": self.train.identity, "val": self.val.identity}
        return {"train": self.da_train.identity, "val": self.val.identity, "target": self.target.identity}


def prepare(wd: Workdir, sets: dict[str, Path], train_set: str = "mc_high", val_set: str = "iss",
            max_train_events: int | None = None, seed: int = 1, cache_dtype: str = "float32",
            progress: bool = True, target_window: str = "train", max_target_events: int | None = None,
            target_electron_fraction: float | None = None, need_target: bool = True) -> EcalData:
    """Cache the selected sets (``wd/cache``) and build the train / validation / target / evaluation datasets.

    At most ``max_train_events`` training events (None or 0: all). The DANN target is ``iss_target`` inside the
    training events' energy range (``target_window="train"``) or all of it (``"all"``, :data:`TARGET_WINDOWS`), at
    most ``max_target_events`` of it (None or 0: all).
    ``target_electron_fraction`` (e.g. :func:`target_electron_fraction`): the training events are weighted by class
    in the domain loss so that their electron share is the target's; the domain head then cannot separate the
    domains by their class mix, and the reversed gradient does not remove class information for that reason.
    ``need_target=False`` (training without DA): a missing ``iss_target`` (notebook 02 made none: no unlabeled
    event) is allowed; ``target`` is then None and the set is not evaluated."""
    from .cache import EcalDataset, build_cache

    max_train_events, max_target_events = max_train_events or None, max_target_events or None  # 0: all
    if train_set not in TRAIN_SETS:
        raise ConfigError(f"train_set='{train_set}': use one of {', '.join(TRAIN_SETS)}")
    if target_window not in TARGET_WINDOWS:
        raise ConfigError(f"target_window='{target_window}': use 'train' (iss_target in the training events' "
                          "energy range) or 'all' (the whole iss_target set)")
    if val_set not in VAL_SETS:
        raise ConfigError(f"val_set='{val_set}': use 'mc' (a split of mc_high) or 'iss' (iss_val)")
    needed = {train_set, VAL_SETS[val_set], ISS_TARGET, *EVAL_SETS}
    if not need_target and ISS_TARGET not in sets:
        needed.discard(ISS_TARGET)
    missing = sorted(n for n in needed if n not in sets)
    if missing:
        why = load_manifest(wd).get("skipped", {})
        if all(n in why for n in missing):  # notebook 02 made no such set, and said why: rerunning it changes nothing
            raise ConfigError("; ".join(why[n] for n in missing))
        raise ConfigError(f"sets {missing} are missing from ensure_ecal_sets' output; rerun notebook 02")
    cache_dir = wd.path / "cache"
    folders = {n: build_cache(sets[n], cache_dir, dtype=cache_dtype, progress=progress) for n in sorted(needed)}
    train = EcalDataset(folders[train_set])
    if val_set == "mc":
        mc_val, mc_rest = EcalDataset(folders[MC_HIGH]).split(MC_VAL_FRACTION, seed=seed)
        val = mc_val
        if train_set == MC_HIGH:
            train = mc_rest
    else:
        val = EcalDataset(folders[ISS_VAL])
    train = train.subset(max_train_events, seed=seed)
    target = EcalDataset(folders[ISS_TARGET], unlabeled=True) if ISS_TARGET in folders else None
    if target is not None and target_window == "train" and len(train):
        e, et = train.column("energy"), target.column("energy")
        target = target.where((et >= e.min()) & (et <= e.max()))
    target = target.subset(max_target_events, seed=seed) if target is not None else None
    dw = None if target_electron_fraction is None else _class_mix_weights(train.labels,
                                                                           float(target_electron_fraction))
    evaluation = {n: EcalDataset(folders[n], unlabeled=(n == ISS_TARGET)) for n in EVAL_SETS if n in folders}
    counts = {"train": _count(train), "val": _count(val), "target": len(target) if target is not None else 0}
    request = {"train_set": train_set, "val_set": val_set, "max_train_events": max_train_events, "seed": seed,
               "cache_dtype": cache_dtype, "target_window": target_window, "max_target_events": max_target_events,
               "target_electron_fraction": target_electron_fraction}
    return EcalData(train, val, target, evaluation, counts, request, dw)


def _class_mix_weights(labels: np.ndarray, electron_fraction: float) -> np.ndarray:
    """Domain-loss weights pi_target(c) / pi_source(c) per training event (mean 1 over the training set)."""
    if not 0.0 <= electron_fraction <= 1.0:
        raise ConfigError(f"target_electron_fraction={electron_fraction}: give the target's electron share in [0, 1]")
    fs = float((labels == 1).mean())
    if not 0.0 < fs < 1.0:
        raise ConfigError("target_electron_fraction: the training set needs electrons and protons")
    return np.where(labels == 1, electron_fraction / fs, (1 - electron_fraction) / (1 - fs)).astype(np.float32)


def target_electron_fraction(wd: Workdir, data: EcalData, reference: str = "bdt", labeled: str = ISS_VAL,
                             efficiency: float = 0.9) -> dict[str, float]:
    """The electron share of the DANN target estimated with a reference classifier's score files (notebook 03's
    BDT by default): adjusted classify-and-count (:func:`amsnb.metrics.class_fraction`) with the rates measured on
    the labeled ISS-like ``labeled`` set, both in the target's energy range. Stale score files are refused
    (:func:`amsnb.scores.load_scores`)."""
    from ..errors import InputFileError
    from ..metrics import class_fraction
    from ..scores import load_scores

    e = data.target.column("energy")
    lo, hi = float(e.min()), float(e.max())
    found = load_scores(wd, [reference], [ISS_TARGET, labeled])[reference]
    missing = sorted({ISS_TARGET, labeled} - set(found))
    if missing:
        raise InputFileError(f"{wd}: scores/{reference}/ has no current score file of {missing}; make them first "
                             "(notebook 03, amsnb.ecal.baselines.ensure_baseline_scores)")
    tgt, ref = found[ISS_TARGET], found[labeled]
    mt = (tgt["energy"] >= lo) & (tgt["energy"] <= hi)
    mr = (ref["energy"] >= lo) & (ref["energy"] <= hi)
    return {**class_fraction(tgt["score"][mt], ref["score"][mr], ref["label"][mr], efficiency),
            "reference": reference, "labeled": labeled, "energy_range": [lo, hi],
            "source_fraction": float((data.train.labels == 1).mean())}


def _count(ds) -> dict[str, int]:
    return {"electrons": int((ds.labels == 1).sum()), "protons": int((ds.labels == 0).sum())}


def score_sets(wd: Workdir, tag: str, model, evaluation: dict, device: str = "cpu", batch_size: int = 512,
               efficiency: float = 0.9) -> dict[str, dict]:
    """Score every evaluation set into ``scores/<tag>/<set>.root`` and summarise rejection and AUC per set.

    Each score file is an :mod:`amsnb.provenance` artefact of the model's training folder and the scored events:
    a file made by the same trained model from the same events is reused (inference on the 2e5-event test sets
    costs minutes), anything else is scored again."""
    from .. import provenance, scores
    from ..metrics import rejection_at_efficiency, roc_auc
    from ..train.trainer import predict

    summary = {}
    for name, ds in evaluation.items():
        path = scores.score_path(wd, tag, name)
        made_by = provenance.Stamp("amsnb.ecal.experiment.scores", SCORES_VERSION, {"tag": tag, "set": name},
                                   {"model": provenance.file_input(model_folder(wd, tag)),
                                    "events": provenance.file_input(ds.cache.folder), "subset": ds.identity})

        def write(p: Path, ds=ds) -> None:
            pred = predict(model, ds, batch_size, device)
            scores.write_scores(p, run=ds.column("run"), event=ds.column("event"), label=ds.column("label"),
                                energy=ds.column("energy"), weight=ds.column("weight"),
                                score=pred["score"].astype(np.float32))

        provenance.ensure(path, made_by, write, label=f"scores/{tag}/{name}", verb="scoring")
        score, lab = scores.read_scores(path)["score"], ds.column("label")
        m = lab >= 0
        info = {"n_events": int(len(lab))}
        if m.any():
            info.update(n_electrons=int((lab == 1).sum()), n_protons=int((lab == 0).sum()))
        if m.any() and len(np.unique(lab[m])) == 2:
            rp = rejection_at_efficiency(score[m], lab[m], efficiency=efficiency)
            info.update(rejection=rp.rejection, rejection_lo=rp.rejection_lo, rejection_hi=rp.rejection_hi,
                        rejection_is_lower_limit=bool(rp.is_lower_limit), threshold=rp.threshold,
                        auc=roc_auc(score[m], lab[m]))
        summary[name] = info
    return summary


#: Events per side of the domain study: a probe AUC from 2 x 20k events has a standard error ~0.003, and predicting
#: the features of two 2e5-event test sets would cost more than the training.
DOMAIN_STUDY_EVENTS = 20_000


def domain_study(model, source, target, device: str = "cpu", seed: int = 0, head_trained: bool = True,
                 max_events: int | None = DOMAIN_STUDY_EVENTS) -> dict:
    """Domain diagnostics on held-out sets (e.g. mc_test vs iss_test, both 1-2 TeV, so only the domain differs):
    the model's domain head (only if it was trained, i.e. with DA), the cross-validated logistic-regression probe
    on the features (:func:`amsnb.train.diagnostics.domain_probe`) and the 2-D PCA projection, on at most
    ``max_events`` random events of each side (the same ones for every model: seeded)."""
    from ..train.diagnostics import domain_head_separation, domain_probe, pca_projection
    from ..train.trainer import predict

    source, target = source.subset(max_events, seed=seed), target.subset(max_events, seed=seed)

    ps = predict(model, source, 512, device, features=True)
    pt = predict(model, target, 512, device, features=True)
    if not head_trained:
        ps["domain_score"] = pt["domain_score"] = np.full(1, np.nan)
    out = {**domain_head_separation(ps["domain_score"], pt["domain_score"]),
           **domain_probe(ps["features"], pt["features"], seed=seed), **_per_class(ps, pt, seed)}
    s2, t2, evr = pca_projection(ps["features"], pt["features"], seed=seed)
    return {"metrics": out, "pca_source": s2, "pca_target": t2, "pca_explained": evr,
            "source_scores": ps, "target_scores": pt}


def _per_class(ps: dict, pt: dict, seed: int) -> dict[str, float]:
    """Which part of the shift is left, per class of the labeled sets: the feature probe on electrons only and on
    protons only, and the AUC of the classifier *score* between the domains (0.5: the same score distribution;
    below 0.5 for electrons: the ISS-like ones look less electron-like, so a threshold fixed on MC keeps fewer)."""
    from ..metrics import roc_auc
    from ..train.diagnostics import domain_probe

    out = {}
    for name, cls in (("electrons", 1), ("protons", 0)):
        ms, mt = ps["label"] == cls, pt["label"] == cls
        if min(ms.sum(), mt.sum()) < 30:
            continue
        out[f"probe_auc_{name}"] = domain_probe(ps["features"][ms], pt["features"][mt], seed=seed)["probe_auc"]
        score = np.concatenate([ps["score"][ms], pt["score"][mt]])
        out[f"score_auc_{name}"] = roc_auc(score, np.r_[np.zeros(ms.sum()), np.ones(mt.sum())])
    return out


def model_folder(wd: Workdir, tag: str) -> Path:
    """The training folder of a model tag, ``models/<tag>/train``: the artefact whose stamp says what made it."""
    return wd.models / tag / "train"


def train_request(model: str, preset: str, data: EcalData, config, seed: int) -> dict:
    """Every parameter that can change a trained model: architecture, training config, seed and the data choice
    (without DA, not the target's)."""
    from ..train.trainer import training_request

    cfg = training_request(config)
    choice = data.request if config.use_da else {k: v for k, v in data.request.items() if k not in _TARGET_KEYS}
    return {"model": model, "preset": preset, "seed": seed, "train_config": cfg, "data": choice}


#: Request keys that choose the DANN target: they do not change a model trained without DA.
_TARGET_KEYS = ("target_window", "max_target_events", "target_electron_fraction")


def train_model(wd: Workdir, tag: str, model: str, preset: str, data: EcalData, config, callbacks=None,
                seed: int = 1, fresh: bool = False, reuse_from: tuple[str, ...] = (), on_model=None):
    """Build ``model``/``preset`` with seed ``seed`` and :func:`fit` it into ``models/<tag>/train``.

    The folder is an :mod:`amsnb.provenance` artefact: a finished model of the same request (architecture,
    training config, seed, training/validation/target events) is reused (fit returns it at once with its best
    weights); an interrupted one resumes from its checkpoint; anything else is trained afresh, and one line says
    why (``models/cnn_small: data.max_train_events 200 -> 600, retraining``). ``reuse_from``: other tags whose
    finished model, if made by exactly this request, is returned instead of training the same model twice (the
    learning curve's largest point is often notebook 04's model without DA). ``on_model``: called with the built
    network before training (e.g. to bind an :class:`amsnb.train.selection.EpochPredictions` callback to it).
    """
    from .. import provenance
    from ..models import build
    from ..train.trainer import fit

    folder = model_folder(wd, tag)
    stamp = provenance.Stamp("amsnb.ecal.experiment.train", TRAIN_VERSION,
                             train_request(model, preset, data, config, seed), data.identities(config.use_da))
    out = {}
    if not fresh:
        for other in reuse_from:
            if other != tag and provenance.decide(model_folder(wd, other), stamp).action == "reuse":
                provenance.report(f"models/{tag}", "reuse", f"the same request as models/{other}")
                tag, folder = other, model_folder(wd, other)
                break

    def run(outdir: Path) -> bool:
        net = build(model, preset, seed=seed)
        if on_model is not None:
            on_model(net)
        out["result"] = fit(net, data.da_train if config.use_da else data.train, data.val,
                            data.target if config.use_da else None, config, outdir,
                            callbacks=callbacks)
        return out["result"].finished

    decision = provenance.ensure(folder, stamp, run, resumable=True, fresh=fresh, label=f"models/{tag}",
                                 verb="training", quiet_reuse=bool(reuse_from) and tag in reuse_from)
    if decision.action == "reuse":
        run(folder)  # a finished checkpoint: fit loads the best weights and returns without training
    return out["result"]


def publish(wd: Workdir, tag: str, result, model: str, preset: str, data: EcalData, device: str = "cpu",
            extra: dict | None = None, seed: int = 0) -> tuple[dict, dict]:
    """Export ``models/<tag>/`` (safetensors + config + ONNX, checked on real showers) and write its score files;
    returns (export summary, per-set score summary). Both are always rewritten from the trained model (cheap next
    to training) and stamped with the identity of its training folder."""
    from .. import provenance
    from ..export import export_model

    folder = wd.models / tag
    provenance.invalidate(folder)
    export = export_model(folder, result.model, model, preset, extra={"tag": tag, **(extra or {})},
                          real_inputs=data.evaluation["iss_test"].sample_images(32, seed))
    provenance.commit(folder, provenance.Stamp("amsnb.ecal.experiment.export", TRAIN_VERSION, {"tag": tag},
                                               {"model": provenance.file_input(model_folder(wd, tag))}))
    result.model.to(device)
    return export, score_sets(wd, tag, result.model, data.evaluation, device)
