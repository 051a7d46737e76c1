"""Notebook 06's study: one MDA per selection (with its no-DA twin), its validation and global-MC efficiencies, the
domain checks (the DA head and a fresh probe on held-out events), the raw-input probes and the branch ablation.

Each step returns a named result whose methods give what the notebook shows (``summary``, ``table``) and what it
writes to metrics.json (``metrics``); the notebook only calls and plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, EmptySelectionError
from ..metrics import auc_with_error, passes
from ..workdir import Workdir
from . import graph
from . import selections as selection
from .samples import NucleiSamples
from .selections import CutEfficiency, cut_efficiency
from .training import TrainingSets, history, make_datasets, model_name, score, train, write_score_file

Arrays = dict[str, np.ndarray]


# ------------------------------------------------------------------------------------------- domain checks
def heldout_probe(model, sets: TrainingSets, seed: int = 0) -> dict[str, float]:
    """The independent check of the domain adaptation: the core's fresh probe
    (:func:`amsnb.train.diagnostics.domain_probe`, 3-fold cross-validated logistic regression) on the fused features
    of held-out events only: MC of the physical composition never used in training vs data-like events never used
    as DANN target. ``probe_auc`` 0.5 = indistinguishable. Works for models with and without DA; this function only
    extracts the features."""
    from ..train.diagnostics import domain_probe

    fm = score(model, sets.probe_mc_arrays)["features"]
    fd = score(model, sets.probe_data_arrays)["features"]
    return domain_probe(fm, fd, seed=seed, folds=3)


def domain_accuracy(model, mc_ds: graph.NucleiDataset, data_ds: graph.NucleiDataset, seed: int = 0) -> float:
    """Accuracy of the model's own DA head on equal numbers of MC and data events (0.5 = indistinguishable; an
    event is called data when its domain score passes 0.5)."""
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
    return float(((~passes(pm, 0.5)).sum() + passes(pd, 0.5).sum()) / (2 * k))


def _subset(ds: graph.NucleiDataset, idx) -> graph.NucleiDataset:
    import copy

    import torch

    out = copy.copy(ds)
    idx = torch.as_tensor(idx)
    out.t = {k: v[idx] for k, v in ds.t.items()}
    out.y, out.w, out.domain = ds.y[idx], ds.w[idx], ds.domain[idx]
    return out


# ------------------------------------------------------------------------------------------- one selection
@dataclass(frozen=True)
class NoDAComparison:
    """The same network trained on the same events without the domain term: what DA changes."""
    val_auc: float
    val_auc_err: float
    domain_probe_acc: float
    domain_probe_auc: float


@dataclass
class SelectionResult:
    """Everything notebook 06 shows for one selection. ``val_pred``, ``global_pred``, ``data_pred`` are the MDA's
    outputs (:func:`amsnb.nuclei.training.score`) on the validation MC, the global MC (every species passing the
    selection, abundance weights: ``global_mc``) and the DANN target; ``global_curves`` the efficiencies vs
    rigidity (:func:`amsnb.nuclei.efficiency_vs_rigidity`); ``probe`` the held-out probe of the DA model."""
    z: int
    sets: TrainingSets
    model: object
    val_pred: dict
    val_auc: float
    val_auc_err: float
    val_eff: CutEfficiency
    global_mc: Arrays
    global_pred: dict
    global_eff: CutEfficiency
    global_curves: dict
    data_pred: dict
    data_pass: float
    domain_acc: float
    probe: dict
    no_da: NoDAComparison | None = None

    @property
    def name(self) -> str:
        return selection.selection(self.z).name

    @property
    def history(self) -> list[dict]:
        return history(self.model)

    @property
    def val_label(self) -> np.ndarray:
        return self.sets.val_labels

    @property
    def domain_probe_auc(self) -> float:
        return self.probe["probe_auc"]

    @property
    def domain_probe_acc(self) -> float:
        return self.probe["probe_acc"]

    def summary(self) -> dict:
        """The row of the validation table: AUC (with and without DA), efficiencies at the threshold, the DA head
        accuracy, the held-out probe AUC (with and without DA), the probe's events and the data pass fraction."""
        out = {"val_auc": round(self.val_auc, 4)}
        if self.no_da:
            out["val_auc_no_da"] = round(self.no_da.val_auc, 4)
        out.update(self.val_eff.table())
        out.update({"domain_acc": round(self.domain_acc, 3), "domain_probe_auc": round(self.domain_probe_auc, 3)})
        if self.no_da:
            out["domain_probe_auc_no_da"] = round(self.no_da.domain_probe_auc, 3)
        out.update({"probe_events": self.sets.probe_sizes, "data_pass": round(self.data_pass, 3)})
        return out

    def alignment(self) -> dict[str, float]:
        """The numbers of :func:`amsnb.nuclei.plots.domain_alignment`'s left panel."""
        return {"probe_auc_no_da": self.no_da.domain_probe_auc if self.no_da else np.nan,
                "probe_auc_da": self.domain_probe_auc, "head_acc_da": self.domain_acc}

    def metrics(self) -> dict[str, float]:
        """``<species>_<figure>`` for metrics.json."""
        n = self.name
        out = {f"{n}_val_auc": self.val_auc, f"{n}_val_sig_eff": self.val_eff.signal.value,
               f"{n}_val_bkg_eff": self.val_eff.background.value, f"{n}_domain_acc": self.domain_acc,
               f"{n}_domain_probe_acc": self.domain_probe_acc, f"{n}_domain_probe_auc": self.domain_probe_auc,
               f"{n}_global_bkg_eff": self.global_eff.background.value}
        if self.no_da:
            out.update({f"{n}_no_da_val_auc": self.no_da.val_auc,
                        f"{n}_no_da_domain_probe_auc": self.no_da.domain_probe_auc})
        out[f"{n}_global_sig_eff"] = self.global_eff.signal.value
        return out


def run_selection(wd: Workdir, samples: NucleiSamples, z_sel: int, n_train: int, train_config: Mapping,
                  model_config=None, threshold: float = 0.5, seed: int = 1, n_target: int | None = None,
                  compare_no_da: bool = True) -> SelectionResult:
    """Train (or reuse) the MDA of one selection on the tuned MC and the calibrated data, and measure it.

    Writes scores ``mda_<name>/{val,global_mc,data}.root``. With ``compare_no_da`` (and DA on) the same network is
    also trained without DA (``models/mda_<name>_noda``) on the same events, so the effect of DA on the AUC and on
    the held-out probe is measured per selection. Efficiencies count ``score >= threshold``.
    """
    mc, data = samples.mc_tuned, samples.data
    sets = make_datasets(mc, data, z_sel, n_train, seed=seed, n_target=n_target)
    model = train(wd, sets, z_sel, train_config, model_config)
    no_da = None
    if compare_no_da and dict(train_config).get("use_da", False):
        m0 = train(wd, sets, z_sel, {**dict(train_config), "use_da": False}, model_config, tag="noda")
        a0, e0 = auc_with_error(score(m0, sets.val_arrays)["score"], sets.val_labels)
        p0 = heldout_probe(m0, sets, seed=seed)
        no_da = NoDAComparison(a0, e0, p0["probe_acc"], p0["probe_auc"])
    tag = model_name(z_sel)
    va = sets.val_arrays
    pv = score(model, va)
    lab = sets.val_labels
    auc, auc_err = auc_with_error(pv["score"], lab)
    glob = selection.pooled_set(mc, z_sel)
    pg = score(model, glob)
    pd = score(model, sets.target_arrays)
    write_score_file(wd, tag, "val", va, z_sel, pv["score"])
    write_score_file(wd, tag, "global_mc", glob, z_sel, pg["score"])
    write_score_file(wd, tag, "data", sets.target_arrays, z_sel, pd["score"])
    dom = domain_accuracy(model, graph.NucleiDataset(sets.probe_mc_arrays),
                          graph.NucleiDataset(sets.probe_data_arrays, domain=1), seed=seed)
    probe = heldout_probe(model, sets, seed=seed)
    glab = selection.labels(glob, z_sel)
    return SelectionResult(
        z=int(z_sel), sets=sets, model=model, val_pred=pv, val_auc=auc, val_auc_err=auc_err,
        val_eff=cut_efficiency(pv["score"], lab, threshold=threshold), global_mc=glob, global_pred=pg,
        global_eff=cut_efficiency(pg["score"], glab, glob["weight"], threshold),
        global_curves=selection.efficiency_vs_rigidity(glob, pg["score"], z_sel, threshold), data_pred=pd,
        data_pass=float(passes(pd["score"], threshold).mean()), domain_acc=dom, probe=probe, no_da=no_da)


def run_selections(wd: Workdir, samples: NucleiSamples, selections: Sequence[int], n_train: int,
                   train_config: Mapping, model_config=None, threshold: float = 0.5, seed: int = 1,
                   n_target: int | None = None) -> dict[int, SelectionResult]:
    """:func:`run_selection` for each selection, in order: ``{Z: SelectionResult}``."""
    return {int(z): run_selection(wd, samples, z, n_train, train_config, model_config, threshold, seed, n_target)
            for z in selections}


# ------------------------------------------------------------------------------------------- raw-input probes
def input_probe(sets: TrainingSets, seed: int = 0) -> dict[str, float]:
    """Which raw inputs carry the MC/data difference: the held-out probe (:func:`heldout_probe`'s events, the core's
    :func:`amsnb.train.diagnostics.domain_probe`) on each input group of :func:`amsnb.nuclei.event_inputs` instead
    of the fused features: TOF (beta, charges, clusters), TOF charges only, rigidities, cluster counts, inner-layer
    charges (sorted, so the probe sees their distribution, not the layer order), and all of them together."""
    from ..train.diagnostics import domain_probe

    def groups(a):
        f = graph.event_inputs(a)
        n = len(f["rig"])
        q = np.sort(np.asarray(a["trk_q"], np.float32)[:, 0, 1:8], axis=1)
        g = {"TOF": f["tof"], "TOF charges": f["tof"][:, 1:4], "rigidity": f["rig"],
             "clusters": f["clusters"].reshape(n, -1), "inner charges": q}
        g["all inputs"] = np.concatenate(list(g.values())[:1] + [g["rigidity"], g["clusters"], q], axis=1)
        return g

    gm, gd = groups(sets.probe_mc_arrays), groups(sets.probe_data_arrays)
    return {k: domain_probe(gm[k], gd[k], seed=seed, folds=3)["probe_auc"] for k in gm}


@dataclass(frozen=True)
class InputProbes:
    """Held-out probe AUC per input treatment ("as simulated", "calibrated", "calibrated + MC tune") and input
    group (:func:`input_probe`)."""
    auc: dict[str, dict[str, float]]

    def table(self) -> dict[str, dict[str, float]]:
        return {k: {g: round(v, 3) for g, v in d.items()} for k, d in self.auc.items()}

    def metrics(self) -> dict[str, float]:
        """``input_probe_auc_<treatment>_<group>`` (spaces and " + " as underscores)."""
        return {f"input_probe_auc_{k.replace(' + ', '_').replace(' ', '_')}_{g.replace(' ', '_')}": v
                for k, d in self.auc.items() for g, v in d.items()}


def input_probes(samples: NucleiSamples, result: SelectionResult, n_train: int, seed: int = 1,
                 n_target: int | None = None) -> InputProbes:
    """The raw-input probe of ``result``'s selection with the data as simulated, after the data charge calibration
    (both against the MC as simulated, on sets drawn afresh with the same parameters) and, when the MC is tuned,
    on the events the network was trained with (calibrated data, tuned MC)."""
    z = result.z
    variants = {"as simulated": (samples.mc, samples.data_raw), "calibrated": (samples.mc, samples.data)}
    auc = {k: input_probe(make_datasets(m, d, z, n_train, seed=seed, n_target=n_target), seed)
           for k, (m, d) in variants.items()}
    if samples.mc_tune is not None:
        auc["calibrated + MC tune"] = input_probe(result.sets, seed)
    return InputProbes(auc)


# ------------------------------------------------------------------------------------------- ablation
ABLATIONS = {"full": {}, "no DA": {"use_da": False}, "no GNN": {"branches": ("cnn", "rig", "tof")},
             "no CNN": {"branches": ("gnn", "rig", "tof")}, "no rigidity": {"branches": ("gnn", "cnn", "tof")},
             "no TOF": {"branches": ("gnn", "cnn", "rig")}}


@dataclass(frozen=True)
class AblationRow:
    auc: float
    auc_err: float
    domain_probe_acc: float
    domain_probe_auc: float


@dataclass(frozen=True)
class Ablation:
    """Validation AUC (Hanley-McNeil error) and held-out probe per variant of :data:`ABLATIONS`."""
    z: int
    epochs: int | None
    rows: dict[str, AblationRow]

    def auc(self) -> dict[str, tuple[float, float]]:
        """``{variant: (AUC, error)}`` for :func:`amsnb.nuclei.plots.ablation`."""
        return {k: (r.auc, r.auc_err) for k, r in self.rows.items()}

    @property
    def title(self) -> str:
        return f"{selection.selection(self.z).name} selection, {self.epochs} epochs"

    def table(self) -> dict[str, dict[str, float]]:
        return {k: {"auc": round(r.auc, 4), "auc_err": round(r.auc_err, 4),
                    "domain_probe_auc": round(r.domain_probe_auc, 3)} for k, r in self.rows.items()}

    def metrics(self) -> dict[str, float]:
        """``ablation_auc_<variant>`` and ``ablation_probe_auc_<variant>``."""
        out = {f"ablation_auc_{k.replace(' ', '_')}": r.auc for k, r in self.rows.items()}
        out.update({f"ablation_probe_auc_{k.replace(' ', '_')}": r.domain_probe_auc for k, r in self.rows.items()})
        return out


def ablation(wd: Workdir, result: SelectionResult, train_config: Mapping, model_config: Mapping | None = None,
             variants: Sequence[str] = tuple(ABLATIONS), epochs: int | None = None, progress: bool = True,
             ) -> Ablation:
    """Retrain ``result``'s MDA on its events with one branch (or the domain adaptation) switched off, for
    ``epochs`` (default: the training config's): validation AUC and the held-out probe of its features.

    Models go to ``models/mda_<name>_abl_<variant>/`` (reused on a re-run).
    """
    from tqdm.auto import tqdm

    sets, z_sel = result.sets, result.z
    train_config = dict(train_config) if epochs is None else {**dict(train_config), "epochs": epochs}
    base = dict(model_config or {}) if not isinstance(model_config, str) else {"preset": model_config}
    rows = {}
    for v in tqdm(variants, desc="ablation", disable=not progress, leave=False):
        if v not in ABLATIONS:
            raise ConfigError(f"ablation variant '{v}' unknown; choose from {list(ABLATIONS)}")
        mod = dict(ABLATIONS[v])
        tc = dict(train_config)
        if "use_da" in mod:
            tc["use_da"] = mod.pop("use_da")
        model = train(wd, sets, z_sel, tc, {**base, **mod}, tag="abl_" + v.replace(" ", "_").lower())
        a, e = auc_with_error(score(model, sets.val_arrays)["score"], sets.val_labels)
        probe = heldout_probe(model, sets)
        rows[v] = AblationRow(a, e, probe["probe_acc"], probe["probe_auc"])
    return Ablation(z_sel, train_config.get("epochs"), rows)


# ------------------------------------------------------------------------------------------- key figures
def selection_figures(mc: Mapping[int, Mapping]) -> dict[str, float]:
    """Selection efficiencies straight from the simulation (no network): P and Si passing their own selection, S
    leaking into the P selection and Cl into the S selection. They move with the fragmentation constants."""
    return {"selection_eff_P": float(selection.select_mask(mc[15], 15).mean()),
            "selection_eff_Si": float(selection.select_mask(mc[14], 14).mean()),
            "S_into_P_selection": float(selection.select_mask(mc[16], 15).mean()),
            "Cl_into_S_selection": float(selection.select_mask(mc[17], 16).mean())}


def key_figures(samples: NucleiSamples, results: Mapping[int, SelectionResult], abl: Ablation,
                inputs: InputProbes) -> dict[str, float]:
    """Notebook 06's metrics.json: selection efficiencies of the simulation, each selection's figures, the
    ablation, the raw-input probes and the data calibration scales."""
    out = selection_figures(samples.mc)
    for r in results.values():
        out.update(r.metrics())
    out.update(abl.metrics())
    out.update(inputs.metrics())
    out.update(samples.input_scale_metrics())
    return out


# ------------------------------------------------------------------------------------------- alignment methods x seeds
#: The per-run figures of :func:`compare_alignments` (averaged over seeds by :func:`amsnb.tables.seed_summary`).
COMPARISON_FIGURES = ("mc_test_rejection", "iss_test_rejection", "mc_threshold_iss_efficiency", "probe_auc",
                      "val_auc")


def compare_alignments(wd: Workdir, result: SelectionResult, train_config: Mapping, model_config=None,
                       methods: Sequence[str] = ("none", "dann", "coral", "mmd", "cdan"), seeds: Sequence[int] = (1,),
                       efficiency: float = 0.9, epochs: int | None = None) -> list[dict]:
    """The alignment methods (``"none"``: source-only, then ``TrainConfig.alignment`` values) x seeds on one
    selection's events (issue 25), as notebook 04's :func:`amsnb.ecal.da_compare.compare_alignments` on the ECAL.

    Models ``models/mda_<name>_cmp_<method>_s<seed>/`` (reused on a re-run). Per run, on held-out events only (the
    probe sets: MC of the physical composition never trained on, data-like events never used as target, labeled by
    their simulation truth as ``iss_test`` is): the rejection 1 / background efficiency at ``efficiency`` signal
    efficiency with each set's own threshold (``mc_test_rejection``, ``iss_test_rejection``, named as in the ECAL
    table), the signal efficiency the MC threshold keeps on the data-like events, the held-out probe AUC and the
    validation AUC."""
    from ..metrics import rejection_at_efficiency, rejection_at_threshold, threshold_for_efficiency
    from ..train.losses import ALIGNMENTS

    sets, z_sel = result.sets, result.z
    tc = dict(train_config) if epochs is None else {**dict(train_config), "epochs": epochs}
    mc, data = sets.probe_mc_arrays, sets.probe_data_arrays
    lab_mc, lab_data = selection.labels(mc, z_sel), selection.labels(data, z_sel)
    rows = []
    for method in methods:
        if method != "none" and method not in ALIGNMENTS:
            raise ConfigError(f"compare_methods: '{method}' is not a method; use none or one of "
                              f"{', '.join(ALIGNMENTS)}")
        for seed in seeds:
            cfg = {**tc, "use_da": method != "none", "alignment": "dann" if method == "none" else method,
                   "seed": int(seed)}
            model = train(wd, sets, z_sel, cfg, model_config, tag=f"cmp_{method.replace('+', '')}_s{seed}")
            sm, sd = score(model, mc)["score"], score(model, data)["score"]
            thr = _or_nan(threshold_for_efficiency, sm, lab_mc, mc["weight"], efficiency)
            rej = _or_nan(rejection_at_efficiency, sm, lab_mc, mc["weight"], efficiency)
            rej_data = _or_nan(rejection_at_efficiency, sd, lab_data, data["weight"], efficiency)
            moved = _or_nan(rejection_at_threshold, sd, lab_data, data["weight"], thr)
            rows.append({"method": method, "seed": int(seed),
                         "mc_test_rejection": getattr(rej, "rejection", rej),
                         "iss_test_rejection": getattr(rej_data, "rejection", rej_data),
                         "mc_threshold_iss_efficiency": getattr(moved, "efficiency", moved),
                         "probe_auc": heldout_probe(model, sets, seed=int(seed))["probe_auc"],
                         "val_auc": auc_with_error(score(model, sets.val_arrays)["score"], sets.val_labels)[0]})
    return rows


def _or_nan(fn, *args):
    """``fn(*args)``, or NaN where the set lacks signal or background events (a small held-out set of one selection
    can), so one undefined figure of :func:`compare_alignments` does not stop the comparison."""
    try:
        return fn(*args)
    except EmptySelectionError:
        return float("nan")
