"""Plots of the nuclei study (notebooks 06, 07): charge distributions stacked by species, efficiencies vs
rigidity, attention per branch, ablations, L1-charge template fits. Numbers come from :mod:`amsnb.nuclei` and
:mod:`amsnb.nuclei.fits`; these functions only draw them. Training curves are the core's
:func:`amsnb.plotting.training.plot_history`; error bars are the Clopper-Pearson intervals of :mod:`amsnb.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..plotting import label

_SYMBOL = {14: "Si", 15: "P", 16: "S", 17: "Cl", 18: "Ar", 19: "K", 20: "Ca", 21: "Sc", 22: "Ti", 23: "V",
           24: "Cr", 25: "Mn", 26: "Fe"}


def _ax(ax, figsize=(7, 5)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _yerr(eff) -> np.ndarray:
    """Asymmetric error bars ``[value - lo, hi - value]`` of an :class:`amsnb.metrics.Efficiency` (0 where NaN)."""
    return np.nan_to_num(np.asarray(eff.yerr, float), nan=0.0)


def _rows_yerr(rows: Sequence[Mapping], key: str) -> np.ndarray:
    v = np.array([r[key] for r in rows], float)
    return np.nan_to_num(np.array([v - [r[f"{key}_lo"] for r in rows], [r[f"{key}_hi"] for r in rows] - v]), nan=0.0)


def stacked_by_species(values: np.ndarray, groups: np.ndarray, weight: np.ndarray | None, edges,
                       xlabel: str = "L1 charge", ax=None, title: str = "", window: Sequence[float] | None = None,
                       text: str = ""):
    """Histogram of ``values`` stacked by group: the primary Z (MC truth; shown as element symbols) or any labels
    such as :func:`amsnb.nuclei.category`; optionally marks a selection window."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    fig, ax = _ax(ax)
    w = np.ones(len(values)) if weight is None else np.asarray(weight, float)
    keys = list(np.unique(groups))
    hs = [np.histogram(values[groups == k], edges, weights=w[groups == k])[0] for k in keys]
    names = [_SYMBOL.get(int(k), str(k)) if np.issubdtype(np.asarray(keys).dtype, np.integer)
             else _CATEGORY_LABELS.get(str(k), str(k).replace("_", " ")) for k in keys]
    colors = [plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")(i) for i in range(len(keys))]
    hep.histplot(hs, edges, stack=True, histtype="fill", label=names, color=colors, ax=ax)
    if window is not None:
        for v in window:
            ax.axvline(v, color="k", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("weighted events")
    ax.set_yscale("log")
    top = max(float(np.sum(hs, axis=0).max()), 1e-12)
    ax.set_ylim(top * 1e-5, top * 30)
    # beside the panel: a legend inside would sit on the stack
    ax.legend(ncol=1 if len(names) <= 12 else 2, fontsize="x-small", title=title or None, title_fontsize="small",
              loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    label(ax, text)
    return fig


# amsnb.nuclei.category's MC-truth categories in words
_CATEGORY_LABELS = {"signal": "signal (primary Z)", "below_l1": "fragmented below L1",
                    "above_l1": "fragmented above L1", "lighter": "lighter primary"}


def efficiency_vs_rigidity(eff: Mapping, title: str = "", axes=None):
    """Left: signal and total residual background efficiency vs rigidity; right: residual efficiency per background Z
    (the seed's global-MC plots). ``eff`` from :func:`amsnb.nuclei.efficiency_vs_rigidity`."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    if axes is None:  # room between the panels for the right one's y-label
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"wspace": 0.35})
    fig = axes[0].figure
    e = np.asarray(eff["edges"])
    c = np.sqrt(e[1:] * e[:-1])
    xerr = [c - e[:-1], e[1:] - c]
    for name, key, mk in (("signal", "signal", "o"), ("total residual background", "background", "s")):
        axes[0].errorbar(c, eff[key].value, yerr=_yerr(eff[key]), xerr=xerr, fmt=mk, label=name)
    _residual_per_z(axes[1], eff["per_z"], e)
    for ax, yl in zip(axes, ("efficiency", "residual efficiency (mis-ID rate)")):
        ax.set_xscale("log")
        # plain numbers, minor labels only at 2 and 5: "2x10^2 3x10^2 4x10^2 ..." ran into each other
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))
        ax.set_xlabel("rigidity inner+L1 [GV]")
        ax.set_ylabel(yl)
    axes[0].set_ylim(-0.02, 1.6)  # the band above 1 holds the legend, off the points
    axes[0].legend(title=title or None, fontsize="x-small", title_fontsize="x-small", loc="upper right")
    axes[1].legend(ncol=1, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


#: Bins with fewer effective events than this are drawn hollow: their rate is a few events' worth (1 of 1 is 1.0).
FEW_EVENTS = 5


def _residual_per_z(ax, per_z: Mapping, edges) -> None:
    """Residual efficiency per background Z on a log axis: measured bins as points with their interval (hollow when
    fewer than :data:`FEW_EVENTS` events), bins where no event passes as the upper end of their interval (a
    downward arrow), empty bins left out; no lines, which would join bins across empty ones."""
    import matplotlib.pyplot as plt

    e = np.asarray(edges, float)
    c = np.sqrt(e[1:] * e[:-1])
    lows = []
    for i, (z, ez) in enumerate(sorted(per_z.items())):
        col = plt.get_cmap("tab10")(i % 10)
        x = c * (1 + 0.03 * i)
        v, lo, hi, n = (np.asarray(a, float) for a in (ez.value, ez.lo, ez.hi, ez.n))
        has = np.isfinite(v) & (n > 0)
        meas, zero = has & (v > 0), has & (v <= 0)
        for sel, face in ((meas & (n >= FEW_EVENTS), col), (meas & (n < FEW_EVENTS), "none")):
            if sel.any():
                ax.errorbar(x[sel], v[sel], yerr=[v[sel] - lo[sel], hi[sel] - v[sel]], fmt="o", ms=4.5, color=col,
                            mfc=face, label=f"Z = {z}" if face is col else None)
        if zero.any():
            ax.errorbar(x[zero], hi[zero], yerr=0.35 * hi[zero], uplims=True, fmt="none", color=col, capsize=2,
                        label=None if meas.any() else f"Z = {z}")
        lows += list(lo[meas & (lo > 0)]) + list(hi[zero])
    ax.set_yscale("log")
    ymin = 0.3 * min(lows) if lows else 1e-4
    ax.set_ylim(max(ymin, 1e-6), 3.0)
    ax.plot([], [], "o", color="gray", mfc="none", label=f"< {FEW_EVENTS} events in the bin")
    ax.errorbar([], [], yerr=[], uplims=True, fmt="none", color="gray", label="none passes: upper limit")


def attention_weights(attention: np.ndarray, label_values: np.ndarray | None = None,
                      branches: Sequence[str] = ("gnn", "cnn", "rig", "tof"), ax=None, title: str = ""):
    """Distribution of the per-event attention each branch receives, split by class when labels are given."""
    fig, ax = _ax(ax)
    groups = {"all": np.ones(len(attention), bool)} if label_values is None else \
        {"signal": label_values == 1, "background": label_values == 0}
    width = 0.8 / len(groups)
    for k, (name, m) in enumerate(groups.items()):
        if not m.any():
            continue
        pos = np.arange(len(branches)) + (k - (len(groups) - 1) / 2) * width
        bp = ax.boxplot(attention[m], positions=pos, widths=width * 0.9, showfliers=False, patch_artist=True)
        for patch in bp["boxes"]:
            patch.set_facecolor(f"C{k}")
            patch.set_alpha(0.6)
        ax.plot([], [], "s", color=f"C{k}", label=name)
    ax.set_xticks(np.arange(len(branches)), branches)
    ax.set_ylabel("attention received per event")
    ax.legend(title=title or None)
    return fig


def ablation(results: Mapping[str, tuple[float, float]], ax=None, ylabel: str = "validation AUC", title: str = ""):
    """Bar chart of a metric (value, error) per ablation variant."""
    fig, ax = _ax(ax, (8, 4.5))
    names = list(results)
    v = [results[n][0] for n in names]
    err = [results[n][1] for n in names]
    ax.bar(range(len(names)), v, yerr=err, color=[f"C{i}" for i in range(len(names))], alpha=0.8, capsize=4)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    lo = min(v) - 3 * max(err + [0.01])
    ax.set_ylim(max(0.0, lo), min(1.0, max(v) + 3 * max(err + [0.01])))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


# the fit templates of amsnb.nuclei.fits in words, for legends
TEMPLATE_LABELS = {"below_l1": "fragmented below L1", "l1_is_z": "charge Z at L1"}


def template_fit(result, truth=None, window: Sequence[float] | None = None, ax=None,
                 title: str = "", xlabel: str = "L1 charge"):
    """Observed L1-charge histogram (points) with the fitted templates stacked; the fitted and true fractions
    (``truth``: an :class:`amsnb.metrics.Efficiency` from :func:`amsnb.nuclei.fits.true_fraction`)."""
    import mplhep as hep

    fig, ax = _ax(ax)
    e = result.edges
    hep.histplot(list(result.templates.values()), e, stack=True, histtype="fill",
                 label=[f"{TEMPLATE_LABELS.get(n, n.replace('_', ' '))} (fit)" for n in result.templates], ax=ax,
                 alpha=0.7)
    c = 0.5 * (e[1:] + e[:-1])
    ax.errorbar(c, result.observed, yerr=np.sqrt(result.observed), fmt="ko", ms=3, label="data-like sample")
    if window is not None:  # up to just above the histogram: the fit box above it stays clear of the lines
        top = 1.25 * max(float(result.observed.max()), 1.0)
        ax.vlines(list(window), 0, top, color="k", ls="--", lw=1)
    txt = f"below-L1 fraction in window:\n{result.fraction:.3f} ± {result.fraction_err:.3f} (fit)"
    if truth is not None:
        txt += f"\n{truth.value:.3f} [{truth.lo:.3f}, {truth.hi:.3f}] (MC truth, {truth.cl:.0%} CL)"
    # the fit box in the band above the histogram (ylim leaves it free), clear of the window lines' labels
    ax.text(0.02, 0.97, txt + f"\nχ²/ndf = {result.chi2_ndf:.2f}", transform=ax.transAxes, ha="left", va="top",
            fontsize="x-small", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9, "pad": 2})
    ax.set_ylim(0, 2.1 * max(float(result.observed.max()), 1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("events")
    # beside the panel: the fit box takes the top left, the stack the middle
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", title=title or None,
              title_fontsize="x-small", frameon=False)
    return fig


def efficiency_vs_threshold(rows: Sequence[Mapping], ax=None, title: str = ""):
    """Signal and background efficiency of the ML cut per threshold (``MLCutTable.as_rows()`` of
    :func:`amsnb.nuclei.below_l1.ml_cut_table`: threshold, sig_eff, bkg_eff and their Clopper-Pearson ``_lo`` /
    ``_hi``)."""
    fig, ax = _ax(ax)
    t = [r["threshold"] for r in rows]
    ax.errorbar(t, [r["sig_eff"] for r in rows], yerr=_rows_yerr(rows, "sig_eff"), fmt="o-", label="signal")
    ax.errorbar(t, [r["bkg_eff"] for r in rows], yerr=_rows_yerr(rows, "bkg_eff"), fmt="s-", label="background")
    ax.set_xlabel("ML threshold")
    ax.set_ylabel("efficiency of the ML cut")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(title=title or None)
    return fig


def material_scan(rows: Sequence[Mapping], ax=None, title: str = "", x_key: str = "x_l1l2",
                  xlabel: str = "material between L1 and L2 [g/cm²]"):
    """Below-L1 fraction (MC truth) and signal selection efficiency vs a scanned detector parameter (default the
    grammage between L1 and L2; notebook 07 also scans the L1 charge resolution). Log scale: the fraction is a few %."""
    fig, ax = _ax(ax)
    x = [r[x_key] for r in rows]
    ax.errorbar(x, [r["below_l1"] for r in rows], yerr=_rows_yerr(rows, "below_l1"), fmt="o-",
                label="below-L1 fraction in the L1 window")
    ax.plot(x, [r["signal_sel_eff"] for r in rows], "s--", label="signal selection efficiency")
    ax.set_xlabel(xlabel)
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1.5)
    ax.legend(title=title or None, fontsize="small", title_fontsize="small")
    return fig


def domain_alignment(rows: Mapping[str, Mapping[str, float]], inputs: Mapping[str, Mapping[str, float]] | None = None,
                     title: str = ""):
    """Left: per selection, the held-out fresh-probe AUC of the fused features without and with DA and the DA
    model's domain-head accuracy (0.5 = chance; the dashed line is the issue's 0.60 target for the probe). Right
    (with ``inputs``): the probe AUC of each raw input group for each input treatment (e.g. as simulated,
    calibrated, calibrated + MC tune)."""
    import matplotlib.pyplot as plt

    ncol = 2 if inputs else 1
    fig, axes = plt.subplots(1, ncol, figsize=(8.5 * ncol, 6.5), squeeze=False)
    ax = axes[0, 0]
    names = list(rows)
    x = np.arange(len(names))
    bars = (("probe_auc_no_da", "probe AUC, no DA"), ("probe_auc_da", "probe AUC, DA"),
            ("head_acc_da", "DA head accuracy"))
    for i, (k, lab) in enumerate(bars):
        ax.bar(x + (i - 1) * 0.26, [rows[n].get(k, np.nan) for n in names], 0.26, label=lab)
    ax.axhline(0.5, color="k", lw=0.8)
    ax.axhline(0.6, color="k", ls="--", lw=0.8)
    ax.set_xticks(x, names)
    ax.set_ylim(0.4, 0.95)
    ax.set_ylabel("held-out MC vs data")
    ax.set_title(title or "DA check per selection", fontsize="medium", pad=14)
    ax.legend(fontsize="x-small", loc="upper left", ncol=2)
    if inputs:
        ax = axes[0, 1]
        groups = list(next(iter(inputs.values())))
        x = np.arange(len(groups))
        wbar = 0.8 / len(inputs)
        for i, (k, vals) in enumerate(inputs.items()):
            ax.bar(x + (i - (len(inputs) - 1) / 2) * wbar, [vals[g] for g in groups], wbar, label=k)
        ax.axhline(0.5, color="k", lw=0.8)
        ax.set_xticks(x, groups, rotation=30, ha="right")
        ax.set_ylim(0.4, 0.95)
        ax.set_ylabel("probe AUC, raw inputs")
        ax.set_title("which inputs differ", fontsize="medium", pad=14)
        ax.legend(fontsize="x-small", loc="upper left", ncol=2)
    fig.tight_layout()
    return fig
