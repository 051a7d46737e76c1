"""ECAL plots: event displays, mean showers, profiles, variable distributions with ratio panels, domain knobs.

Thin glue over hist + mplhep: the numbers come from :mod:`amsnb.ecal.reco` and :mod:`amsnb.ecal.validation`;
these functions only draw them. Each returns the matplotlib Figure.
"""

from __future__ import annotations

import numpy as np

from ..schema import CELL_PITCH_CM, N_CELLS
from .reco import CELL_CENTRES, IS_X, LAYER_X0

_COLORS = {"electron": "tab:blue", "proton": "tab:red"}
#: Readable axis labels of the reconstructed variables.
LABELS = {
    "energy": "E [GeV]", "e_over_r": "E/|R|", "tracker_charge": "tracker charge [e]", "trd_llr": "TRD estimator",
    "track_chi2": r"track $\chi^2$/ndf", "shower_max": r"shower max [$X_0$]", "shower_alpha": r"Gamma shape $a$",
    "lateral_rms": "lateral RMS [cm]", "f_front": "front fraction", "f_rear": "rear fraction",
    "f_core": "core fraction", "s1_s3": "S1/S3", "s3_s5": "S3/S5", "n_hit_cells": "hit cells",
}


def view_images(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split one (18, 72) image into its x-view (8 layers) and y-view (10 layers) parts."""
    return image[IS_X], image[~IS_X]


def event_display(image: np.ndarray, title: str = "", fig=None, vmin: float = 1.0):
    """Both views of one event as depth-vs-cell heat maps with a log colour scale (MeV). Each view's layers are drawn
    at their own depth in radiation lengths (x view: 8 layers, y view: 10, interleaved by superlayer), the other
    view's layers left blank, so the same depth is at the same height in both panels."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    fig = fig or plt.figure(figsize=(14, 5))
    axes = fig.subplots(1, 2, sharey=True)
    img = np.asarray(image, float)
    vmax = max(float(img.max()), vmin * 10)
    cell_edges = np.arange(N_CELLS + 1)
    depth_edges = np.arange(len(img) + 1) * LAYER_X0
    for ax, view, name in ((axes[0], IS_X, "x"), (axes[1], ~IS_X, "y")):
        shown = np.where(view[:, None] & (img > 0), img, np.nan)
        art = ax.pcolormesh(cell_edges, depth_edges, shown, norm=LogNorm(vmin=vmin, vmax=vmax), cmap="viridis")
        ax.set_facecolor("#f4f4f4")  # the other view's layers and empty cells
        ax.set_xlabel(f"cell ({name} view, {CELL_PITCH_CM} cm)", fontsize=14)
        ax.set_title(f"{name} view ({int(view.sum())} layers)", fontsize=13)
        ax.tick_params(labelsize=12)  # the ROOT style's tick labels would dwarf the axis labels
    axes[0].set_ylim(depth_edges[-1], 0)  # the shower enters at the top
    axes[0].set_ylabel(r"depth [$X_0$] (top = ECAL entry)", fontsize=14)
    cbar = fig.colorbar(art, ax=list(axes))
    cbar.set_label("cell energy [MeV]", fontsize=14)
    cbar.ax.tick_params(labelsize=12)
    if title:
        fig.suptitle(title, fontsize=15)
    return fig


def by_class(data: dict[str, np.ndarray], prefix: str, variables) -> dict[str, dict[str, np.ndarray]]:
    """``{"<prefix> electron": {var: values}, "<prefix> proton": ...}`` for :func:`variable_grid`."""
    label_ = data["label"]
    return {f"{prefix} {name}": {v: data[v][label_ == code] for v in variables}
            for name, code in (("electron", 1), ("proton", 0)) if (label_ == code).any()}


def mean_showers(means: dict[str, np.ndarray], vmin: float = 0.1):
    """Mean axis-aligned images per class (``{"electron": (18, ncell), ...}``), both views, log colour (MeV)."""
    import matplotlib.pyplot as plt
    import mplhep as hep
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(len(means), 2, figsize=(14, 4.5 * len(means)), squeeze=False)
    for row, (name, img) in enumerate(means.items()):
        half = img.shape[1] // 2
        for col, (part, view) in enumerate(zip(view_images(img), "xy")):
            h = np.where(part > 0, part, np.nan).T
            art = hep.hist2dplot(h, np.arange(-half, half + 2) - 0.5, np.arange(len(part) + 1), ax=axes[row, col],
                                 flow="none",
                                 norm=LogNorm(vmin=vmin, vmax=max(float(np.nanmax(img)), vmin * 10)),
                                 cbarextend=False)
            if getattr(art, "cbar", None) is not None:
                art.cbar.set_label("mean cell energy [MeV]", fontsize=12)
                art.cbar.ax.tick_params(labelsize=11)
            axes[row, col].tick_params(labelsize=11)
            axes[row, col].invert_yaxis()
            axes[row, col].set_title(f"mean {name}, {view} view", fontsize=14)
            axes[row, col].set_xlabel("cell relative to the shower axis", fontsize=13)
            axes[row, col].set_ylabel("layer", fontsize=13)
    fig.tight_layout()
    return fig


def profiles(longitudinal: dict[str, np.ndarray], lateral: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Mean longitudinal (energy fraction per layer) and lateral (energy vs distance to the axis) profiles."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 5.5))
    depth = (np.arange(len(next(iter(longitudinal.values())))) + 0.5) * LAYER_X0
    for name, prof in longitudinal.items():
        a1.plot(depth, prof, "o-", ms=3, label=name, color=_color(name))
    a1.set_xlabel(r"depth [$X_0$]", fontsize=14)
    a1.set_ylabel("mean energy fraction per layer", fontsize=14)
    a1.legend(fontsize=11)
    for name, (dist, frac) in lateral.items():
        a2.step(dist, frac, where="mid", label=name, color=_color(name))
    a2.set_yscale("log")
    a2.set_xlabel("distance of cell centre to the shower axis [cm]", fontsize=14)
    a2.set_ylabel("mean energy fraction", fontsize=14)
    a2.legend(fontsize=11)
    fig.tight_layout()
    return fig


def _color(name: str):
    for key, c in _COLORS.items():
        if key in name:
            return c if "iss" not in name.lower() else ("navy" if key == "electron" else "darkorange")
    return None


def variable_grid(samples: dict[str, dict[str, np.ndarray]], variables, bins: int = 40, ratio: tuple | None = None,
                  ncols: int = 4, weights: dict[str, np.ndarray] | None = None):
    """Normalised distributions of several variables for several samples, with a ratio panel ``ratio=(num, den)``.

    ``samples``: name -> {variable: values}. Ranges are the 0.5-99.5 % quantiles of all samples together.
    """
    import hist
    import matplotlib.pyplot as plt
    import mplhep as hep
    from matplotlib.ticker import MaxNLocator

    nrows = int(np.ceil(len(variables) / ncols))
    fig = plt.figure(figsize=(4.2 * ncols, 4.4 * nrows))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.45, wspace=0.35)
    for i, var in enumerate(variables):
        sub = outer[i // ncols, i % ncols].subgridspec(2, 1, height_ratios=(3, 1), hspace=0.05) if ratio else \
            outer[i // ncols, i % ncols].subgridspec(1, 1)
        ax = fig.add_subplot(sub[0])
        allv = np.concatenate([np.asarray(s[var], float) for s in samples.values()])
        lo, hi = np.nanquantile(allv, [0.005, 0.995]) if len(allv) else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        hs = {}
        for name, s in samples.items():
            h = hist.Hist.new.Reg(bins, lo, hi, name=var, label=LABELS.get(var, var)).Weight()
            h.fill(np.asarray(s[var], float), weight=None if weights is None else weights.get(name))
            total = h.values().sum()
            hs[name] = h / total if total > 0 else h
            hep.histplot(hs[name], ax=ax, label=name, color=_color(name), flow="none")
        ax.set_ylabel("fraction", fontsize=10)
        ax.set_yscale("log")
        ax.tick_params(labelsize=9)
        positive = [v for h in hs.values() for v in h.values() if v > 0]
        if positive:
            ax.set_ylim(0.5 * min(positive), 2 * max(positive))
        if i == 0:  # one legend for every panel, above the grid
            handles, labels_ = ax.get_legend_handles_labels()
            fig.legend(handles, labels_, loc="lower center", bbox_to_anchor=(0.5, 0.9), ncols=len(labels_),
                       fontsize=11, frameon=False)
        if ratio:
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
            rax = fig.add_subplot(sub[1], sharex=ax)
            num, den = hs[ratio[0]], hs[ratio[1]]
            r = np.divide(num.values(), den.values(), out=np.full(bins, np.nan), where=den.values() > 0)
            err = np.divide(np.sqrt(num.variances()), den.values(), out=np.full(bins, np.nan), where=den.values() > 0)
            rax.errorbar(num.axes[0].centers, r, yerr=err, fmt="o", ms=2, color="k")
            rax.axhline(1, color="grey", lw=1)
            top = float(np.nanmax(r + err)) if np.isfinite(r).any() else 2.0
            rax.set_ylim(0, min(max(2.0, 1.1 * top), 10.0))  # points above 2 shown, not clipped
            rax.tick_params(labelsize=9)
            rax.yaxis.set_major_locator(MaxNLocator(nbins=3, prune="both"))  # clear of the log axis and the x labels
            rax.set_ylabel(f"{ratio[0][:3]}/{ratio[1][:3]}", fontsize=9)
            rax.set_xlabel(LABELS.get(var, var), fontsize=10)
        else:
            ax.set_xlabel(LABELS.get(var, var), fontsize=10)
    return fig


def knob_effects(effects: dict[str, dict[str, dict[str, float]]]):
    """Heat map of the mean shift (in MC standard deviations) each domain knob causes, per variable and class."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(effects), figsize=(7 * len(effects), 4.8), squeeze=False, sharey=True)
    for i, (ax, (part, table)) in enumerate(zip(axes[0], effects.items())):
        knobs = list(table)
        variables = list(next(iter(table.values())))
        m = np.array([[table[k][v] for v in variables] for k in knobs])
        im = ax.imshow(m, cmap="RdBu_r", vmin=-0.6, vmax=0.6, aspect="auto")
        ax.set_xticks(range(len(variables)), [LABELS.get(v, v) for v in variables], rotation=60, ha="right",
                      fontsize=9)
        ax.set_yticks(range(len(knobs)), knobs, fontsize=9)
        ax.tick_params(length=0, labelleft=i == 0)  # one knob column for both maps; no ticks over the cells
        for (r, c), val in np.ndenumerate(m):
            if abs(val) >= 0.05:
                ax.text(c, r, f"{val:+.2f}", ha="center", va="center", fontsize=7)
        ax.set_title(f"ISS - MC shift per knob, {part}s [MC std]", fontsize=11)
        ax.minorticks_off()
    cbar = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    cbar.set_label("ISS - MC mean shift [MC std]", fontsize=11)
    cbar.ax.tick_params(labelsize=10)
    return fig


def validation(resolution_rows: list[dict]):
    """Energy resolution and depth of maximum vs energy, simulation against the published parametrisations."""
    import matplotlib.pyplot as plt

    e = np.array([r["energy_gev"] for r in resolution_rows])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 5.5))
    grid = np.geomspace(e.min() * 0.8, e.max() * 1.2, 100)
    a1.plot(grid, 100 * np.sqrt(0.104**2 / grid + 0.014**2), color="k", label="AMS published (physics.md §1)")
    a1.errorbar(e, [100 * r["resolution"] for r in resolution_rows],
                yerr=[100 * r["resolution_err"] for r in resolution_rows], fmt="o", label="amsnb simulation")
    a1.set_xscale("log")
    a1.set_xlabel("electron energy [GeV]", fontsize=14)
    a1.set_ylabel(r"$\sigma_E / E$ [%]", fontsize=14)
    a1.legend(fontsize=11)
    a2.plot(grid, np.log(grid / 8.3e-3) - 0.5, color="k", label=r"PDG $\ln(E/E_c) - 0.5$")
    a2.plot(e, [r["shower_max_gflash_x0"] for r in resolution_rows], "s--", color="grey", label="GFLASH sampling T")
    a2.plot(e, [r["shower_max_x0"] for r in resolution_rows], "o", label="reconstructed (simulation)")
    a2.set_xscale("log")
    a2.set_xlabel("electron energy [GeV]", fontsize=14)
    a2.set_ylabel(r"depth of shower maximum [$X_0$]", fontsize=14)
    a2.legend(fontsize=11)
    fig.tight_layout()
    return fig


def learning_curve(points, extrapolations=(), title: str = ""):
    """Rejection at 90 % electron efficiency vs training events, one panel per evaluation set, one line per model:
    68 % intervals as error bars, lower limits (no proton passes) as upward arrows, power-law extrapolations
    (:func:`amsnb.ecal.learning.extrapolate`) dotted with an open marker and labelled as such."""
    import matplotlib.pyplot as plt

    from ..plotting import label

    sets = sorted({p.eval_set for p in points}, key=lambda s: (s != "mc_test", s))
    models = sorted({p.model for p in points}, key=lambda m: (m != "bdt", m))
    fig, axes = plt.subplots(1, len(sets), figsize=(7.5 * len(sets), 6), sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, s in zip(axes[0], sets):
        for i, m in enumerate(models):
            c = colors[i % len(colors)]
            pts = sorted((p for p in points if p.model == m and p.eval_set == s), key=lambda p: p.n_train)
            n = np.array([p.n_train for p in pts], float)
            r = np.array([p.rejection for p in pts])
            meas = np.array([not p.is_lower_limit for p in pts])
            lo = np.array([p.rejection - p.rejection_lo if not p.is_lower_limit else 0 for p in pts])
            hi = np.array([p.rejection_hi - p.rejection if not p.is_lower_limit else 0 for p in pts])
            ax.plot(n, r, "-", color=c, alpha=0.6)
            if meas.any():
                ax.errorbar(n[meas], r[meas], yerr=[lo[meas], hi[meas]], fmt="o", color=c, label=m, capsize=3)
            if (~meas).any():  # no proton passes: a 68 % CL lower limit, drawn as a bar with an upward arrow
                ax.errorbar(n[~meas], r[~meas], yerr=0.6 * r[~meas], lolims=True, fmt="_", ms=14, color=c,
                            label=f"{m} (lower limit)" if not meas.any() else f"{m}: lower limits")
            for ex in extrapolations:
                if ex["model"] == m and ex["eval_set"] == s and pts:
                    ax.plot([n[-1], ex["to_n"]], [r[-1], ex["rejection"]], ":", color=c)
                    ax.plot([ex["to_n"]], [ex["rejection"]], "o", mfc="none", color=c)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.margins(x=0.08)
        ax.set_xlabel("training events", fontsize=14)
        ax.legend(fontsize=10, loc="upper left", title=f"evaluated on {s}", title_fontsize=11, ncols=2)
        label(ax, "ISS-like" if s.startswith("iss") else "")
    # one y range for the shared axes, set once after every panel is drawn (set_ylim stops autoscaling)
    top = max([p.rejection_hi if not p.is_lower_limit else 1.6 * p.rejection for p in points]
              + [e["rejection"] for e in extrapolations])
    bottom = min(p.rejection_lo if not p.is_lower_limit else p.rejection for p in points)
    axes[0][0].set_ylim(bottom / 2, 8 * top)  # room for the arrows and the legend above the data
    axes[0][0].set_ylabel("proton rejection at 90 % e-efficiency", fontsize=14)
    if extrapolations:
        fig.text(0.5, 0.005, "open markers, dotted: power-law extrapolation to the seed's training size, "
                 "not a measurement", ha="center", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=14)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def cell_distance_edges(max_cm: float = 20.0) -> np.ndarray:
    """Bin edges (cm) of the lateral profile: one bin per cell pitch."""
    return np.arange(0, max_cm + CELL_PITCH_CM, CELL_PITCH_CM)


__all__ = ["by_class", "event_display", "mean_showers", "profiles", "variable_grid", "knob_effects", "validation",
           "view_images", "learning_curve", "CELL_CENTRES"]
