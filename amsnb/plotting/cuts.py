"""Cut-study plots: cut flows (cumulative efficiency per cut with 68 % intervals) and N-1 distributions with the
cut window marked and an ISS/MC ratio panel. Thin glue over hist + mplhep; the numbers come from
:mod:`amsnb.cuts.flow`.
"""

from __future__ import annotations

import numpy as np

from . import label as exp_label

_STYLE = {"electron": ("tab:blue", "o"), "proton": ("tab:red", "s"), "unlabeled": ("tab:gray", "^")}
_LINES = {0: "-", 1: "--", 2: ":", 3: "-."}


def cut_flow(flows: dict, weighted: bool = False, ax=None, title: str = ""):
    """Cumulative efficiency after each cut, one line per (set, class); ``flows``: {label: CutFlow}."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 5.5))
    else:
        fig = ax.figure
    steps = None
    for j, (name, flow) in enumerate(flows.items()):
        steps = flow.steps
        x = np.arange(len(steps)) + (j - (len(flows) - 1) / 2) * 0.06
        for cls in flow.classes:
            eff, lo, hi = flow.efficiency(cls, weighted)
            color, marker = _STYLE[cls]
            ax.errorbar(x, eff, yerr=[eff - lo, hi - eff], color=color, marker=marker, ls=_LINES[j % 4],
                        label=f"{cls}s ({name})" if cls != "unlabeled" else f"unlabeled ({name})", ms=5, capsize=2)
    ax.set_xticks(np.arange(len(steps)), [CUT_LABELS.get(s, s.replace("_", " ")) for s in steps], rotation=30,
                  ha="right")
    ax.set_ylabel("cumulative efficiency" + (" (weighted)" if weighted else ""))
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    exp_label(ax)
    if title:  # above the experiment label, not over it
        ax.set_title(title, fontsize="medium", pad=40)
    return fig


# tick labels of the steps of the default cut set (amsnb/cuts/default.yaml); other cuts: their name
CUT_LABELS = {"unit_charge": "unit charge", "track_quality": r"track $\chi^2$", "fiducial_entry": "fiducial entry",
              "fiducial_exit": "fiducial exit", "e_over_r": "E/|R|", "trd": "TRD estimator",
              "energy": "energy window"}

# axis labels (with units) of the variables of the default cut set (amsnb/cuts/default.yaml); others: their name
VARIABLE_LABELS = {
    "charge_deviation": r"$|Q_\mathrm{trk} - 1|$ [e]", "track_chi2": r"track $\chi^2$/ndf",
    "entry_edge": r"max(|x|, |y|) at ECAL entry [cm]", "exit_edge": r"max(|x|, |y|) at ECAL exit [cm]",
    "e_over_r": "E/|R| [GeV/GV]", "trd_llr": "TRD estimator", "energy": "E [GeV]",
}


def n_minus_one(mc: dict, iss: dict | None = None, cuts: list[str] | None = None, bins: int = 40,
                ncols: int = 4, density: bool = True, labels: dict[str, str] | None = None):
    """Grid of N-1 distributions (electrons and protons; MC solid, ISS-like points) with the cut window as
    vertical lines and an ISS/MC ratio panel per class. ``mc``/``iss``: outputs of :func:`amsnb.cuts.n_minus_one`."""
    import hist
    import matplotlib.pyplot as plt
    import mplhep as hep
    from matplotlib.ticker import MaxNLocator

    labels = {**VARIABLE_LABELS, **(labels or {})}
    names = [c for c in (cuts or list(mc)) if c in mc]
    nrows = int(np.ceil(len(names) / ncols))
    fig = plt.figure(figsize=(5.5 * ncols, 6.5 * nrows))
    # per row of cuts: histogram, ratio panel, spacer (room for the x label and the next row's titles)
    grid = fig.add_gridspec(3 * nrows, ncols, height_ratios=[3, 1, 0.9] * nrows, hspace=0.08, wspace=0.35)
    for k, name in enumerate(names):
        r, c = divmod(k, ncols)
        ax = fig.add_subplot(grid[3 * r, c])
        rax = fig.add_subplot(grid[3 * r + 1, c], sharex=ax)
        d = mc[name]
        vals = [d.values] + ([iss[name].values] if iss and name in iss else [])
        allv = np.concatenate([v[np.isfinite(v)] for v in vals]) if vals else np.array([0.0])
        lo_w, hi_w = d.window
        lo = np.nanpercentile(allv, 0.5) if len(allv) else 0.0
        hi = np.nanpercentile(allv, 99.5) if len(allv) else 1.0
        lo = min(lo, lo_w) if lo_w is not None else lo
        hi = max(hi, hi_w) if hi_w is not None else hi
        if hi <= lo:
            hi = lo + 1.0
        span = hi - lo
        axis = hist.axis.Regular(bins, lo - 0.05 * span, hi + 0.05 * span, name=d.variable, label=d.variable)
        top = 0.0  # the largest ratio point
        for cls, code in (("electron", 1), ("proton", 0)):
            color, _ = _STYLE[cls]
            h_mc = hist.Hist(axis, storage=hist.storage.Weight()).fill(d.values[d.label == code])
            hep.histplot(h_mc, ax=ax, color=color, density=density, label=f"MC {cls}", flow="none", yerr=False)
            if iss and name in iss:
                di = iss[name]
                h_iss = hist.Hist(axis, storage=hist.storage.Weight()).fill(di.values[di.label == code])
                hep.histplot(h_iss, ax=ax, color=color, density=density, histtype="errorbar", markersize=3,
                             label=f"ISS {cls}", flow="none")
                top = max(top, _ratio(rax, h_iss, h_mc, color))
        for edge in (lo_w, hi_w):
            if edge is not None:
                ax.axvline(edge, color="k", ls="--", lw=1)
                rax.axvline(edge, color="k", ls="--", lw=1)
        ax.set_title(name.replace("_", " "), fontsize="small")
        ax.set_ylabel("density" if density else "events", fontsize="small")
        ax.set_yscale("log")
        ax.set_ylim(top=ax.get_ylim()[1] * 20)  # room for the legend
        ax.set_xlabel("")
        ax.tick_params(labelbottom=False)
        rax.axhline(1.0, color="gray", lw=0.8)
        rax.set_ylim(0, min(max(2.0, 1.15 * top), 5.0))  # points above 2 shown, not clipped
        rax.set_ylabel("ISS/MC", fontsize="x-small")
        rax.set_xlabel(labels.get(d.variable, d.variable), fontsize="small")
        rax.yaxis.set_major_locator(MaxNLocator(nbins=3, prune="both"))  # clear of the log axis and the x labels
        if k == 0:  # one legend for all panels, above the grid, off the data
            fig.legend(*ax.get_legend_handles_labels(), fontsize="small", ncols=4, loc="lower center",
                       bbox_to_anchor=(0.5, 0.985 if nrows > 1 else 1.0), frameon=False)
    return fig


def _ratio(rax, num, den, color):
    """Shape ratio (both normalised) with the numerator's Poisson error."""
    n, d = num.values(), den.values()
    n_sum, d_sum = n.sum(), d.sum()
    if n_sum <= 0 or d_sum <= 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (n / n_sum) / (d / d_sum)
        err = np.sqrt(num.variances()) / n_sum / (d / d_sum)
    centers = num.axes[0].centers
    ok = d > 0
    rax.errorbar(centers[ok], ratio[ok], yerr=err[ok], color=color, fmt="o", ms=2, lw=0.8)
    return float(np.nanmax(ratio[ok])) if ok.any() else 0.0


def single_n_minus_one(data, ax=None, bins: int = 40):
    """One N-1 distribution (both classes) with its cut window: the cut explorer's plot."""
    import hist
    import matplotlib.pyplot as plt
    import mplhep as hep

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.clear()
    v = data.values[np.isfinite(data.values)]
    lo, hi = (np.percentile(v, [0.5, 99.5]) if len(v) else (0.0, 1.0))
    for edge in data.window:
        if edge is not None:
            lo, hi = min(lo, edge), max(hi, edge)
    hi = hi if hi > lo else lo + 1.0
    axis = hist.axis.Regular(bins, lo, hi, name=data.variable, label=VARIABLE_LABELS.get(data.variable, data.variable))
    for cls, code in (("electron", 1), ("proton", 0)):
        sel = data.label == code
        if sel.any():
            hep.histplot(hist.Hist(axis).fill(data.values[sel]), ax=ax, color=_STYLE[cls][0], label=cls,
                         flow="none")
    for edge in data.window:
        if edge is not None:
            ax.axvline(edge, color="k", ls="--")
    ax.set_yscale("log")
    ax.set_ylabel("events per bin")
    ax.set_title(f"N-1: {data.cut}", fontsize="small")
    ax.legend(fontsize="x-small")
    return ax.figure


def feature_importance(importances: dict[str, float], top: int = 20, title: str = "ECAL BDT", ax=None):
    """Horizontal bars of the ``top`` largest importances (``amsnb.ecal.baselines.BDT.importances()``): the classical
    baseline of notebook 03 is drawn here with the other selection-level plots."""
    import matplotlib.pyplot as plt

    items = list(importances.items())[:top][::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.32 * len(items) + 1.5))
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlabel("share of the total split gain")
    ax.set_title(title, fontsize="medium")
    ax.tick_params(axis="y", labelsize="x-small")
    return ax.figure
