"""Performance plots: rejection vs efficiency (seed 000 Figures 8-9), rejection vs energy (Figure 10), score
histograms with a working point. :mod:`amsnb.metrics` computes every number; these functions only draw them.

Conventions: rejection on a log axis, the interval as a band (curves) or error bar (points); a lower limit
(no proton passes) is drawn as an upward arrow from the limit, never as a point at infinity. The ratio panel
(as in puma's rejection plots) divides each model by a reference model, usually the BDT; a reference that is only
a lower limit at most efficiencies (no proton passes it) gives only bounds, so the model with the most measured
points replaces it and the axis says so. Legends use display names (:func:`amsnb.plotting.model_label`) and give
the events the curves are computed on. The label (``amsnb.plotting.label``) says what made the events; ``text``
adds to it (e.g. "ISS-like").
"""

from __future__ import annotations

import numpy as np

from . import label as _exp_label
from . import model_label

_COLORS = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300", "#b9ac70", "#717581")


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _draw_limits(ax, x, y, color, size=7):
    """Upward arrows (caret markers with an arrow) for lower limits."""
    if len(x) == 0:
        return None
    return ax.errorbar(x, y, yerr=0.25 * np.asarray(y), lolims=True, fmt="none", ecolor=color, elinewidth=1.2,
                       capsize=3)


def _counts_text(curves: dict) -> str:
    """"2000 e, 11 368 p" when every curve counts the same events (one test set), else ""."""
    counts = {(c.points[0].n_sig, c.points[0].n_bkg) for c in curves.values() if len(c.points)}
    if len(counts) != 1:
        return ""
    n_sig, n_bkg = counts.pop()
    return f"{n_sig:,} e, {n_bkg:,} p".replace(",", "\u2009")


def ratio_reference(curves: dict, reference: str | None = None) -> str:
    """The ratio panel's reference: ``reference`` (default the first model) unless it is a lower limit at more than
    half of the efficiencies, then the model with the most measured (not limit) points."""
    names = list(curves)
    ref = reference if reference in curves else names[0]
    if np.mean(curves[ref].is_lower_limit) > 0.5:
        measured = {n: int(np.sum(~curves[n].is_lower_limit)) for n in names}
        best = max(names, key=lambda n: measured[n])
        if measured[best] > measured[ref]:
            return best
    return ref


def rejection_vs_efficiency(curves: dict, reference: str | None = None, title: str = "", text: str = "",
                            fig=None):
    """Rejection vs electron efficiency for several models (``{name: metrics.RejectionCurve}``), with a ratio
    panel to ``reference`` (default: the first model; see :func:`ratio_reference`); where either rejection is a
    lower limit the ratio is only a bound and is drawn dotted. ``title`` (the set, its energy range) heads the
    legend, followed by the event counts. Returns the figure."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(8, 7.5))
    ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    names = list(curves)
    ref = ratio_reference(curves, reference)
    r_ref = curves[ref]
    ratios = []  # every finite ratio drawn: a log ratio axis where they span decades
    for i, name in enumerate(names):
        c, col = curves[name], _color(i)
        eff, rej, lo, hi, lim = c.efficiency, c.rejection, c.rejection_lo, c.rejection_hi, c.is_lower_limit
        meas = ~lim
        ax.plot(eff[meas], rej[meas], color=col, label=model_label(name), lw=1.8)
        ax.fill_between(eff, np.where(meas, lo, np.nan), np.where(meas, hi, np.nan), color=col, alpha=0.25, lw=0)
        if lim.any():
            ax.plot(eff[lim], rej[lim], ls=":", color=col, lw=1.2)
            _draw_limits(ax, eff[lim][::3], rej[lim][::3], col)
        if len(r_ref.points) == len(c.points):
            ratio = rej / r_ref.rejection
            ratios.append(np.asarray(ratio, float))
            # a limit in numerator or reference makes the ratio a bound only: dotted, no band
            both = meas & ~r_ref.is_lower_limit
            rax.plot(eff, np.where(both, ratio, np.nan), color=col, lw=1.5, ls="-" if name != ref else "--")
            rax.plot(eff, np.where(both, np.nan, ratio), color=col, lw=1.0, ls=":")
            if name != ref:
                # the model's own interval, relative, carried to the ratio (reference treated as exact)
                r_lo, r_hi = np.where(both, ratio * lo / rej, np.nan), np.where(both, ratio * hi / rej, np.nan)
                rax.fill_between(eff, r_lo, r_hi, color=col, alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_ylabel("Proton rejection")
    # beside the panel: the curves fill the whole efficiency range, so inside it the legend would cover them
    head = "\n".join(t for t in (title, _counts_text(curves)) if t)
    ax.legend(title=head or None, fontsize="small", title_fontsize="small", loc="upper left",
              bbox_to_anchor=(1.02, 1.0), frameon=False, alignment="left")
    rax.set_xlabel("Electron efficiency")
    replaced = reference in curves and ref != reference
    rax.set_ylabel(f"Ratio to {model_label(ref)}" + ("\n(" + model_label(reference) + ": limit)" if replaced else ""),
                   fontsize="small")
    rax.axhline(1.0, color="k", lw=0.8)
    finite = np.concatenate(ratios) if ratios else np.array([])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size and finite.max() / finite.min() > 10:  # e.g. 0.003-0.6: a linear 0-1 axis hides most
        rax.set_yscale("log")
    _exp_label(ax, text=text)
    return fig


def rejection_vs_energy(curves: dict, title: str = "", text: str = "", ax=None):
    """Rejection per energy bin (``{name: metrics.EnergyCurve}``, Figure 10); lower limits as arrows."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6))
    n = max(len(curves), 1)
    for i, (name, c) in enumerate(curves.items()):
        col = _color(i)
        x, edges = c.centers, c.edges
        # small horizontal offsets so overlapping models stay readable
        width = np.diff(np.log(edges)) if edges[0] > 0 else np.diff(edges)
        shift = (i - (n - 1) / 2) * 0.08 * width
        xs = x * np.exp(shift) if edges[0] > 0 else x + shift
        rej, lo, hi = c.column("rejection"), c.column("rejection_lo"), c.column("rejection_hi")
        lim = np.array([p is not None and p.is_lower_limit for p in c.points])
        ok = np.array([p is not None for p in c.points]) & ~lim
        xerr = np.vstack([x - edges[:-1], edges[1:] - x])
        ax.errorbar(xs[ok], rej[ok], yerr=np.vstack([rej[ok] - lo[ok], hi[ok] - rej[ok]]), xerr=xerr[:, ok],
                    fmt="o", color=col, label=model_label(name), ms=5)
        if lim.any():
            ax.plot(xs[lim], rej[lim], "_", color=col, ms=12)
            _draw_limits(ax, xs[lim], rej[lim], col)
    if all(c.edges[0] > 0 for c in curves.values()):
        ax.set_xscale("log")
        _energy_ticks(ax, min(c.edges[0] for c in curves.values()), max(c.edges[-1] for c in curves.values()))
    ax.set_yscale("log")
    ax.set_xlabel("Reconstructed energy [GeV]")
    eff = next(iter(curves.values())).efficiency if curves else 0.9
    spec = ax.get_subplotspec()
    if spec is None or spec.is_first_col():  # a panel right of another (shared y) leaves the label to the first
        ax.set_ylabel(f"Proton rejection at {eff:.0%} e efficiency")
    # the y range from the values and their finite interval ends (an open upper end is drawn as an arrow)
    vals = []
    for c in curves.values():
        for p in c.points:
            if p is not None:
                vals += [p.rejection, p.rejection_lo] + ([p.rejection_hi] if np.isfinite(p.rejection_hi) else [])
    vals = np.asarray([v for v in vals if np.isfinite(v) and v > 0])
    if vals.size:
        ax.set_ylim(vals.min() / 1.6, vals.max() * 1.3 * 6)  # x6: room for the legend above the points
    ax.legend(title=title or None, fontsize="small", title_fontsize="small", loc="upper left", ncols=2)
    _exp_label(ax, text=text)
    return ax.figure


def _energy_ticks(ax, lo: float, hi: float) -> None:
    """Plain-number ticks on a log energy axis that spans less than two decades (1-2 TeV would show one label)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    if hi / lo >= 100:
        return
    nice = np.array([m * 10.0 ** k for k in range(0, 6) for m in (1, 1.5, 2, 3, 5, 7)])
    ticks = nice[(nice >= lo * 0.999) & (nice <= hi * 1.001)]
    if ticks.size < 3:
        ticks = np.unique(np.r_[ticks, np.round([lo, hi], -1)])
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def score_histograms(sig, bkg, sig_w=None, bkg_w=None, bins=50, threshold=None, ax=None, density=True,
                     labels=("electrons", "protons")):
    """Signal (electron) and background (proton) score histograms (hist + mplhep) with the threshold as a vertical
    line; ``labels`` name the two classes (a nuclei selection: the nucleus and its background).

    Returns ``(ax, threshold_line)`` so a widget can move the line without redrawing."""
    import hist
    import matplotlib.pyplot as plt
    import mplhep as hep

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    allv = np.concatenate([np.asarray(sig, float), np.asarray(bkg, float)])
    lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    for vals, w, name, col in ((sig, sig_w, labels[0], _color(0)), (bkg, bkg_w, labels[1], _color(2))):
        h = hist.Hist.new.Reg(bins, lo, hi, name="score", label="Score").Weight()
        h.fill(np.asarray(vals, float), weight=None if w is None else np.asarray(w, float))
        if h.sum().value > 0:
            hep.histplot(h, ax=ax, label=name, color=col, flow="none", density=density, yerr=False)
    ax.set_yscale("log")
    ax.set_xlabel(f"Score ({labels[0].removesuffix('s')}-like →)")
    ax.set_ylabel("Density" if density else "Events")
    line = ax.axvline(threshold if threshold is not None else lo, color="k", ls="--", lw=1.2, label="threshold")
    # an opaque box: the threshold line, wherever the slider puts it, passes behind the legend, not through its text
    ax.legend(fontsize=12, loc="upper center", ncols=3, frameon=True, framealpha=1.0, facecolor="white",
              edgecolor="none")
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room for the legend on the log axis
    return ax, line
