"""Template fits of a charge distribution: the below-L1 background fraction (seed 004, notebook 07).

The L1 charge of a Z-selected sample is a mixture of the signal (L1 charge ~ Z) and of nuclei heavier than Z that
reached L1 intact and fragmented below it (L1 charge ~ Z+1, Z+2, ...). Fitting the observed L1-charge histogram
with MC templates of the two components gives the background yield; its fraction inside the L1 selection window is
the "below-L1" background. The fit is iminuit's ``cost.Template`` (Barlow-Beeston-lite by default, "jsc"), which
propagates the finite MC statistics of the templates into the yields' uncertainties.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, EmptySelectionError
from ..metrics import Efficiency


@dataclass
class TemplateFitResult:
    """Fitted yields and the derived fraction of component ``bkg`` inside ``window``, with uncertainties."""
    names: list[str]
    yields: dict[str, float]
    errors: dict[str, float]
    fraction: float  # background fraction inside the window
    fraction_err: float
    valid: bool
    edges: np.ndarray
    observed: np.ndarray
    templates: dict[str, np.ndarray]  # template shapes scaled to the fitted yields
    covariance: np.ndarray = field(repr=False, default=None)
    chi2_ndf: float = float("nan")

    def as_dict(self) -> dict:
        return {"yields": self.yields, "errors": self.errors, "fraction": self.fraction,
                "fraction_err": self.fraction_err, "valid": self.valid, "chi2_ndf": self.chi2_ndf}


def histogram(values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                                               np.ndarray]:
    """Sum of weights and sum of squared weights per bin (the input :class:`iminuit.cost.Template` wants)."""
    w = np.ones(len(values)) if weights is None else np.asarray(weights, float)
    h, _ = np.histogram(values, edges, weights=w)
    h2, _ = np.histogram(values, edges, weights=w**2)
    return h, h2


def fit_fraction(observed: np.ndarray, templates: Mapping[str, tuple[np.ndarray, np.ndarray]], edges: np.ndarray,
                 window: tuple[float, float], bkg: str | Sequence[str] = "bkg", method: str = "jsc") \
        -> TemplateFitResult:
    """Fit the observed histogram with the templates (each ``(sum w, sum w^2)`` per bin) and return the fraction of
    the ``bkg`` component(s) among all fitted events inside ``window`` (error propagated with the covariance).
    """
    from iminuit import Minuit
    from iminuit.cost import Template

    names = list(templates)
    bkg = [bkg] if isinstance(bkg, str) else list(bkg)
    if any(b not in names for b in bkg):
        raise ConfigError(f"fit_fraction: background component(s) {bkg} not among the templates {names}")
    observed = np.asarray(observed, float)
    if observed.sum() <= 0:
        raise EmptySelectionError("fit_fraction: the observed histogram is empty; nothing to fit")
    for n, (t, _) in templates.items():
        if np.sum(t) <= 0:
            raise EmptySelectionError(f"fit_fraction: template '{n}' is empty; simulate more MC for it")
    tmpl = [np.stack([np.asarray(t, float), np.asarray(t2, float)], axis=-1) for t, t2 in templates.values()]
    cost = Template(observed, edges, tmpl, name=names, method=method)
    start = [observed.sum() / len(names)] * len(names)
    m = Minuit(cost, *start, name=names)
    for n in names:
        m.limits[n] = (0, None)
    m.migrad()
    m.hesse()
    y = np.array([m.values[n] for n in names])
    cov = np.array(m.covariance)
    centers = 0.5 * (edges[1:] + edges[:-1])
    inw = (centers >= window[0]) & (centers < window[1])
    shapes = {n: np.asarray(t, float) / np.sum(t) for n, (t, _) in templates.items()}
    f_in = np.array([shapes[n][inw].sum() for n in names])  # fraction of each template inside the window
    is_b = np.array([n in bkg for n in names], float)
    num = float((y * f_in * is_b).sum())
    den = float((y * f_in).sum())
    if den <= 0:
        raise EmptySelectionError(f"fit_fraction: no fitted events inside the window {window}")
    frac = num / den
    grad = f_in * (is_b * den - num) / den**2  # d frac / d y_i
    frac_err = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    ndf = max(int((observed > 0).sum()) - len(names), 1)
    return TemplateFitResult(names=names, yields=dict(zip(names, y.tolist())),
                             errors={n: float(m.errors[n]) for n in names}, fraction=frac, fraction_err=frac_err,
                             valid=bool(m.valid), edges=np.asarray(edges), observed=observed,
                             templates={n: shapes[n] * y[i] for i, n in enumerate(names)}, covariance=cov,
                             chi2_ndf=float(m.fval / ndf))


def below_l1_fit(data: Mapping[str, np.ndarray], mc: Mapping[str, np.ndarray], z_sel: int,
                 window: tuple[float, float], edges: np.ndarray | None = None, method: str = "jsc",
                 data_weight: np.ndarray | None = None, mc_q_l1: np.ndarray | None = None,
                 min_lighter: int = 30) -> TemplateFitResult:
    """The below-L1 fit of seed 004: L1 charge of the data-like sample (inner-charge selection, no L1 cut) against
    MC templates weighted by the MC abundance weights: ``below_l1`` (heavier primaries intact at L1, so L1 shows
    their charge), ``l1_is_z`` (signal plus nuclei that fragmented above L1: both show charge ~Z in L1, so fitting
    them apart would be degenerate) and ``lighter`` (lighter primaries leaking into the inner window, used when the
    MC holds at least ``min_lighter`` of them).
    Returns the below-L1 fraction inside the L1 ``window``. ``mc_q_l1`` replaces the MC L1 charge (e.g. tuned to
    data with :func:`calibrate_charge`).
    """
    from .selections import category

    edges = np.linspace(z_sel - 1.5, z_sel + 3.5, 51) if edges is None else np.asarray(edges)
    cat = category(mc, z_sel)
    q_mc = mc["q_l1"] if mc_q_l1 is None else np.asarray(mc_q_l1)
    templates = {}
    comps = (("l1_is_z", (cat == "signal") | (cat == "above_l1")), ("below_l1", cat == "below_l1"),
             ("lighter", cat == "lighter"))
    for name, m in comps:
        if name == "lighter" and m.sum() < min_lighter:
            continue  # too few MC events for a usable shape
        if m.sum() == 0:
            raise EmptySelectionError(f"below_l1_fit: no MC event of category '{name}' for Z={z_sel}; simulate more "
                                      "MC of the heavier species")
        templates[name] = histogram(q_mc[m], edges, mc["weight"][m])
    obs, _ = histogram(data["q_l1"], edges, data_weight)
    return fit_fraction(obs, templates, edges, window, bkg="below_l1", method=method)


def true_fraction(arrays: Mapping[str, np.ndarray], z_sel: int, window: tuple[float, float],
                  weight: np.ndarray | None = None, cl: float = 0.68) -> Efficiency:
    """MC-truth below-L1 fraction inside the L1 window (weighted), with its Clopper-Pearson interval on effective
    counts (:func:`amsnb.metrics.efficiency`; ``.value``, ``.lo``, ``.hi``, ``.err`` = half-width)."""
    from ..metrics import efficiency
    from .selections import category

    m = (arrays["q_l1"] >= window[0]) & (arrays["q_l1"] < window[1])
    if not m.any():
        raise EmptySelectionError(f"true_fraction: no event with the L1 charge in {window}")
    w = np.ones(len(m)) if weight is None else np.asarray(weight, float)
    return efficiency(category(arrays, z_sel)[m] == "below_l1", w[m], cl)




@dataclass
class ChargeTune:
    """MC-to-data charge tune from a clean control peak: q' = scale * q * (1 + rel_smear * e), e ~ N(0, 1)."""
    scale: float
    rel_smear: float
    z_ref: int
    cost: np.ndarray = field(repr=False, default=None)  # chi2 over the (scale, rel_smear) grid

    def apply(self, q: np.ndarray, seed: int = 0) -> np.ndarray:
        q = np.asarray(q, float)
        eps = np.random.default_rng(seed).standard_normal(len(q))
        return np.where(q > 0, self.scale * q * (1 + self.rel_smear * eps), q)

    def calibrate_data(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Data arrays with the L1 charge (``q_l1`` and layer 0 of ``trk_q``) divided by the scale (the L1 charge
        calibration of the data), so the L1 window acts on data as on MC; the MC templates then need only the extra
        smearing. The inner-tracker and TOF charges are calibrated separately, per layer and plane
        (:func:`amsnb.nuclei.samples.calibrate_inputs`), before the selection and the network."""
        out = dict(arrays)
        out["q_l1"] = (np.asarray(arrays["q_l1"], float) / self.scale).astype(np.float32)
        q = np.asarray(arrays["trk_q"], float).copy()
        q[:, :, 0] /= self.scale
        out["trk_q"] = q.astype(np.float32)
        return out

    def smearing(self) -> ChargeTune:
        """The tune without the scale (for MC templates compared with calibrated data)."""
        return ChargeTune(1.0, self.rel_smear, self.z_ref, self.cost)

    def as_dict(self) -> dict:
        return {"scale": self.scale, "rel_smear": self.rel_smear, "z_ref": self.z_ref}


def tune_charge(mc_q: np.ndarray, data_q: np.ndarray, z_ref: int, mc_weight: np.ndarray | None = None,
                scales: Sequence[float] = np.linspace(0.98, 1.04, 25),
                rel_smears: Sequence[float] = np.linspace(0.0, 0.03, 13), seed: int = 0) -> ChargeTune:
    """Fit the data/MC charge scale and extra relative resolution on a clean peak (e.g. the L1 charge of the
    Si-selected sample, > 99 % Si) by a chi2 scan of the normalised histograms in z_ref +- 1.5.

    Why: flight data's charge scale and resolution differ from MC (``amsnb.nuclei.sim.DOMAINS``), and a template
    fit with untuned templates is biased; AMS tunes the MC charge response per layer on clean samples. The tune is
    relative (proportional to the charge), so one peak calibrates the neighbouring charges.
    """
    edges = np.linspace(z_ref - 1.5, z_ref + 1.5, 61)
    hd, _ = np.histogram(data_q, edges)
    if hd.sum() < 50:
        raise EmptySelectionError(f"tune_charge: {hd.sum()} data events around Z={z_ref}; need >= 50")
    w = np.ones(len(mc_q)) if mc_weight is None else np.asarray(mc_weight, float)
    eps = np.random.default_rng(seed).standard_normal(len(mc_q))
    q = np.asarray(mc_q, float)
    cost = np.zeros((len(scales), len(rel_smears)))
    for i, sc in enumerate(scales):
        for j, r in enumerate(rel_smears):
            hm, _ = np.histogram(sc * q * (1 + r * eps), edges, weights=w)
            hm2, _ = np.histogram(sc * q * (1 + r * eps), edges, weights=w**2)
            k = hd.sum() / max(hm.sum(), 1e-30)
            var = hd + k**2 * hm2
            ok = var > 0
            cost[i, j] = float((((hd - k * hm) ** 2)[ok] / var[ok]).sum())
    i, j = np.unravel_index(np.argmin(cost), cost.shape)
    return ChargeTune(float(scales[i]), float(rel_smears[j]), int(z_ref), cost)
