"""Notebook 07's study of the below-L1 background: the ML cut's efficiency and the below-L1 fraction it leaves
(MC truth), the template fit of the L1 charge on the data-like sample (untuned, tuned, after the ML cut, closure),
and how the MC-truth fraction moves with the material between L1 and L2 and with the L1 charge resolution.

Each step returns a named result whose methods give what the notebook shows (``table``) and what it writes to
metrics.json (``metrics``). An event passes the ML cut when ``score >= threshold`` (:func:`amsnb.metrics.passes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..metrics import Efficiency, passes
from ..workdir import Workdir
from . import fits
from . import selections as selection
from .samples import NucleiSamples
from .selections import CutEfficiency, cut_efficiency
from .training import make_datasets, model_name, score, train

Arrays = dict[str, np.ndarray]


def model_for(wd: Workdir, samples: NucleiSamples, z_sel: int, n_train: int, train_config: Mapping,
              model_config=None, seed: int = 1) -> tuple:
    """Notebook 06's MDA for ``z_sel`` from the run folder, or a small one trained now (on the tuned MC and the
    calibrated data) if it is missing.

    Returns ``(model, source)`` with source ``"notebook 06"`` or ``"trained here"``. Only a finished model (one
    with a provenance stamp) counts: a killed training of notebook 06 is not used.
    """
    from .. import provenance
    from ..models import load_model
    from . import model as _mda  # noqa: F401  (registers "mda": folders saved before config.json named the module)

    folder = wd.models / model_name(z_sel)
    if provenance.read_stamp(folder) is not None and (folder / "config.json").exists():
        return load_model(folder), "notebook 06"
    sets = make_datasets(samples.mc_tuned, samples.data, z_sel, n_train, seed=seed, n_target=n_train)
    return train(wd, sets, z_sel, train_config, model_config), "trained here"


#: What each template-fit case of :func:`template_fits` is, in words for a figure's legend.
CASE_TITLES = {"untuned": "MC templates as simulated", "tuned": "MC charge response tuned on the reference peak",
               "tuned_ml": "tuned, after the ML selection", "closure": "closure: MC pseudo-data"}


@dataclass
class ScoredEvents:
    """Selected events (inner-charge selection of ``z_sel``, no L1 cut) with the MDA's score: the L1 charge is not
    a network input, so it can be studied and fitted after the ML cut."""
    z_sel: int
    arrays: Arrays
    score: np.ndarray

    @property
    def q_l1(self) -> np.ndarray:
        return self.arrays["q_l1"]

    @property
    def z_primary(self) -> np.ndarray:
        return self.arrays["z_primary"]

    @property
    def weight(self) -> np.ndarray:
        return self.arrays["weight"]

    @property
    def category(self) -> np.ndarray:
        """MC-truth category per event (:func:`amsnb.nuclei.category`)."""
        return selection.category(self.arrays, self.z_sel)

    def passing(self, threshold: float) -> ScoredEvents:
        """The events that pass the ML cut ``score >= threshold``."""
        m = passes(self.score, threshold)
        return ScoredEvents(self.z_sel, selection.take(self.arrays, m), self.score[m])


def scored_global_mc(samples: NucleiSamples, model, z_sel: int) -> ScoredEvents:
    """The global MC (tuned, every species, abundance weights) passing the inner-charge selection, no L1 cut, scored
    by ``model``."""
    glob = selection.pooled_set(samples.mc_tuned, z_sel, l1_cut=False)
    return ScoredEvents(int(z_sel), glob, score(model, glob)["score"])


# ------------------------------------------------------------------------------------------- ML-cut table
@dataclass(frozen=True)
class MLCutRow:
    """One threshold: the cut's signal and background efficiency and the below-L1 fraction (MC truth) inside the
    L1 window before and after it (``after`` is None when nothing passes)."""
    efficiency: CutEfficiency
    below_l1_before: Efficiency
    below_l1_after: Efficiency | None

    @property
    def threshold(self) -> float:
        return self.efficiency.threshold

    def as_dict(self) -> dict[str, float]:
        a = self.below_l1_after
        return {"threshold": self.threshold, **self.efficiency.as_dict(),
                "below_l1_before": self.below_l1_before.value, "below_l1_before_err": self.below_l1_before.err,
                "below_l1_after": a.value if a else np.nan, "below_l1_after_err": a.err if a else np.nan}


@dataclass(frozen=True)
class MLCutTable:
    """:class:`MLCutRow` per threshold on the weighted global MC inside the L1 window."""
    z_sel: int
    window: tuple[float, float]
    rows: list[MLCutRow]

    def as_rows(self) -> list[dict[str, float]]:
        """Flat rows (for :func:`amsnb.nuclei.plots.efficiency_vs_threshold`)."""
        return [r.as_dict() for r in self.rows]

    def table(self, digits: int = 4) -> list[dict[str, float]]:
        return [{k: round(v, digits) for k, v in r.items()} for r in self.as_rows()]

    def metrics(self) -> dict[str, float]:
        """``ml_sig_eff_<t>``, ``ml_bkg_eff_<t>``, ``below_l1_after_<t>`` per threshold and ``below_l1_before_ml``."""
        out = {}
        for r in self.rows:
            t = f"{r.threshold:.1f}"
            out.update({f"ml_sig_eff_{t}": r.efficiency.signal.value, f"ml_bkg_eff_{t}": r.efficiency.background.value,
                        f"below_l1_after_{t}": r.as_dict()["below_l1_after"]})
        out["below_l1_before_ml"] = self.rows[0].below_l1_before.value
        return out


def ml_cut_table(events: ScoredEvents, thresholds: Sequence[float],
                 l1_window: tuple[float, float] | None = None) -> MLCutTable:
    """Per threshold, on the weighted MC inside the L1 window: signal and background efficiency of the ML cut and the
    below-L1 fraction (MC truth) before and after it."""
    z_sel = events.z_sel
    win = l1_window or selection.selection(z_sel).l1
    inw = (events.q_l1 >= win[0]) & (events.q_l1 < win[1])
    a = selection.take(events.arrays, inw)
    s = np.asarray(events.score)[inw]
    lab = selection.labels(a, z_sel)
    before = fits.true_fraction(a, z_sel, win, a["weight"])
    rows = []
    for t in thresholds:
        cut = passes(s, t)
        after = fits.true_fraction(selection.take(a, cut), z_sel, win, a["weight"][cut]) if cut.any() else None
        rows.append(MLCutRow(cut_efficiency(s, lab, a["weight"], t), before, after))
    return MLCutTable(int(z_sel), tuple(win), rows)


# ------------------------------------------------------------------------------------------- template fits
@dataclass(frozen=True)
class FitCase:
    """A template fit of the L1 charge and the MC truth of the sample it was fitted on."""
    fit: fits.TemplateFitResult
    truth: Efficiency

    @property
    def pull(self) -> float:
        """(fit - truth) / (fit error (+) truth error)."""
        return float((self.fit.fraction - self.truth.value) / np.hypot(self.fit.fraction_err, self.truth.err))


@dataclass
class BelowL1Fits:
    """The template-fit study: the L1 charge tune (``tune``) and one :class:`FitCase` per variant in ``cases``:
    ``untuned``, ``tuned``, ``tuned_ml`` (tuned, after the ML cut), ``closure`` (MC pseudo-data)."""
    tune: fits.ChargeTune
    window: tuple[float, float]
    cases: dict[str, FitCase] = field(default_factory=dict)

    def table(self) -> dict[str, dict[str, tuple]]:
        """Per case: fit (fraction, error) and truth (value, lo, hi)."""
        return {k: {"fit": (round(c.fit.fraction, 4), round(c.fit.fraction_err, 4)),
                    "truth": (round(c.truth.value, 4), round(c.truth.lo, 4), round(c.truth.hi, 4))}
                for k, c in self.cases.items()}

    def metrics(self) -> dict[str, float]:
        """The tune (``charge_scale``, ``charge_rel_smear``) and per case ``below_l1_fit_<case>[_err]``,
        ``below_l1_truth_<case>[_err]``, ``pull_<case>``."""
        out = {"charge_scale": self.tune.scale, "charge_rel_smear": self.tune.rel_smear}
        for k, c in self.cases.items():
            out.update({f"below_l1_fit_{k}": c.fit.fraction, f"below_l1_fit_{k}_err": c.fit.fraction_err,
                        f"below_l1_truth_{k}": c.truth.value, f"below_l1_truth_{k}_err": c.truth.err,
                        f"pull_{k}": c.pull})
        return out


def template_fits(samples: NucleiSamples, model, events: ScoredEvents, threshold: float, z_ref: int = 14,
                  seed: int = 1) -> BelowL1Fits:
    """The template-fit study of notebook 07 (:mod:`amsnb.nuclei.fits`) on ``events`` (the scored global MC of
    :func:`scored_global_mc`) and the calibrated data-like sample:

    1. tune the MC L1-charge scale and resolution to data on the clean ``z_ref`` peak; calibrate the data charges;
    2. fit the L1 charge of the data-like ``z_sel`` sample (no L1 cut) with MC templates: untuned, tuned, and tuned
       after the ML cut (templates cut the same way); compare with the data-like sample's MC truth;
    3. closure: MC templates from one half of the MC, pseudo-data (physical composition) from the other half.
    """
    mc, data = samples.mc_tuned, samples.data
    z_sel = events.z_sel
    win = selection.selection(z_sel).l1
    ref_mc = selection.pooled_set(mc, z_ref, l1_cut=False)
    ref_data = selection.pooled_set(data, z_ref, l1_cut=False)
    tune = fits.tune_charge(ref_mc["q_l1"], ref_data["q_l1"], z_ref, ref_mc["weight"], seed=seed)
    glob = events.arrays
    raw_data = selection.pooled_set(data, z_sel, l1_cut=False)
    cal_data = selection.pooled_set({z: tune.calibrate_data(a) for z, a in data.items()}, z_sel, l1_cut=False)
    q_tuned = tune.smearing().apply(glob["q_l1"], seed=seed)
    out = BelowL1Fits(tune, tuple(win))
    out.cases["untuned"] = FitCase(fits.below_l1_fit(raw_data, glob, z_sel, win),
                                   fits.true_fraction(raw_data, z_sel, win))
    out.cases["tuned"] = FitCase(fits.below_l1_fit(cal_data, glob, z_sel, win, mc_q_l1=q_tuned),
                                 fits.true_fraction(cal_data, z_sel, win))
    mc_cut = passes(events.score, threshold)
    data_cut = passes(score(model, cal_data)["score"], threshold)
    data_ml = selection.take(cal_data, data_cut)
    out.cases["tuned_ml"] = FitCase(fits.below_l1_fit(data_ml, selection.take(glob, mc_cut), z_sel, win,
                                                      mc_q_l1=q_tuned[mc_cut]),
                                    fits.true_fraction(data_ml, z_sel, win))
    half = np.random.default_rng(seed).random(len(glob["q_l1"])) < 0.5
    tmpl = selection.take(glob, half)
    pseudo = selection.physical_subsample(selection.take(glob, ~half), seed=seed)
    out.cases["closure"] = FitCase(fits.below_l1_fit(pseudo, tmpl, z_sel, win), fits.true_fraction(pseudo, z_sel, win))
    return out


# ------------------------------------------------------------------------------------------- scans
@dataclass(frozen=True)
class ScanPoint:
    """One value of a scanned detector parameter: the MC-truth below-L1 fraction in the L1 window, the signal
    selection efficiency, the fraction of Z+1 passing the selection, and what else the scan records
    (``extra``: interaction probabilities between L1 and L2, or the L1 resolution)."""
    value: float
    below_l1: Efficiency
    signal_sel_eff: float
    leak_from_z_plus_1: float
    extra: dict[str, float] = field(default_factory=dict)


#: How a scanned parameter is written in metric names (no dots: the regression suite reads dots as nesting).
_METRIC_TAG = {"x_l1l2": lambda v: f"x{v:g}", "l1_gain_res": lambda v: f"l1gain{round(v * 1000)}"}


@dataclass(frozen=True)
class Scan:
    """A scan of ``parameter`` (``x_l1l2``: g/cm2 between L1 and L2; ``l1_gain_res``: the L1 gain residual)."""
    parameter: str
    points: list[ScanPoint]

    def as_rows(self) -> list[dict[str, float]]:
        """Flat rows (for :func:`amsnb.nuclei.plots.material_scan`)."""
        return [{self.parameter: p.value, **p.extra, "below_l1": p.below_l1.value, "below_l1_lo": p.below_l1.lo,
                 "below_l1_hi": p.below_l1.hi, "below_l1_err": p.below_l1.err, "signal_sel_eff": p.signal_sel_eff,
                 "leak_from_z_plus_1": p.leak_from_z_plus_1} for p in self.points]

    def table(self, digits: int = 4) -> list[dict[str, float]]:
        return [{k: round(v, digits) for k, v in r.items()} for r in self.as_rows()]

    def metrics(self) -> dict[str, float]:
        """``below_l1_<tag>`` per point (tag e.g. ``x5``, ``l1gain35``; per-mille gain residual), and
        ``l1_sigma68_<tag>`` where the scan records the L1 resolution."""
        out = {}
        for p in self.points:
            tag = _METRIC_TAG[self.parameter](p.value)
            out[f"below_l1_{tag}"] = p.below_l1.value
            if "l1_sigma68" in p.extra:
                out[f"l1_sigma68_{tag}"] = p.extra["l1_sigma68"]
        return out


def _scan_point(value: float, z_sel: int, cfg, zs: Sequence[int], n_per_species: int, seed: int,
                extra: Mapping[str, float]) -> ScanPoint:
    from . import sim

    mc = {z: sim.simulate(n_per_species, (z,), "mc", seed=[seed, z], config=cfg) for z in zs}
    pooled = selection.pooled_set(mc, z_sel)
    f = fits.true_fraction(pooled, z_sel, selection.selection(z_sel).l1, pooled["weight"])
    leak = float(selection.select_mask(mc[z_sel + 1], z_sel).mean()) if z_sel + 1 in mc else float("nan")
    return ScanPoint(float(value), f, float(selection.select_mask(mc[z_sel], z_sel).mean()), leak, dict(extra))


def _neighbours(z_sel: int, species: Sequence[int] | None) -> tuple[int, ...]:
    from . import sim

    return tuple(species or [z for z in range(z_sel - 1, z_sel + 4) if z in sim.SPECIES])


def vs_material(z_sel: int, x_values: Sequence[float] = (5.0, 6.0, 7.0), n_per_species: int = 20000,
                species: Sequence[int] | None = None, seed: int = 1) -> Scan:
    """MC-truth below-L1 fraction inside the L1 window and the signal selection efficiency vs the grammage between
    L1 and L2 (physics.md §6: 5-7 g/cm2, low confidence), from in-memory simulations of the neighbouring species.
    ``extra``: ``p_int_l1l2`` / ``p_cc_l1l2``, the inelastic / charge-changing probability of Z+1 between L1 and
    L2."""
    from . import sim

    zs = _neighbours(z_sel, species)
    points = []
    for x in x_values:
        cfg = replace(sim.DEFAULT_CONFIG, x_l1l2=float(x))
        extra = {"p_int_l1l2": float(sim.interaction_probability(z_sel + 1, float(x))),
                 "p_cc_l1l2": float(sim.charge_changing_probability(z_sel + 1, float(x), cfg))}
        points.append(_scan_point(x, z_sel, cfg, zs, n_per_species, seed, extra))
    return Scan("x_l1l2", points)


def vs_l1_resolution(z_sel: int, l1_gain_res: Sequence[float] = (0.02, 0.035, 0.05), n_per_species: int = 20000,
                     species: Sequence[int] | None = None, seed: int = 1) -> Scan:
    """As :func:`vs_material`, scanning the L1 gain residual (``NucleiConfig.gain_res[1]``, the term that sets the
    L1 charge resolution); ``extra["l1_sigma68"]`` is the resulting L1 resolution of the Z+1 nucleus, whose
    downward tail leaks into the Z window. AMS's per-layer resolutions for Z = 14-26 were not found
    (docs/nuclei.md), so the scan shows how much the below-L1 result depends on it."""
    from . import sim

    zs = _neighbours(z_sel, species)
    points = []
    for g in l1_gain_res:
        cfg = replace(sim.DEFAULT_CONFIG, gain_res=(sim.DEFAULT_CONFIG.gain_res[0], float(g)))
        extra = {"l1_sigma68": sim.layer_charge_sigma68(z_sel + 1, "l1", config=cfg)}
        points.append(_scan_point(g, z_sel, cfg, zs, n_per_species, seed, extra))
    return Scan("l1_gain_res", points)
