"""Training curves, live in a notebook, and domain-adaptation diagnostics. Only drawing; numbers come from
:mod:`amsnb.train`."""

from __future__ import annotations

import math

import numpy as np

#: (y label, ((history key, legend label), ...)) per panel of :func:`plot_history`; panels without data are left out.
PANELS = (
    ("loss", (("loss", "train total"), ("label_loss", "train label"), ("domain_loss", "train domain"),
              ("val_loss", "validation label"))),
    ("accuracy / AUC", (("acc", "train label"), ("val_acc", "validation label"), ("auc", "validation AUC"),
                        ("domain_acc", "domain classifier"))),
    ("rejection at 90% e eff.", (("rejection", "validation"),)),
)


def _finite(history, key):
    ep = [h["epoch"] for h in history if key in h and h[key] is not None and math.isfinite(float(h[key]))]
    val = [float(h[key]) for h in history if key in h and h[key] is not None and math.isfinite(float(h[key]))]
    return ep, val


def plot_history(history: list[dict], fig=None, title: str = "", panels=PANELS):
    """Training history of :func:`amsnb.train.fit` (any study): loss, accuracy / AUC (label and domain, 0.5 =
    chance) and validation rejection per epoch; a panel none of whose keys the history has is left out."""
    import matplotlib.pyplot as plt

    used = [(yl, curves) for yl, curves in panels if any(_finite(history, k)[0] for k, _ in curves)] or \
        list(panels[:1])
    fig = fig or plt.figure(figsize=(6.7 * len(used), 6))
    fig.clear()
    axes = np.atleast_1d(fig.subplots(1, len(used)))
    for ax, (ylabel, curves) in zip(axes, used):
        for key, label in curves:
            ep, val = _finite(history, key)
            if ep:
                ax.plot(ep, val, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if ylabel.startswith("accuracy"):
            ax.axhline(0.5, color="gray", ls=":", lw=1)
        if ylabel.startswith("rejection"):
            _rejection_axis(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    if title:
        from . import model_label

        fig.suptitle(model_label(title))
    fig.tight_layout()
    return fig


def _rejection_axis(ax) -> None:
    """Log scale where the rejections span a decade or more; plain numbers otherwise (a log axis over 3-8 shows
    only labels such as "3x10^0")."""
    vals = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()] or [np.zeros(0)])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size and vals.max() / vals.min() >= 10:
        ax.set_yscale("log")


class LiveCurves:
    """Redraw :func:`plot_history` in place after every epoch (pass ``live.update`` to ``fit(callbacks=[...])``).

    Outside a notebook (papermill, scripts) it only keeps the figure; the final one is shown at the end.
    """

    def __init__(self, title: str = ""):
        import matplotlib.pyplot as plt

        self.title = title
        self.fig = plt.figure(figsize=(20, 6))
        self.handle = None

    def update(self, history: list[dict]) -> None:
        plot_history(history, self.fig, self.title)
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is None:
                return
            if self.handle is None:
                self.handle = display(self.fig, display_id=True)
            else:
                self.handle.update(self.fig)
        except ImportError:
            pass

    def close(self):
        import matplotlib.pyplot as plt

        plt.close(self.fig)
        return self.fig


def plot_feature_pca(studies: dict[str, dict]):
    """Side-by-side 2-D PCA projections of the features, MC vs ISS-like, one panel per
    :func:`amsnb.ecal.experiment.domain_study` result (e.g. the model without and with DA)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(studies), figsize=(9 * len(studies), 8), squeeze=False)
    for ax, (name, st) in zip(axes[0], studies.items()):
        src, tgt, m = st["pca_source"], st["pca_target"], st["metrics"]
        ax.scatter(src[:, 0], src[:, 1], s=4, alpha=0.4, label="MC (source)", color="tab:blue")
        ax.scatter(tgt[:, 0], tgt[:, 1], s=4, alpha=0.4, label="ISS-like (target)", color="tab:orange")
        title = f"{name}\nprobe AUC {m.get('probe_auc', float('nan')):.3f}"
        if math.isfinite(m.get("head_auc", float("nan"))):
            title += f", domain-head AUC {m['head_auc']:.3f}"
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(markerscale=3, fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_scores(scores: dict[str, dict[str, np.ndarray]], bins: int = 40):
    """Classifier output per evaluation set, electrons vs protons (hist + mplhep; label -1 drawn as 'unlabeled')."""
    import matplotlib.pyplot as plt
    import mplhep as hep
    from hist import Hist

    fig, axes = plt.subplots(1, len(scores), figsize=(7.5 * len(scores), 6.5), squeeze=False)
    for ax, (name, d) in zip(axes[0], scores.items()):
        for lab, text, color in ((1, "electrons", "tab:blue"), (0, "protons", "tab:red"),
                                 (-1, "unlabeled", "gray")):
            sel = d["label"] == lab
            if not sel.any():
                continue
            h = Hist.new.Reg(bins, 0, 1, name="score", label="electron score").Double()
            h.fill(np.clip(d["score"][sel], 0, 1 - 1e-9))
            hep.histplot(h, ax=ax, density=True, label=f"{text} ({int(sel.sum())})", color=color, flow="none")
        ax.set_yscale("log")
        ax.set_title(name, fontsize="small")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


#: (row key, y label, log scale) per panel of :func:`plot_method_comparison`.
COMPARISON_PANELS = (("mc_test_rejection", "rejection at 90 %, mc_test", True),
                     ("iss_test_rejection", "rejection at 90 %, iss_test", True),
                     ("mc_threshold_iss_efficiency", "iss_test e eff. (MC threshold)", False),
                     ("probe_auc", "feature probe AUC", False))


def plot_method_comparison(rows: list[dict], panels=COMPARISON_PANELS):
    """Alignment methods x seeds (:func:`amsnb.ecal.da_compare.compare_alignments` rows): per panel one column per
    method, each seed a dot and the mean with the seeds' standard deviation as an error bar."""
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.5), squeeze=False)
    for ax, (key, label, log) in zip(axes[0], panels):
        for i, m in enumerate(methods):
            v = np.array([r[key] for r in rows if r["method"] == m and r.get(key) is not None], float)
            v = v[np.isfinite(v)]
            if not len(v):
                continue
            ax.plot(np.full(len(v), i) + np.linspace(-0.12, 0.12, len(v)), v, "o", color="tab:gray", alpha=0.6,
                    ms=4)
            ax.errorbar(i + 0.25, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, fmt="s", color="tab:blue",
                        capsize=3)
        ax.set_xticks(range(len(methods)), methods, fontsize="small")
        ax.set_xlim(-0.5, len(methods) - 0.3)
        ax.set_ylabel(label, fontsize="small")
        if log:
            ax.set_yscale("log")
    fig.tight_layout()
    return fig
