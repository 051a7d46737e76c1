"""The workflow of notebooks 06 and 07: samples in the workdir, one MDA per selection, scores, domain checks.

Everything lands in the run folder (``amsnb.workdir``): ``data/nuclei/{mc,data}_Z{z}.root`` (one file per species
and domain), ``models/mda_{Si,P,S}[_tag]/`` (safetensors + JSON, with the training history) and
``scores/mda_{name}/{set}.root``. Each step reuses what is already there, so a re-run resumes.

MC is simulated with the same number of events per species (the seed's per-species MC) and reweighted to the
physical abundances ("global MC"); the data-like domain is simulated with counts proportional to the abundances,
so its events are unweighted with the physical composition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EmptySelectionError
from ..metrics import auc_with_error
from ..workdir import Workdir
from . import graph
from . import selections as selection


def data_counts(n_si: int, z: Sequence[int]) -> dict[int, int]:
    """Events per species for the data-like domain: proportional to the abundance, ``n_si`` silicon nuclei."""
    from .sim import ABUNDANCE

    return {int(zz): max(1, int(round(n_si * ABUNDANCE[int(zz)] / ABUNDANCE[14]))) for zz in z}


def ensure_samples(wd: Workdir, n_mc: int, n_data_si: int, z: Sequence[int] | None = None, seed: int = 1,
                   x_l1l2: float | None = None, progress: bool = True,
                   fresh: bool = False) -> dict[str, dict[int, Path]]:
    """Simulate (or reuse) ``{mc,data}_Z{z}.root`` in ``wd.nuclei_data``; returns ``{"mc": {z: path}, "data": ...}``.

    Each file is an :mod:`amsnb.provenance` artefact: reused only if the same simulation code made it with the same
    number of events, species, domain, seed and detector configuration; otherwise simulated again (one line says
    why). ``x_l1l2`` (g/cm2 between L1 and L2) changes the simulation; a different value writes to a subfolder
    ``x{value}`` so scans do not overwrite each other's files.
    """
    from tqdm.auto import tqdm

    from .. import provenance
    from . import sim

    zs = tuple(sim.GLOBAL_Z if z is None else z)
    cfg = sim.DEFAULT_CONFIG if x_l1l2 is None else replace(sim.DEFAULT_CONFIG, x_l1l2=float(x_l1l2))
    folder = wd.nuclei_data if x_l1l2 is None or x_l1l2 == sim.DEFAULT_CONFIG.x_l1l2 else \
        wd.nuclei_data / f"x{float(x_l1l2):g}"
    counts = {"mc": {int(zz): int(n_mc) for zz in zs}, "data": data_counts(n_data_si, zs)}
    jobs = [(d, zz, n) for d in ("mc", "data") for zz, n in counts[d].items()]
    out: dict[str, dict[int, Path]] = {"mc": {}, "data": {}}
    version = sim.generator_digest()
    for d, zz, n in tqdm(jobs, desc="nuclei samples", disable=not progress, leave=False):
        path = folder / f"{d}_Z{zz}.root"
        s = seed * 1000 + zz + (500 if d == "data" else 0)
        stamp = provenance.Stamp("amsnb.nuclei.sim", version, {"n": n, "z": [zz], "domain": d, "seed": s,
                                                                "config": sim.config_dict(cfg)})
        provenance.ensure(path, stamp, lambda p, n=n, zz=zz, d=d, s=s:
                          sim.simulate_to_root(p, n, (zz,), d, seed=s, config=cfg, progress=False),
                          fresh=fresh, label=f"{folder.relative_to(wd.path).as_posix()}/{path.name}",
                          verb="simulating")
        out[d][zz] = path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.json").write_text(json.dumps({"counts": counts, "seed": seed, "x_l1l2": cfg.x_l1l2},
                                                    indent=2))
    return out


def load(paths: Mapping[int, Path]) -> dict[int, dict[str, np.ndarray]]:
    from .. import io
    from ..schema import NUCLEI

    return {z: io.read(p, NUCLEI) for z, p in paths.items()}


def split(arrays: Mapping[str, np.ndarray], frac: float = 0.8, seed: int = 0):
    """Random train/validation split (the seed: 80 % training, 20 % testing)."""
    n = len(arrays["q_inner"])
    perm = np.random.default_rng(seed).permutation(n)
    k = int(frac * n)
    return selection.take(arrays, perm[:k]), selection.take(arrays, perm[k:])


def make_datasets(mc: Mapping[int, Mapping], data: Mapping[int, Mapping], z_sel: int, n_train: int, seed: int = 1,
                  n_target: int | None = None) -> dict:
    """Training/validation MC sets with the seed's composition and the unlabeled data-like target set."""
    ts = selection.training_set(mc, z_sel, n_train, seed=seed, strict=False)
    tr, va = split(ts, 0.8, seed)
    dd = selection.pooled_set(data, z_sel)
    if n_target is not None and len(dd["q_inner"]) > n_target:
        dd = selection.take(dd, np.random.default_rng(seed).choice(len(dd["q_inner"]), n_target, replace=False))
    return {"train_arrays": tr, "val_arrays": va, "target_arrays": dd,
            "train": graph.NucleiDataset(tr, selection.labels(tr, z_sel)),
            "val": graph.NucleiDataset(va, selection.labels(va, z_sel)),
            "target": graph.NucleiDataset(dd, None, domain=1),
            "composition": selection.unique_counts(ts)}


def model_name(z_sel: int, tag: str = "") -> str:
    return f"mda_{selection.selection(z_sel).name}" + (f"_{tag}" if tag else "")


#: Version of the MDA training recipe of :func:`train` (bump when its output changes for the same request).
TRAIN_VERSION = "1"


def train(wd: Workdir, sets: Mapping, z_sel: int, train_config: Mapping, model_config: Mapping | str | None = None,
          tag: str = "", retrain: bool = False, fresh: bool = False):
    """Train (or load the finished) MDA for selection ``z_sel`` with :func:`amsnb.train.fit`.

    The model is saved in ``models/<name>/`` with its training history and the input-normalisation buffers. The
    folder is an :mod:`amsnb.provenance` artefact: a finished model is reused only if it was trained with the same
    training and model configs on the same events (a digest of the training, validation and target arrays); an
    interrupted training of the same request resumes from ``models/<name>/train/``; anything else retrains, and
    one line says why. ``retrain`` (or ``fresh``) forces training.
    """
    from .. import provenance
    from ..models import build, load_model, save_model
    from ..train.trainer import _RESUMABLE_CHANGES, TrainConfig, fit
    from .model import fit_normalization

    name = model_name(z_sel, tag)
    folder = wd.models / name
    tc = dict(train_config)
    tc.setdefault("early_stopping_metric", "auc")
    cfg = TrainConfig.from_dict(tc)
    request = {"train_config": {k: v for k, v in tc.items() if k not in _RESUMABLE_CHANGES},
               "model_config": model_config, "selection": int(z_sel)}
    inputs = {k: provenance.array_digest(sets[f"{k}_arrays"]) for k in ("train", "val", "target")}
    stamp = provenance.Stamp("amsnb.nuclei.study.train", TRAIN_VERSION, request, inputs)
    unfinished = {}

    def run(path: Path) -> bool:
        model = build("mda", model_config, seed=cfg.seed)
        fit_normalization(model, sets["train"])
        res = fit(model, sets["train"], sets["val"], sets["target"] if cfg.use_da else None, cfg, path / "train",
                  collate_fn=graph.collate)
        if not res.finished:  # a time-sliced run (stop_after_epoch): stays pending, resumed by the next call
            unfinished["model"] = res.model
            return False
        extra = {"history": res.history, "best_epoch": res.best_epoch, "selection": int(z_sel),
                 "use_da": cfg.use_da, "train_events": len(sets["train"]), "target_events": len(sets["target"])}
        save_model(path, res.model, "mda", extra=extra)
        return True

    provenance.ensure(folder, stamp, run, resumable=True, fresh=fresh or retrain, label=f"models/{name}",
                      verb="training")
    return unfinished.get("model") or load_model(folder)


def history(model) -> list[dict]:
    return list(getattr(model, "amsnb_extra", {}).get("history", []))


def domain_accuracy(model, mc_ds: graph.NucleiDataset, data_ds: graph.NucleiDataset, seed: int = 0) -> float:
    """Accuracy of the model's domain head on equal numbers of MC and data events (0.5 = indistinguishable)."""
    from ..train.trainer import predict

    if getattr(model, "domain_head", None) is None:
        raise ConfigError("domain_accuracy: the model has no domain head (build it with domain_head=True)")
    k = min(len(mc_ds), len(data_ds))
    if k == 0:
        raise EmptySelectionError("domain_accuracy: the MC or the data set is empty")
    rng = np.random.default_rng(seed)
    pm = predict(model, _subset(mc_ds, rng.choice(len(mc_ds), k, replace=False)), 2048,
                 collate_fn=graph.collate)["domain_score"]
    pd = predict(model, _subset(data_ds, rng.choice(len(data_ds), k, replace=False)), 2048,
                 collate_fn=graph.collate)["domain_score"]
    return float(((pm < 0.5).sum() + (pd >= 0.5).sum()) / (2 * k))


def domain_probe(model, mc_ds: graph.NucleiDataset, data_ds: graph.NucleiDataset, seed: int = 0) -> dict[str, float]:
    """MC/data separability of the model's fused features: :func:`amsnb.train.diagnostics.domain_probe` (a fresh
    standardised logistic regression, stratified 3-fold cross-validated; 0.5 = indistinguishable) on equal numbers
    of MC and data events. ``probe_acc``, ``probe_auc``, ``probe_n_test``, ``probe_folds``.

    Why: the adversarial domain head is trained against the features, so its accuracy only means something for a
    DA model; this probe measures how separable MC and data features are for any model.
    """
    from ..train.diagnostics import domain_probe as probe
    from ..train.trainer import predict

    k = min(len(mc_ds), len(data_ds))
    if k < 10:
        raise EmptySelectionError(f"domain_probe: {k} events per domain; need at least 10")
    rng = np.random.default_rng(seed)
    fm = predict(model, _subset(mc_ds, rng.choice(len(mc_ds), k, replace=False)), 2048, collate_fn=graph.collate,
                 features=True)["features"]
    fd = predict(model, _subset(data_ds, rng.choice(len(data_ds), k, replace=False)), 2048,
                 collate_fn=graph.collate, features=True)["features"]
    return probe(fm, fd, seed=seed, folds=3)


def _subset(ds: graph.NucleiDataset, idx) -> graph.NucleiDataset:
    import copy

    import torch

    out = copy.copy(ds)
    idx = torch.as_tensor(idx)
    out.t = {k: v[idx] for k, v in ds.t.items()}
    out.y, out.w, out.domain = ds.y[idx], ds.w[idx], ds.domain[idx]
    return out


def score(model, arrays: Mapping[str, np.ndarray]) -> dict:
    """MDA outputs for NUCLEI arrays (:func:`amsnb.train.predict`): ``score`` (P signal), ``domain_score``,
    ``attention`` (n, 4), ``features``, ``label``, ``weight``."""
    from ..train.trainer import predict

    return predict(model, graph.NucleiDataset(arrays), 2048, collate_fn=graph.collate, features=True)


def _score_columns(wd: Workdir, model_tag: str, set_name: str, arrays: Mapping[str, np.ndarray], z_sel: int,
                   scores: np.ndarray) -> Path:
    """The MDA's columns for :func:`amsnb.scores.write_scores`: label 1 signal / 0 background (-1 for data),
    energy = |rigidity inner+L1|; stamped with the model folder and a digest of the scored events."""
    from .. import provenance
    from .. import scores as sc

    lab = selection.labels(arrays, z_sel) if (arrays["z_primary"] >= 0).all() and set_name != "data" \
        else np.full(len(scores), -1, np.int8)
    made_by = provenance.Stamp("amsnb.nuclei.study.scores", TRAIN_VERSION, {"model": model_tag, "set": set_name},
                               {"model": provenance.file_input(wd.models / model_tag),
                                "events": provenance.array_digest({"run": arrays["run"], "event": arrays["event"]})})
    return sc.write_scores(sc.score_path(wd, model_tag, set_name), run=arrays["run"], event=arrays["event"],
                           label=lab, energy=np.abs(arrays["rig_inl1"]).astype(np.float32),
                           weight=arrays["weight"], score=np.asarray(scores, np.float32), made_by=made_by)


def efficiency_at(score_values: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None,
                  threshold: float = 0.5, cl: float = 0.68) -> dict:
    """Signal efficiency and background (residual) efficiency at a threshold (pass: score > threshold), each with its
    Clopper-Pearson interval on effective counts (:func:`amsnb.metrics.efficiency`): ``sig_eff``, ``sig_eff_lo``,
    ``sig_eff_hi``, ``sig_eff_err`` (half-width of the interval) and the same for ``bkg_eff``."""
    from ..metrics import efficiency

    w = np.ones(len(label)) if weight is None else np.asarray(weight, float)
    passed = score_values > threshold
    sig, bkg = label == 1, label == 0
    if not sig.any() or not bkg.any():
        raise EmptySelectionError("efficiency_at: the set needs both signal and background events")
    out = {}
    for key, m in (("sig_eff", sig), ("bkg_eff", bkg)):
        e = efficiency(passed[m], w[m], cl)
        out.update({key: e.value, f"{key}_lo": e.lo, f"{key}_hi": e.hi, f"{key}_err": e.err})
    return out


def run_selection(wd: Workdir, mc: Mapping[int, Mapping], data: Mapping[int, Mapping], z_sel: int, n_train: int,
                  train_config: Mapping, model_config=None, threshold: float = 0.5, seed: int = 1,
                  n_target: int | None = None) -> dict:
    """Everything notebook 06 shows for one selection: datasets, the trained MDA, validation and global-MC results.

    Writes scores ``mda_<name>/{val,global_mc,data}.root``. The global MC is every simulated species passing the
    selection, weighted to the physical abundances.
    """
    sets = make_datasets(mc, data, z_sel, n_train, seed=seed, n_target=n_target)
    model = train(wd, sets, z_sel, train_config, model_config)
    tag = model_name(z_sel)
    va = sets["val_arrays"]
    pv = score(model, va)
    lab = selection.labels(va, z_sel)
    auc, auc_err = auc_with_error(pv["score"], lab)
    glob = selection.pooled_set(mc, z_sel)
    pg = score(model, glob)
    pd = score(model, sets["target_arrays"])
    _score_columns(wd, tag, "val", va, z_sel, pv["score"])
    _score_columns(wd, tag, "global_mc", glob, z_sel, pg["score"])
    _score_columns(wd, tag, "data", sets["target_arrays"], z_sel, pd["score"])
    dom = domain_accuracy(model, sets["val"], sets["target"], seed=seed)
    probe = domain_probe(model, sets["val"], sets["target"], seed=seed)
    glab = selection.labels(glob, z_sel)
    return {"z": z_sel, "name": selection.selection(z_sel).name, "model": model, "sets": sets,
            "history": history(model), "val_pred": pv, "val_label": lab, "val_auc": auc, "val_auc_err": auc_err,
            "val_eff": efficiency_at(pv["score"], lab, threshold=threshold),
            "global": glob, "global_pred": pg, "global_eff": efficiency_at(pg["score"], glab, glob["weight"],
                                                                            threshold),
            "global_curves": selection.efficiency_vs_rigidity(glob, pg["score"], z_sel, threshold),
            "data_pred": pd, "data_pass": float((pd["score"] > threshold).mean()), "domain_acc": dom,
            "domain_probe_acc": probe["probe_acc"], "domain_probe_auc": probe["probe_auc"]}


ABLATIONS = {"full": {}, "no DA": {"use_da": False}, "no GNN": {"branches": ("cnn", "rig", "tof")},
             "no CNN": {"branches": ("gnn", "rig", "tof")}, "no rigidity": {"branches": ("gnn", "cnn", "tof")},
             "no TOF": {"branches": ("gnn", "cnn", "rig")}}


def ablation(wd: Workdir, sets: Mapping, z_sel: int, train_config: Mapping, model_config: Mapping | None = None,
             variants: Sequence[str] = tuple(ABLATIONS), progress: bool = True) -> dict[str, dict]:
    """Retrain the MDA with one branch (or the domain adaptation) switched off: validation AUC and the MC/data
    separability of its features (:func:`domain_probe`).

    Models go to ``models/mda_<name>_abl_<variant>/`` (reused on a re-run).
    """
    from tqdm.auto import tqdm

    out = {}
    base = dict(model_config or {}) if not isinstance(model_config, str) else {"preset": model_config}
    for v in tqdm(variants, desc="ablation", disable=not progress, leave=False):
        if v not in ABLATIONS:
            raise ConfigError(f"ablation variant '{v}' unknown; choose from {list(ABLATIONS)}")
        mod = dict(ABLATIONS[v])
        tc = dict(train_config)
        if "use_da" in mod:
            tc["use_da"] = mod.pop("use_da")
        model = train(wd, sets, z_sel, tc, {**base, **mod}, tag="abl_" + v.replace(" ", "_").lower())
        pv = score(model, sets["val_arrays"])
        a, e = auc_with_error(pv["score"], selection.labels(sets["val_arrays"], z_sel))
        probe = domain_probe(model, sets["val"], sets["target"])
        out[v] = {"auc": a, "auc_err": e, "domain_probe_acc": probe["probe_acc"],
                  "domain_probe_auc": probe["probe_auc"]}
    return out


def model_for(wd: Workdir, mc: Mapping[int, Mapping], data: Mapping[int, Mapping], z_sel: int, n_train: int,
              train_config: Mapping, model_config=None, seed: int = 1) -> tuple:
    """Notebook 06's MDA for ``z_sel`` from the workdir, or a small one trained now if it is missing.

    Returns ``(model, source)`` with source ``"notebook 06"`` or ``"trained here"``. Only a finished model (one
    with a provenance stamp) counts: a killed training of notebook 06 is not used.
    """
    from .. import provenance
    from ..models import load_model
    from . import model as _mda  # noqa: F401  (registers "mda": folders saved before config.json named the module)

    folder = wd.models / model_name(z_sel)
    if provenance.read_stamp(folder) is not None and (folder / "config.json").exists():
        return load_model(folder), "notebook 06"
    sets = make_datasets(mc, data, z_sel, n_train, seed=seed, n_target=n_train)
    return train(wd, sets, z_sel, train_config, model_config), "trained here"


def ml_cut_table(arrays: Mapping[str, np.ndarray], score_values: np.ndarray, z_sel: int,
                 thresholds: Sequence[float], l1_window: tuple[float, float] | None = None) -> list[dict]:
    """Per threshold, on weighted MC inside the L1 window: signal and background efficiency of the ML cut and the
    below-L1 background fraction (MC truth) before and after it."""
    from .fits import true_fraction

    win = l1_window or selection.selection(z_sel).l1
    inw = (arrays["q_l1"] >= win[0]) & (arrays["q_l1"] < win[1])
    a = selection.take(arrays, inw)
    s = np.asarray(score_values)[inw]
    lab = selection.labels(a, z_sel)
    before = true_fraction(a, z_sel, win, a["weight"])
    rows = []
    for t in thresholds:
        e = efficiency_at(s, lab, a["weight"], t)
        cut = s > t
        after = true_fraction(selection.take(a, cut), z_sel, win, a["weight"][cut]) if cut.any() else None
        rows.append({"threshold": float(t), **e, "below_l1_before": before.value, "below_l1_before_err": before.err,
                     "below_l1_after": after.value if after else np.nan,
                     "below_l1_after_err": after.err if after else np.nan})
    return rows


def below_l1_fits(mc: Mapping[int, Mapping], data: Mapping[int, Mapping], model, z_sel: int, threshold: float,
                  z_ref: int = 14, seed: int = 1) -> dict:
    """The template-fit study of notebook 07 (see :mod:`amsnb.nuclei.fits`).

    1. tune the MC L1-charge scale and resolution to data on the clean ``z_ref`` peak; calibrate the data charges;
    2. fit the L1 charge of the data-like ``z_sel`` sample (no L1 cut) with MC templates: untuned, tuned, and tuned
       after the ML cut (templates cut the same way); compare with the data-like sample's MC truth;
    3. closure: MC templates from one half of the MC, pseudo-data (physical composition) from the other half.
    """
    from . import fits

    win = selection.selection(z_sel).l1
    ref_mc = selection.pooled_set(mc, z_ref, l1_cut=False)
    ref_data = selection.pooled_set(data, z_ref, l1_cut=False)
    tune = fits.tune_charge(ref_mc["q_l1"], ref_data["q_l1"], z_ref, ref_mc["weight"], seed=seed)
    glob = selection.pooled_set(mc, z_sel, l1_cut=False)
    raw_data = selection.pooled_set(data, z_sel, l1_cut=False)
    cal_data = selection.pooled_set({z: tune.calibrate_data(a) for z, a in data.items()}, z_sel, l1_cut=False)
    q_tuned = tune.smearing().apply(glob["q_l1"], seed=seed)
    out = {"tune": tune, "window": win, "data": cal_data, "mc": glob}
    out["untuned"] = fits.below_l1_fit(raw_data, glob, z_sel, win)
    out["truth_untuned"] = fits.true_fraction(raw_data, z_sel, win)
    out["tuned"] = fits.below_l1_fit(cal_data, glob, z_sel, win, mc_q_l1=q_tuned)
    out["truth"] = fits.true_fraction(cal_data, z_sel, win)
    s_mc = score(model, glob)["score"]
    s_data = score(model, cal_data)["score"]
    mc_cut, data_cut = s_mc > threshold, s_data > threshold
    out["tuned_ml"] = fits.below_l1_fit(selection.take(cal_data, data_cut), selection.take(glob, mc_cut), z_sel, win,
                                        mc_q_l1=q_tuned[mc_cut])
    out["truth_ml"] = fits.true_fraction(selection.take(cal_data, data_cut), z_sel, win)
    out["score_mc"], out["score_data"] = s_mc, s_data
    half = np.random.default_rng(seed).random(len(glob["q_l1"])) < 0.5
    tmpl = selection.take(glob, half)
    pseudo = selection.physical_subsample(selection.take(glob, ~half), seed=seed)
    out["closure"] = fits.below_l1_fit(pseudo, tmpl, z_sel, win)
    out["truth_closure"] = fits.true_fraction(pseudo, z_sel, win)
    return out


def below_l1_vs_material(z_sel: int, x_values: Sequence[float] = (5.0, 6.0, 7.0), n_per_species: int = 20000,
                         species: Sequence[int] | None = None, seed: int = 1) -> list[dict]:
    """MC-truth below-L1 fraction inside the L1 window and the signal selection efficiency vs the grammage between
    L1 and L2 (physics.md §6: 5-7 g/cm2, low confidence), from in-memory simulations of the neighbouring species."""
    from . import sim
    from .fits import true_fraction

    zs = tuple(species or [z for z in range(z_sel - 1, z_sel + 4) if z in sim.SPECIES])
    rows = []
    for x in x_values:
        cfg = replace(sim.DEFAULT_CONFIG, x_l1l2=float(x))
        mc = {z: sim.simulate(n_per_species, (z,), "mc", seed=[seed, z], config=cfg) for z in zs}
        pooled = selection.pooled_set(mc, z_sel)
        f = true_fraction(pooled, z_sel, selection.selection(z_sel).l1, pooled["weight"])
        eff = float(selection.select_mask(mc[z_sel], z_sel).mean())
        rows.append({"x_l1l2": float(x), "below_l1": f.value, "below_l1_lo": f.lo, "below_l1_hi": f.hi,
                     "below_l1_err": f.err, "signal_sel_eff": eff,
                     "p_int_l1l2": float(sim.interaction_probability(z_sel + 1, float(x)))})
    return rows
