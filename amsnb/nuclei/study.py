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


#: MC statistics multiplier of the feed-down parents of the Si, P and S selections (P, S, Cl): with measured
#: partial cross sections only ~0.4 % of them land in the window below (docs/nuclei.md), so equal statistics per
#: species would leave a few hundred background events to train on. Weights keep the physical abundance.
BKG_BOOST = {15: 5, 16: 5, 17: 5}


def ensure_samples(wd: Workdir, n_mc: int, n_data_si: int, z: Sequence[int] | None = None, seed: int = 1,
                   x_l1l2: float | None = None, progress: bool = True,
                   fresh: bool = False, boost: Mapping[int, float] | None = None) -> dict[str, dict[int, Path]]:
    """Simulate (or reuse) ``{mc,data}_Z{z}.root`` in ``wd.nuclei_data``; returns ``{"mc": {z: path}, "data": ...}``.

    Each file is an :mod:`amsnb.provenance` artefact: reused only if the same simulation code made it with the same
    number of events, species, domain, seed and detector configuration; otherwise simulated again (one line says
    why). ``x_l1l2`` (g/cm2 between L1 and L2) changes the simulation; a different value writes to a subfolder
    ``x{value}`` so scans do not overwrite each other's files. ``boost`` multiplies the MC events of some species
    (default :data:`BKG_BOOST`; ``{}`` for equal statistics); each file's weights still sum to its abundance.
    """
    from tqdm.auto import tqdm

    from .. import provenance
    from . import sim

    zs = tuple(sim.GLOBAL_Z if z is None else z)
    cfg = sim.DEFAULT_CONFIG if x_l1l2 is None else replace(sim.DEFAULT_CONFIG, x_l1l2=float(x_l1l2))
    folder = wd.nuclei_data if x_l1l2 is None or x_l1l2 == sim.DEFAULT_CONFIG.x_l1l2 else \
        wd.nuclei_data / f"x{float(x_l1l2):g}"
    boost = BKG_BOOST if boost is None else boost
    counts = {"mc": {int(zz): int(round(n_mc * boost.get(int(zz), 1))) for zz in zs},
              "data": data_counts(n_data_si, zs)}
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


#: Charges calibrated on data by :func:`calibrate_inputs`: inner-tracker layers L2-L8 (and their truncated mean) and
#: the upper-TOF planes. L1 is left to :func:`amsnb.nuclei.fits.tune_charge`: it is the template-fit variable.
CALIBRATED_INPUTS = ("trk_q[L2-L8]", "q_inner", "tof_q_l1", "tof_q_l2", "tof_q_upper")


def _peak(q: np.ndarray, z: float) -> float:
    """Position of the charge peak near ``z``: the median inside z +- 0.5, iterated once around the first estimate."""
    q = np.asarray(q, float)
    c = float(z)
    for half in (0.6, 0.4):
        m = (q > c - half) & (q < c + half)
        if m.sum() < 20:
            raise EmptySelectionError(f"charge calibration: {int(m.sum())} charges near Z={z}; need at least 20")
        c = float(np.median(q[m]))
    return c


def calibrate_inputs(data: Mapping[int, Mapping], mc: Mapping[int, Mapping], z_ref: int = 14,
                     ) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, float]]:
    """Data-driven charge calibration of the network inputs: each inner-tracker layer (L2-L8) and each upper-TOF
    plane of the data is scaled so that its ``z_ref`` peak sits where the MC puts it (clean reference: primaries
    selected by the inner charge, > 99 % Si for z_ref = 14). Returns the calibrated data samples and the scales
    (data/MC peak ratio per layer and plane).

    Why: AMS equalises the gain of every tracker readout channel and TOF counter on flight data before any analysis
    (ams02.space, "Improvements in the Charge Resolution"); a network fed uncalibrated charges sees the 1-1.5 % scale
    differences of :data:`amsnb.nuclei.sim.DOMAINS` along the very direction that separates Z from Z+1, which no
    domain-invariant feature can remove without losing the charge (docs/nuclei.md, "Why a probe still separated the
    domains"). The L1 charge is not touched: notebook 07 tunes it with :func:`amsnb.nuclei.fits.tune_charge`.
    """
    ref_sel = selection.selection(z_ref)

    def ref(samples):
        a = samples[z_ref]
        return selection.take(a, (a["q_inner"] > ref_sel.inner[0] - 0.2) & (a["q_inner"] < ref_sel.inner[1] + 0.2))

    rm, rd = ref(mc), ref(data)
    scales: dict[str, float] = {}
    for layer in range(1, 8):
        qm, qd = rm["trk_q"][:, 0, layer], rd["trk_q"][:, 0, layer]
        scales[f"L{layer + 1}"] = _peak(qd[qd > 0], z_ref) / _peak(qm[qm > 0], z_ref)
    for k in ("tof_q_l1", "tof_q_l2"):
        scales[k] = _peak(rd[k][rd[k] > 0], z_ref) / _peak(rm[k][rm[k] > 0], z_ref)
    inner = np.array([scales[f"L{i}"] for i in range(2, 9)])
    out = {}
    for z, a in data.items():
        b = dict(a)
        q = np.asarray(a["trk_q"], np.float64).copy()
        q[:, :, 1:8] /= inner[None, None, :]
        b["trk_q"] = q.astype(np.float32)
        b["q_inner"] = (np.asarray(a["q_inner"], float) / inner.mean()).astype(np.float32)
        for k in ("tof_q_l1", "tof_q_l2"):
            b[k] = (np.asarray(a[k], float) / scales[k]).astype(np.float32)
        b["tof_q_upper"] = (np.asarray(a["tof_q_upper"], float)
                            / (0.5 * (scales["tof_q_l1"] + scales["tof_q_l2"]))).astype(np.float32)
        out[z] = b
    return out, scales


def tune_mc_inputs(mc: Mapping[int, Mapping], data: Mapping[int, Mapping], z_ref: int = 14, seed: int = 0,
                   ) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Data-driven tune of the MC network inputs on the clean ``z_ref`` sample (inner and L1 charge in the ``z_ref``
    windows; pass *calibrated* data, :func:`calibrate_inputs`). Two measured differences are put into the MC:

    * the cluster excess per layer and side (mean clusters, data - MC): each MC layer gets
      Poisson(excess x (q_layer / z_ref)^2) extra clusters, q_layer its measured charge (delta rays ~ Z^2; no truth);
    * the extra relative resolution per inner layer L2-L8, sqrt(sigma68_data^2 - sigma68_MC^2) / z_ref: MC layer
      charges are smeared by it and the inner truncated mean is recomputed.

    Returns the tuned MC samples and ``{"cluster_excess": (9, 2), "rel_smear": (9,)}``. Why: after the charge
    calibration a fresh probe still tells MC from data by the cluster counts (the data's higher delta-ray rate) and
    the layer-charge resolution, and the DANN head does not remove either (docs/nuclei.md, "What the domain
    adaptation can and cannot do"). AMS likewise tunes its MC response to flight data on clean samples.
    """
    from .sim import _truncated_mean

    ref_sel = selection.selection(z_ref)

    def ref(samples):
        a = samples[z_ref]
        m = (a["q_inner"] > ref_sel.inner[0]) & (a["q_inner"] < ref_sel.inner[1]) & \
            (a["q_l1"] > ref_sel.l1[0]) & (a["q_l1"] < ref_sel.l1[1])
        return selection.take(a, m)

    rm, rd = ref(mc), ref(data)
    if min(len(rm["q_inner"]), len(rd["q_inner"])) < 100:
        raise EmptySelectionError(f"tune_mc_inputs: fewer than 100 clean Z={z_ref} events in MC or data")
    excess = np.maximum(rd["n_clusters"].astype(float).mean(0) - rm["n_clusters"].astype(float).mean(0), 0.0)

    def s68(q):
        lo, hi = np.quantile(q[q > 0], [0.16, 0.84])
        return (hi - lo) / 2

    rel = np.zeros(rm["trk_q"].shape[2])
    for layer in range(1, 8):
        d, m = s68(rd["trk_q"][:, 0, layer]), s68(rm["trk_q"][:, 0, layer])
        rel[layer] = np.sqrt(max(d * d - m * m, 0.0)) / z_ref
    out = {}
    for z, a in mc.items():
        rng = np.random.default_rng([seed, int(z), 4242])
        b = dict(a)
        q = np.asarray(a["trk_q"], np.float64).copy()
        mu = excess[None] * (np.clip(q[:, 0, :], 0, 40)[:, :, None] / z_ref) ** 2
        b["n_clusters"] = np.minimum(a["n_clusters"] + rng.poisson(mu), 3000).astype(a["n_clusters"].dtype)
        q[:, :, 1:8] *= 1.0 + rel[None, None, 1:8] * rng.standard_normal(q[:, :, 1:8].shape)
        b["trk_q"] = q.astype(np.float32)
        present = (a["trk_hit"][:, 0, 1:8] > 0)
        b["q_inner"] = np.where(a["q_inner"] > 0, _truncated_mean(q[:, 0, 1:8], present), 0.0).astype(np.float32)
        out[z] = b
    return out, {"cluster_excess": excess, "rel_smear": rel}


def _keys(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
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


def make_datasets(mc: Mapping[int, Mapping], data: Mapping[int, Mapping], z_sel: int, n_train: int, seed: int = 1,
                  n_target: int | None = None, target_frac: float = 0.5, domain_reweight: bool = True) -> dict:
    """Training/validation MC sets with the seed's composition, the unlabeled data-like target set, and the two
    held-out sets of the domain probe.

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
    held = ~np.isin(_keys(glob), _keys(ts))
    probe_mc = physical_draw(selection.take(glob, held), seed=seed)
    if domain_reweight:
        tr["domain_weight"] = composition_weights(tr, glob)
    return {"train_arrays": tr, "val_arrays": va, "target_arrays": target,
            "probe_mc_arrays": probe_mc, "probe_data_arrays": probe_data,
            "train": graph.NucleiDataset(tr, selection.labels(tr, z_sel), domain_weight=tr.get("domain_weight")),
            "val": graph.NucleiDataset(va, selection.labels(va, z_sel)),
            "target": graph.NucleiDataset(target, None, domain=1),
            "composition": selection.unique_counts(ts)}


def physical_draw(arrays: Mapping[str, np.ndarray], seed: int = 0, min_share: float = 0.01) -> dict[str, np.ndarray]:
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


def input_probe(sets: Mapping, seed: int = 0) -> dict[str, float]:
    """Which raw inputs carry the MC/data difference: the held-out probe (:func:`heldout_probe`'s events, the same
    logistic regression) on each input group of :func:`amsnb.nuclei.event_inputs` instead of the fused features:
    TOF (beta, charges, clusters), TOF charges only, rigidities, cluster counts, inner-layer charges (sorted, so
    the probe sees their distribution, not the layer order), and all of them together."""
    from ..train.diagnostics import domain_probe as probe

    def groups(a):
        f = graph.event_inputs(a)
        n = len(f["rig"])
        q = np.sort(np.asarray(a["trk_q"], np.float32)[:, 0, 1:8], axis=1)
        g = {"TOF": f["tof"], "TOF charges": f["tof"][:, 1:4], "rigidity": f["rig"],
             "clusters": f["clusters"].reshape(n, -1), "inner charges": q}
        g["all inputs"] = np.concatenate(list(g.values())[:1] + [g["rigidity"], g["clusters"], q], axis=1)
        return g

    gm, gd = groups(sets["probe_mc_arrays"]), groups(sets["probe_data_arrays"])
    return {k: probe(gm[k], gd[k], seed=seed, folds=3)["probe_auc"] for k in gm}


def heldout_probe(model, sets: Mapping, seed: int = 0) -> dict[str, float]:
    """The independent check of the domain adaptation: a fresh logistic regression
    (:func:`amsnb.train.diagnostics.domain_probe`, 3-fold cross-validated) on the fused features of held-out events
    only: MC of the physical composition never used in training vs data-like events never used as DANN target.
    ``probe_auc`` 0.5 = indistinguishable. Works for models with and without DA."""
    from ..train.diagnostics import domain_probe as probe

    fm = score(model, sets["probe_mc_arrays"])["features"]
    fd = score(model, sets["probe_data_arrays"])["features"]
    return probe(fm, fd, seed=seed, folds=3)


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
                  n_target: int | None = None, compare_no_da: bool = True) -> dict:
    """Everything notebook 06 shows for one selection: datasets, the trained MDA, validation and global-MC results.

    Writes scores ``mda_<name>/{val,global_mc,data}.root``. The global MC is every simulated species passing the
    selection, weighted to the physical abundances. With ``compare_no_da`` (and DA on) the same network is also
    trained without DA (``models/mda_<name>_noda``) on the same events: ``no_da`` holds its validation AUC and its
    held-out probe, so the effect of DA on the probe is measured per selection.
    """
    sets = make_datasets(mc, data, z_sel, n_train, seed=seed, n_target=n_target)
    model = train(wd, sets, z_sel, train_config, model_config)
    no_da = None
    if compare_no_da and dict(train_config).get("use_da", False):
        m0 = train(wd, sets, z_sel, {**dict(train_config), "use_da": False}, model_config, tag="noda")
        a0, e0 = auc_with_error(score(m0, sets["val_arrays"])["score"], selection.labels(sets["val_arrays"], z_sel))
        p0 = heldout_probe(m0, sets, seed=seed)
        no_da = {"val_auc": a0, "val_auc_err": e0, "domain_probe_acc": p0["probe_acc"],
                 "domain_probe_auc": p0["probe_auc"]}
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
    dom = domain_accuracy(model, graph.NucleiDataset(sets["probe_mc_arrays"]),
                          graph.NucleiDataset(sets["probe_data_arrays"], domain=1), seed=seed)
    probe = heldout_probe(model, sets, seed=seed)
    glab = selection.labels(glob, z_sel)
    return {"z": z_sel, "name": selection.selection(z_sel).name, "model": model, "sets": sets,
            "history": history(model), "val_pred": pv, "val_label": lab, "val_auc": auc, "val_auc_err": auc_err,
            "val_eff": efficiency_at(pv["score"], lab, threshold=threshold),
            "global": glob, "global_pred": pg, "global_eff": efficiency_at(pg["score"], glab, glob["weight"],
                                                                            threshold),
            "global_curves": selection.efficiency_vs_rigidity(glob, pg["score"], z_sel, threshold),
            "data_pred": pd, "data_pass": float((pd["score"] > threshold).mean()), "domain_acc": dom,
            "domain_probe_acc": probe["probe_acc"], "domain_probe_auc": probe["probe_auc"],
            "probe_n": (len(sets["probe_mc_arrays"]["q_inner"]), len(sets["probe_data_arrays"]["q_inner"])),
            "no_da": no_da}


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
        probe = heldout_probe(model, sets)
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


def _below_l1_row(z_sel: int, cfg, zs: Sequence[int], n_per_species: int, seed: int) -> dict:
    from . import sim
    from .fits import true_fraction

    mc = {z: sim.simulate(n_per_species, (z,), "mc", seed=[seed, z], config=cfg) for z in zs}
    pooled = selection.pooled_set(mc, z_sel)
    f = true_fraction(pooled, z_sel, selection.selection(z_sel).l1, pooled["weight"])
    eff = float(selection.select_mask(mc[z_sel], z_sel).mean())
    return {"below_l1": f.value, "below_l1_lo": f.lo, "below_l1_hi": f.hi, "below_l1_err": f.err,
            "signal_sel_eff": eff,
            "leak_from_z_plus_1": float(selection.select_mask(mc[z_sel + 1], z_sel).mean()) if z_sel + 1 in mc
            else float("nan")}


def below_l1_vs_material(z_sel: int, x_values: Sequence[float] = (5.0, 6.0, 7.0), n_per_species: int = 20000,
                         species: Sequence[int] | None = None, seed: int = 1) -> list[dict]:
    """MC-truth below-L1 fraction inside the L1 window and the signal selection efficiency vs the grammage between
    L1 and L2 (physics.md §6: 5-7 g/cm2, low confidence), from in-memory simulations of the neighbouring species.
    ``p_int_l1l2`` / ``p_cc_l1l2``: inelastic / charge-changing probability of Z+1 between L1 and L2."""
    from . import sim

    zs = tuple(species or [z for z in range(z_sel - 1, z_sel + 4) if z in sim.SPECIES])
    rows = []
    for x in x_values:
        cfg = replace(sim.DEFAULT_CONFIG, x_l1l2=float(x))
        rows.append({"x_l1l2": float(x), **_below_l1_row(z_sel, cfg, zs, n_per_species, seed),
                     "p_int_l1l2": float(sim.interaction_probability(z_sel + 1, float(x))),
                     "p_cc_l1l2": float(sim.charge_changing_probability(z_sel + 1, float(x), cfg))})
    return rows


def below_l1_vs_l1_resolution(z_sel: int, l1_gain_res: Sequence[float] = (0.02, 0.035, 0.05),
                              n_per_species: int = 20000, species: Sequence[int] | None = None,
                              seed: int = 1) -> list[dict]:
    """As :func:`below_l1_vs_material`, scanning the L1 gain residual (``NucleiConfig.gain_res[1]``, the term that
    sets the L1 charge resolution); ``l1_sigma68`` is the resulting L1 resolution of the Z+1 nucleus, whose
    downward tail leaks into the Z window. AMS's per-layer resolutions for Z = 14-26 were not found
    (docs/nuclei.md), so the scan shows how much the below-L1 result depends on it."""
    from . import sim

    zs = tuple(species or [z for z in range(z_sel - 1, z_sel + 4) if z in sim.SPECIES])
    rows = []
    for g in l1_gain_res:
        cfg = replace(sim.DEFAULT_CONFIG, gain_res=(sim.DEFAULT_CONFIG.gain_res[0], float(g)))
        rows.append({"l1_gain_res": float(g), "l1_sigma68": sim.layer_charge_sigma68(z_sel + 1, "l1", config=cfg),
                     **_below_l1_row(z_sel, cfg, zs, n_per_species, seed)})
    return rows
