"""Proton rejection versus electron efficiency, with intervals, for any set of score files.

Definitions (seed 000, "Results"): events *pass* when ``score >= threshold``; the electron (signal, label 1)
efficiency is the passing fraction of electrons; the proton rejection is ``N_protons / N_protons_passing``,
i.e. ``1 / p`` with ``p`` the proton pass fraction. Label -1 (unknown, flight data) is excluded everywhere.

Intervals: ``p`` gets a central Clopper-Pearson interval at confidence ``cl`` (``scipy.stats.beta``,
Clopper & Pearson, Biometrika 26 (1934) 404), and the rejection interval is ``[1/p_hi, 1/p_lo]``. For weighted
events the same formula is applied to *effective counts*: ``n_eff = (sum w)^2 / sum w^2`` and
``k_eff = p_w * n_eff`` with ``p_w`` the weighted pass fraction (the effective-sample-size Clopper-Pearson of
Korn & Graubard, Survey Methodology 24 (1998) 193); with unit weights it is exactly the unweighted interval.
When no proton passes, the rejection is a *lower limit*: ``1 / p_up`` with ``p_up`` the one-sided
Clopper-Pearson upper limit at ``cl`` (``1 - (1 - cl)^(1/n)`` unweighted); ``rejection`` then holds that finite
limit, ``is_lower_limit`` is True and ``rejection_hi`` is ``inf`` (unbounded). Never a division by zero.

ROC AUC comes from ``sklearn.metrics.roc_auc_score`` (:func:`roc_auc`, with the Hanley-McNeil error in
:func:`auc_with_error`); pass fractions of any selection use :func:`efficiency` / :func:`binned_efficiency`
(the same Clopper-Pearson rule on effective counts). Every pass is counted with :func:`passes`.

This module computes; its neighbours hold the rest: :mod:`amsnb.tables` renders the rows computed here (text,
HTML, the flat ``metrics.json`` form); :mod:`amsnb.working_points` holds the working-point files and the O(log n)
:class:`~amsnb.working_points.WorkingPointEngine` of the threshold tuner (also the sort behind
:func:`rejection_curve`); :func:`amsnb.scores.load_scores` reads a workdir's score files.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError, EmptySelectionError, SchemaError

#: Electron efficiencies of the comparison table (seed 000 quotes 90 %; 80 and 95 % bracket it).
TABLE_EFFICIENCIES = (0.8, 0.9, 0.95)


def passes(score, threshold) -> np.ndarray:
    """The one pass rule of amsnb (seed 000): an event passes a cut on its score when ``score >= threshold``. Every
    efficiency, rejection and selection (ECAL and nuclei, tuner and notebooks) counts through it."""
    return np.asarray(score) >= threshold


# ------------------------------------------------------------------------------------------------ intervals
def clopper_pearson(k: float, n: float, cl: float = 0.68) -> tuple[float, float]:
    """Central Clopper-Pearson interval of a binomial fraction k/n at confidence ``cl`` (k, n may be effective,
    non-integer counts)."""
    from scipy.stats import beta

    _check_cl(cl)
    if n <= 0:
        raise EmptySelectionError("clopper_pearson: n = 0 trials; there are no events to count")
    alpha = 1.0 - cl
    lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def upper_limit(k: float, n: float, cl: float = 0.68) -> float:
    """One-sided Clopper-Pearson upper limit of a binomial fraction at confidence ``cl``."""
    from scipy.stats import beta

    _check_cl(cl)
    if k >= n:
        return 1.0
    return float(beta.ppf(cl, k + 1, n - k))


def _check_cl(cl: float) -> None:
    if not 0.0 < cl < 1.0:
        raise ConfigError(f"cl={cl}: the confidence level must be between 0 and 1 (e.g. 0.68 or 0.9)")


def effective_counts(w_total_sum: float, w_total_sum2: float, w_pass_sum: float) -> tuple[float, float]:
    """(k_eff, n_eff) of a weighted binomial: n_eff = (sum w)^2 / sum w^2, k_eff = n_eff * (sum w_pass / sum w)."""
    if w_total_sum <= 0 or w_total_sum2 <= 0:
        return 0.0, 0.0
    n_eff = w_total_sum**2 / w_total_sum2
    return n_eff * (w_pass_sum / w_total_sum), n_eff


@dataclass(frozen=True)
class Efficiency:
    """A (weighted) pass fraction with its central Clopper-Pearson interval on effective counts at ``cl``.

    ``value``, ``lo``, ``hi`` and ``n`` (effective number of events) are floats, or arrays with one entry per bin
    (:func:`binned_efficiency`; empty bins are NaN). ``err`` is the half-width of the interval (for a single
    symmetric error bar or a pull); ``yerr`` the asymmetric ``[value - lo, hi - value]`` for ``errorbar``."""

    value: float | np.ndarray
    lo: float | np.ndarray
    hi: float | np.ndarray
    n: float | np.ndarray
    cl: float = 0.68

    @property
    def err(self):
        d = 0.5 * (np.asarray(self.hi, np.float64) - np.asarray(self.lo, np.float64))
        return float(d) if d.ndim == 0 else d

    @property
    def yerr(self) -> np.ndarray:
        return np.array([np.asarray(self.value) - self.lo, np.asarray(self.hi) - self.value])


def efficiency_from_sums(w_sum: float, w2_sum: float, w_pass_sum: float, cl: float = 0.68) -> Efficiency:
    """:class:`Efficiency` from the summed weights, summed squared weights and summed passing weights (NaN when
    there is no event)."""
    k, n = effective_counts(w_sum, w2_sum, w_pass_sum)
    if n <= 0:
        return Efficiency(math.nan, math.nan, math.nan, 0.0, cl)
    lo, hi = clopper_pearson(k, n, cl)
    return Efficiency(float(w_pass_sum / w_sum), lo, hi, float(n), cl)


def efficiency(passed, weight=None, cl: float = 0.68) -> Efficiency:
    """Weighted fraction of ``passed`` events with its Clopper-Pearson interval (effective counts, see the module
    docstring); with unit weights the exact binomial interval, nonzero even when no event passes."""
    passed = np.asarray(passed, bool).ravel()
    w = np.ones(passed.size) if weight is None else np.asarray(weight, np.float64).ravel()
    if w.shape != passed.shape:
        raise SchemaError(f"efficiency: 'weight' has {w.size} entries but the pass mask has {passed.size}")
    if w.sum() <= 0:
        raise EmptySelectionError("efficiency: no events (the sum of weights is 0)")
    return efficiency_from_sums(float(w.sum()), float((w**2).sum()), float(w[passed].sum()), cl)


def binned_efficiency(x, passed, edges, weight=None, cl: float = 0.68) -> Efficiency:
    """:func:`efficiency` per bin of ``x`` (``edges[i] <= x < edges[i+1]``; values outside go to the first/last
    bin); an :class:`Efficiency` of arrays, NaN in empty bins."""
    x, passed = np.asarray(x, np.float64).ravel(), np.asarray(passed, bool).ravel()
    edges = np.asarray(edges, np.float64)
    w = np.ones(x.size) if weight is None else np.asarray(weight, np.float64).ravel()
    nb = len(edges) - 1
    idx = np.clip(np.digitize(x, edges) - 1, 0, nb - 1)
    tot, tot2 = np.bincount(idx, w, nb), np.bincount(idx, w**2, nb)
    acc = np.bincount(idx, w * passed, nb)
    per = [efficiency_from_sums(tot[i], tot2[i], acc[i], cl) for i in range(nb)]
    return Efficiency(*(np.array([getattr(e, a) for e in per], float) for a in ("value", "lo", "hi", "n")), cl=cl)


# ------------------------------------------------------------------------------------------------ points
@dataclass
class RejectionPoint:
    """One working point. ``n_*`` are raw event counts, ``w_*`` the summed weights the efficiency and rejection were
    computed from (equal to the counts for unit weights): ``efficiency = w_sig_pass / w_sig``, ``rejection = w_bkg /
    w_bkg_pass``. ``rejection`` is a lower limit at ``cl`` when ``is_lower_limit`` (no proton passes)."""

    threshold: float
    efficiency: float
    rejection: float
    rejection_lo: float
    rejection_hi: float
    n_bkg: int
    n_bkg_pass: int
    n_sig: int
    is_lower_limit: bool
    n_sig_pass: int = 0
    efficiency_lo: float = float("nan")
    efficiency_hi: float = float("nan")
    cl: float = 0.68
    w_sig: float = float("nan")
    w_sig_pass: float = float("nan")
    w_bkg: float = float("nan")
    w_bkg_pass: float = float("nan")

    @property
    def n_sig_lost(self) -> int:
        """Electrons below the threshold."""
        return self.n_sig - self.n_sig_pass

    def as_dict(self) -> dict:
        d = asdict(self)
        d["n_sig_lost"] = self.n_sig_lost
        return d

    def rejection_text(self) -> str:
        """``"1234 [1100, 1390]"`` or ``"> 2300 (68% CL lower limit)"``: the form shown in tables and widgets
        (numbers as :func:`amsnb.tables.format_number`)."""
        from .tables import format_number as _fmt

        if self.is_lower_limit:
            return f"> {_fmt(self.rejection)} ({self.cl:.0%} CL lower limit)"
        return f"{_fmt(self.rejection)} [{_fmt(self.rejection_lo)}, {_fmt(self.rejection_hi)}]"



def prepare_scores(score, label, weight=None, energy=None, *, name: str = "scores"):
    """Validated float arrays with unknown labels (-1) removed: what every figure of merit here (and the working-point
    engine of the threshold tuner) computes on."""
    score = np.asarray(score, dtype=np.float64).ravel()
    label = np.asarray(label).ravel()
    if score.shape != label.shape:
        raise SchemaError(f"{name}: 'score' has {score.size} entries but 'label' has {label.size}")
    if not np.all(np.isfinite(score)):
        raise SchemaError(f"{name}: {int((~np.isfinite(score)).sum())} scores are NaN/inf; fix the model output")
    if weight is None:
        weight = np.ones_like(score)
    else:
        weight = np.asarray(weight, dtype=np.float64).ravel()
        if weight.shape != score.shape:
            raise SchemaError(f"{name}: 'weight' has {weight.size} entries but 'score' has {score.size}")
        if not np.all(np.isfinite(weight)) or np.any(weight < 0):
            raise SchemaError(f"{name}: 'weight' must be finite and >= 0; check the weight branch")
    keep = label >= 0
    out = [score[keep], label[keep].astype(np.int8), weight[keep]]
    if energy is not None:
        energy = np.asarray(energy, dtype=np.float64).ravel()
        if energy.shape != label.shape:
            raise SchemaError(f"{name}: 'energy' has {energy.size} entries but 'score' has {score.size}")
        out.append(energy[keep])
    return out


def _point(threshold: float, sig_w: np.ndarray, sig_pass: np.ndarray, bkg_w: np.ndarray, bkg_pass: np.ndarray,
           cl: float) -> RejectionPoint:
    """Working point from per-class weights and pass masks."""
    return point_from_sums(threshold, len(sig_w), int(sig_pass.sum()), float(sig_w.sum()), float((sig_w**2).sum()),
                           float(sig_w[sig_pass].sum()), len(bkg_w), int(bkg_pass.sum()), float(bkg_w.sum()),
                           float((bkg_w**2).sum()), float(bkg_w[bkg_pass].sum()), cl)


def point_from_sums(threshold, n_sig, n_sig_pass, ws, ws2, ws_pass, n_bkg, n_bkg_pass, wb, wb2, wb_pass,
                    cl=0.68) -> RejectionPoint:
    """Working point from counts and weight sums (the shared arithmetic of every function here).

    ``ws``/``wb``: summed signal/background weights, ``ws2``/``wb2``: summed squared weights, ``*_pass``: above
    threshold. Intervals as in the module docstring."""
    if n_sig == 0 or ws <= 0:
        raise EmptySelectionError("no electrons (label 1) with positive weight in the selection: the electron "
                                  "efficiency is undefined; widen the energy range or check the 'label' branch")
    if n_bkg == 0 or wb <= 0:
        raise EmptySelectionError("no protons (label 0) with positive weight in the selection: the rejection is "
                                  "undefined; widen the energy range or check the 'label' branch")
    eff = ws_pass / ws
    k_s, n_s = effective_counts(ws, ws2, ws_pass)
    eff_lo, eff_hi = clopper_pearson(k_s, n_s, cl)
    k_b, n_b = effective_counts(wb, wb2, wb_pass)
    if wb_pass <= 0:
        lim = 1.0 / upper_limit(0.0, n_b, cl)
        rej, lo, hi, is_lim = lim, lim, math.inf, True
    else:
        p_lo, p_hi = clopper_pearson(k_b, n_b, cl)
        rej, lo, hi, is_lim = wb / wb_pass, 1.0 / p_hi, (1.0 / p_lo if p_lo > 0 else math.inf), False
    return RejectionPoint(threshold=float(threshold), efficiency=float(eff), rejection=float(rej),
                          rejection_lo=float(lo), rejection_hi=float(hi), n_bkg=int(n_bkg),
                          n_bkg_pass=int(n_bkg_pass), n_sig=int(n_sig), is_lower_limit=is_lim,
                          n_sig_pass=int(n_sig_pass), efficiency_lo=eff_lo, efficiency_hi=eff_hi, cl=cl,
                          w_sig=float(ws), w_sig_pass=float(ws_pass), w_bkg=float(wb), w_bkg_pass=float(wb_pass))


def threshold_for_efficiency(score, label, weight=None, efficiency: float = 0.9) -> float:
    """Largest threshold whose (weighted) electron efficiency is >= ``efficiency`` (pass: score >= threshold)."""
    check_efficiency(efficiency)
    score, label, weight = prepare_scores(score, label, weight)
    sig = label == 1
    if not sig.any():
        raise EmptySelectionError("no electrons (label 1) in the selection: no threshold gives an efficiency")
    return _threshold_from_sorted(score[sig], weight[sig], efficiency)


def _threshold_from_sorted(sig_score: np.ndarray, sig_w: np.ndarray, efficiency: float) -> float:
    order = np.argsort(-sig_score, kind="stable")
    s, cw = sig_score[order], np.cumsum(sig_w[order])
    i = int(np.searchsorted(cw, efficiency * cw[-1] * (1 - 1e-12), side="left"))
    return float(s[min(i, len(s) - 1)])


def check_efficiency(efficiency: float) -> None:
    """ConfigError unless a target electron efficiency is in (0, 1]."""
    if not 0.0 < efficiency <= 1.0:
        raise ConfigError(f"efficiency={efficiency}: the target electron efficiency must be in (0, 1], e.g. 0.9")


def rejection_at_threshold(score, label, weight=None, threshold: float = 0.5, cl: float = 0.68) -> RejectionPoint:
    """Working point for a fixed threshold (events with ``score >= threshold`` pass)."""
    score, label, weight = prepare_scores(score, label, weight)
    sig, bkg = label == 1, label == 0
    return _point(threshold, weight[sig], passes(score[sig], threshold), weight[bkg], passes(score[bkg], threshold), cl)


def rejection_at_efficiency(score, label, weight=None, efficiency: float = 0.9, cl: float = 0.68) -> RejectionPoint:
    """Proton rejection at a target electron efficiency (the team contract, docs/architecture.md).

    The threshold is the largest one keeping at least ``efficiency`` of the electrons (ties can push the actual
    efficiency, reported in the result, slightly above the target)."""
    thr = threshold_for_efficiency(score, label, weight, efficiency)
    return rejection_at_threshold(score, label, weight, thr, cl)


# ------------------------------------------------------------------------------------------------ curves
@dataclass
class RejectionCurve:
    """Rejection versus efficiency: one :class:`RejectionPoint` per target efficiency, plus array views."""

    points: list[RejectionPoint]
    name: str = ""

    def _arr(self, attr):
        return np.array([getattr(p, attr) for p in self.points], dtype=float)

    @property
    def efficiency(self):
        return self._arr("efficiency")

    @property
    def rejection(self):
        return self._arr("rejection")

    @property
    def rejection_lo(self):
        return self._arr("rejection_lo")

    @property
    def rejection_hi(self):
        return self._arr("rejection_hi")

    @property
    def threshold(self):
        return self._arr("threshold")

    @property
    def is_lower_limit(self):
        return np.array([p.is_lower_limit for p in self.points], dtype=bool)


def default_efficiencies(n: int = 60, lo: float = 0.5, hi: float = 0.995) -> np.ndarray:
    return np.linspace(lo, hi, n)


def rejection_curve(score, label, weight=None, efficiencies=None, cl: float = 0.68, name: str = "") -> RejectionCurve:
    """Rejection at each target electron efficiency (default 0.5 to 0.995), computed from one sort."""
    from .working_points import WorkingPointEngine

    eng = WorkingPointEngine(score, label, weight, name=name or "scores")
    effs = default_efficiencies() if efficiencies is None else np.asarray(efficiencies, float)
    return RejectionCurve([eng.at_efficiency(e, cl=cl) for e in effs], name=name)


@dataclass
class EnergyCurve:
    """Rejection versus energy at a fixed electron efficiency, one point per energy bin."""

    edges: np.ndarray
    points: list[RejectionPoint | None]
    mode: str
    efficiency: float
    name: str = ""
    global_threshold: float | None = None

    @property
    def centers(self) -> np.ndarray:
        return np.sqrt(self.edges[:-1] * self.edges[1:]) if self.edges[0] > 0 else 0.5 * (self.edges[:-1] +
                                                                                          self.edges[1:])

    def column(self, attr: str) -> np.ndarray:
        return np.array([getattr(p, attr) if p is not None else np.nan for p in self.points], dtype=float)


def rejection_vs_energy(score, label, energy, weight=None, edges=None, efficiency: float = 0.9, mode: str = "per_bin",
                        cl: float = 0.68, name: str = "", n_bins: int = 5) -> EnergyCurve:
    """Rejection per energy bin at a fixed electron efficiency (seed 000, Figure 10).

    ``mode="global"``: one threshold for the whole sample (the efficiency then varies per bin and is reported);
    ``mode="per_bin"``: a threshold tuned in each bin to reach ``efficiency`` there. Bins without electrons or
    protons give ``None``. Default edges: ``n_bins`` log-spaced bins over the energy range of the events."""
    if mode not in ("global", "per_bin"):
        raise ConfigError(f"mode='{mode}' must be 'global' or 'per_bin'")
    check_efficiency(efficiency)
    score, label, weight, energy = prepare_scores(score, label, weight, energy, name=name or "scores")
    edges = bin_edges(energy, edges, n_bins)
    gthr = None
    if mode == "global":
        sig = label == 1
        gthr = _threshold_from_sorted(score[sig], weight[sig], efficiency)
    points = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (energy >= lo) & (energy < hi)
        if not ((label[m] == 1).any() and (label[m] == 0).any()):
            points.append(None)
            continue
        if mode == "global":
            points.append(rejection_at_threshold(score[m], label[m], weight[m], gthr, cl))
        else:
            points.append(rejection_at_efficiency(score[m], label[m], weight[m], efficiency, cl))
    return EnergyCurve(edges=edges, points=points, mode=mode, efficiency=efficiency, name=name,
                       global_threshold=gthr)


def bin_edges(energy: np.ndarray, edges, n_bins: int) -> np.ndarray:
    """Energy bin edges: the given ones, checked, or ``n_bins`` over the events' energy range (log-spaced if it is
    positive)."""
    if edges is not None:
        edges = np.asarray(edges, float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ConfigError(f"energy edges {edges!r} must be an increasing list of at least 2 values (GeV)")
        return edges
    if energy.size == 0:
        raise EmptySelectionError("no events with a known label: cannot bin in energy")
    lo, hi = float(energy.min()), float(energy.max())
    hi = np.nextafter(hi, np.inf)
    if lo > 0:
        return np.geomspace(lo, hi, n_bins + 1)
    return np.linspace(lo, hi, n_bins + 1)


# ------------------------------------------------------------------------------------------------ comparison
def roc_auc(score, label, weight=None) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``), unknown labels (-1) excluded; the one AUC
    of amsnb (training metrics, score summaries, baselines, domain probes, the nuclei study)."""
    from sklearn.metrics import roc_auc_score

    score, label, weight = prepare_scores(score, label, weight)
    if len(np.unique(label)) < 2:
        raise EmptySelectionError("roc_auc: needs both classes, 1 (electrons/signal) and 0 (protons/background), "
                                  "in the selection")
    return float(roc_auc_score(label, score, sample_weight=weight))


def auc_with_error(score, label, weight=None) -> tuple[float, float]:
    """:func:`roc_auc` and its standard error (Hanley & McNeil, Radiology 143 (1982) 29), with the effective
    numbers of signal and background events when weighted."""
    a = roc_auc(score, label, weight)
    _, label, weight = prepare_scores(score, label, weight)
    n1, n0 = (float(weight[label == c].sum() ** 2 / (weight[label == c] ** 2).sum()) for c in (1, 0))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt(max(a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a), 0.0) / (n1 * n0))
    return a, float(se)


def balanced_class_weights(labels, n_classes: int = 2) -> np.ndarray:
    """Per-class weights ``N / (n_classes * N_c)`` (sklearn's "balanced"), so every class carries the same total
    weight; labels < 0 (unknown) are ignored. Every class must be present."""
    labels = np.asarray(labels).ravel()
    labels = labels[labels >= 0].astype(np.int64)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if len(counts) > n_classes:
        raise SchemaError(f"balanced_class_weights: label {int(labels.max())} >= n_classes={n_classes}")
    if np.any(counts == 0):
        raise EmptySelectionError(f"balanced_class_weights: class(es) {np.flatnonzero(counts == 0).tolist()} have no "
                                  "events; balanced weights need every class (or pass explicit weights)")
    return counts.sum() / (n_classes * counts)


def roc_curve(score, label, weight=None):
    """(proton efficiency, electron efficiency, thresholds) from ``sklearn.metrics.roc_curve``."""
    from sklearn.metrics import roc_curve as _roc

    score, label, weight = prepare_scores(score, label, weight)
    return _roc(label, score, sample_weight=weight)


def comparison_table(scores: dict[str, dict[str, np.ndarray]], efficiencies=TABLE_EFFICIENCIES, cl: float = 0.68,
                     use_weights: bool = True) -> list[dict]:
    """One row per model: rejection (with interval) and misidentified protons at each efficiency, AUC.

    ``scores``: {model: score-file arrays (``amsnb.scores.read_scores``)}. Rendered by
    :func:`amsnb.tables.format_table` / :func:`~amsnb.tables.table_html`, flattened by
    :func:`~amsnb.tables.key_figures`."""
    from .working_points import WorkingPointEngine

    rows = []
    for model, arr in scores.items():
        w = arr.get("weight") if use_weights else None
        eng = WorkingPointEngine(arr["score"], arr["label"], w, name=model)
        row = {"model": model, "auc": roc_auc(arr["score"], arr["label"], w), "n_sig": eng.n_sig, "n_bkg": eng.n_bkg}
        for e in efficiencies:
            p = eng.at_efficiency(e, cl=cl)
            key = f"{round(100 * e)}"
            row[f"rej{key}"] = p.rejection
            row[f"rej{key}_lo"] = p.rejection_lo
            row[f"rej{key}_hi"] = p.rejection_hi
            row[f"rej{key}_is_limit"] = p.is_lower_limit
            row[f"mis{key}"] = p.n_bkg_pass
            row[f"eff{key}"] = p.efficiency
        rows.append(row)
    return rows


def class_fraction(score, ref_score, ref_label, efficiency: float = 0.9) -> dict[str, float]:
    """The signal fraction of an unlabeled sample by adjusted classify-and-count (Forman 2008): the threshold of
    ``efficiency`` on a labeled reference sample gives its true- and false-positive rates; the passing fraction
    f of ``score`` then estimates pi = (f - FPR) / (TPR - FPR) (clipped to [0, 1]). Unbiased when the reference's
    score distributions per class are the target's (so: a classifier that transfers, a reference of the target's
    domain)."""
    ref_score, ref_label = np.asarray(ref_score), np.asarray(ref_label)
    m = ref_label >= 0
    thr = threshold_for_efficiency(ref_score[m], ref_label[m], None, efficiency)
    tpr = float(passes(ref_score[m & (ref_label == 1)], thr).mean())
    fpr = float(passes(ref_score[m & (ref_label == 0)], thr).mean())
    f = float(passes(score, thr).mean())
    pi = min(max((f - fpr) / max(tpr - fpr, 1e-12), 0.0), 1.0)
    return {"fraction": pi, "passing_fraction": f, "tpr": tpr, "fpr": fpr, "threshold": float(thr),
            "n": int(len(score))}


def threshold_transfer(scores: dict, source: str, target: str, efficiency: float = 0.9, cl: float = 0.68,
                       use_weights: bool = False) -> list[dict]:
    """How an analyst uses a classifier: the threshold is fixed on ``source`` (MC, or ``iss_val`` as seed 000 does)
    and applied to ``target``. One row per model having both sets: the threshold, the electron efficiency it really
    reaches on ``target`` (Clopper-Pearson interval), the rejection there, and the rejection with the threshold tuned
    on ``target``'s own electrons (what the comparison tables show) for reference.

    ``scores``: {model: {set: score-file arrays}} (:func:`amsnb.scores.load_scores`); rendered by
    :func:`amsnb.tables.format_transfer_table`."""
    rows = []
    for model, by_set in scores.items():
        if source not in by_set or target not in by_set:
            continue
        src, tgt = by_set[source], by_set[target]
        ws = src.get("weight") if use_weights else None
        wt = tgt.get("weight") if use_weights else None
        thr = threshold_for_efficiency(src["score"], src["label"], ws, efficiency)
        moved = rejection_at_threshold(tgt["score"], tgt["label"], wt, thr, cl)
        own = rejection_at_efficiency(tgt["score"], tgt["label"], wt, efficiency, cl)
        rows.append({"model": model, "source": source, "target": target, "target_efficiency": efficiency,
                     "threshold": thr, "efficiency": moved.efficiency, "efficiency_lo": moved.efficiency_lo,
                     "efficiency_hi": moved.efficiency_hi, "rejection": moved.rejection_text(),
                     "rejection_value": moved.rejection, "n_bkg_pass": moved.n_bkg_pass, "n_bkg": moved.n_bkg,
                     "own_threshold_rejection": own.rejection_text(), "own_rejection_value": own.rejection,
                     "own_n_bkg_pass": own.n_bkg_pass})
    return rows


def rejection_curves(models: dict, efficiencies=None, cl: float = 0.68,
                     use_weights: bool = False) -> dict[str, RejectionCurve]:
    """{model: rejection vs efficiency} for {model: score arrays} on one set (common efficiency grid)."""
    return {m: rejection_curve(a["score"], a["label"], a.get("weight") if use_weights else None, efficiencies, cl,
                               name=m) for m, a in models.items()}


def energy_edges(models: dict, n_bins: int = 5) -> np.ndarray:
    """``n_bins`` log-spaced energy edges over the labelled events of all models' arrays (shared binning)."""
    e = np.concatenate([np.asarray(a["energy"], float)[np.asarray(a["label"]) >= 0] for a in models.values()])
    return bin_edges(e, None, n_bins)


def rejection_vs_energy_models(models: dict, efficiency: float = 0.9, mode: str = "per_bin", edges=None,
                               n_bins: int = 5, cl: float = 0.68, use_weights: bool = False) -> dict[str, EnergyCurve]:
    """{model: rejection vs energy} on common energy bins (:func:`rejection_vs_energy` per model)."""
    edges = energy_edges(models, n_bins) if edges is None or len(edges) == 0 else np.asarray(edges, float)
    return {m: rejection_vs_energy(a["score"], a["label"], a["energy"], a.get("weight") if use_weights else None,
                                   edges=edges, efficiency=efficiency, mode=mode, cl=cl, name=m)
            for m, a in models.items()}
