"""Threshold tuner: choose a working point (score threshold or target electron efficiency, energy range, model,
evaluation set) and read the electron efficiency, the proton rejection with its interval and the counts of
misidentified protons and lost electrons live; save it as a working point JSON for downstream notebooks.

The logic is the pure function :func:`readout` over a :class:`amsnb.working_points.WorkingPointEngine` (sorted
scores with cumulative sums, O(log n) per query; ``benchmarks/bench_widgets.py`` times it); :class:`ThresholdTuner`
only wires ipywidgets to it. It counts as notebook 05 does: plain event counts by default (seed 000), the files'
flux weights on request (the "Counts" switch, ``use_weights``); the page says which, and every readout line comes
from the same sums (with weights: the weighted sums, beside the raw counts).

The figure is built once, in its own style (:func:`amsnb.plotting.widget_style`), and its artists mutated; the Agg
buffer is sent as a PNG to an ``Image`` widget at its exact size, so the page shows exactly the kernel's frame. (An
ipympl canvas, ``interactive=True``, composes diff frames in the browser; in Voila its picture went stale after a
model switch and stacked the titles of several models: issue 23.) A slider move only blits the working-point marks
over a cached background: a full draw of the figure costs ~75 ms, more than the 50 ms budget.

Score files know their classes (:func:`amsnb.scores.score_kind`): a nuclei selection's scores read as signal nucleus
against background in rigidity, not as electrons and protons in energy.

Stable hooks for browser tests: CSS classes ``amsnb-readout`` (the table of :func:`readout_html`, exact values in
its ``data-*`` attributes), ``amsnb-eff-slider``, ``amsnb-thr-slider``, ``amsnb-save``, ``amsnb-demo-banner``,
``amsnb-tuner-figure``.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np

from .. import metrics, working_points
from ..errors import ConfigError, EmptySelectionError
from ..scores import ELECTRON_PROTON, ScoreKind

MODES = ("efficiency", "threshold")
#: The count modes of the "Counts" switch: ``use_weights`` False / True.
COUNT_MODES = (("event counts", False), ("flux-weighted", True))


# ------------------------------------------------------------------------------------------------ pure logic
def readout(engine: working_points.WorkingPointEngine, mode: str, value: float, energy_range=None,
            cl: float = 0.68) -> metrics.RejectionPoint:
    """The working point for a slider state: ``mode="threshold"`` (value = score threshold) or
    ``mode="efficiency"`` (value = target electron efficiency)."""
    if mode == "threshold":
        return engine.at_threshold(value, energy_range, cl)
    if mode == "efficiency":
        return engine.at_efficiency(value, energy_range, cl)
    raise ConfigError(f"mode='{mode}' must be one of {', '.join(MODES)}")


def _weight_text(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def readout_rows(p: metrics.RejectionPoint, kind: ScoreKind = ELECTRON_PROTON,
                 weighted: bool = False) -> list[tuple[str, str]]:
    """The readout for the eye, one quantity per row: rounded (efficiency in % to 0.1, the slider's step;
    threshold to 4 decimals; rejection as :meth:`~amsnb.metrics.RejectionPoint.rejection_text`), interval in
    brackets, counts as "k of n". ``weighted``: the counts rows give the weighted sums the efficiency and rejection
    come from (then efficiency = 1 - lost / all to the last digit), with the raw event counts in brackets."""
    sig, bkg = kind.signal, kind.background
    if weighted:
        passing = (f"{_weight_text(p.w_bkg_pass)} of {_weight_text(p.w_bkg)} "
                   f"(events: {p.n_bkg_pass} of {p.n_bkg})")
        lost = (f"{_weight_text(p.w_sig - p.w_sig_pass)} of {_weight_text(p.w_sig)} "
                f"(events: {p.n_sig_lost} of {p.n_sig})")
    else:
        passing, lost = f"{p.n_bkg_pass} of {p.n_bkg}", f"{p.n_sig_lost} of {p.n_sig}"
    return [(f"{sig} efficiency", f"{100 * p.efficiency:.1f} % [{100 * p.efficiency_lo:.1f}, "
                                  f"{100 * p.efficiency_hi:.1f}]"),
            (f"{bkg} rejection", p.rejection_text()),
            ("score threshold", f"{p.threshold:.4f}"),
            (f"misidentified {bkg}s" + (" (weighted)" if weighted else ""), passing),
            (f"lost {sig}s" + (" (weighted)" if weighted else ""), lost)]


def readout_text(p: metrics.RejectionPoint, kind: ScoreKind = ELECTRON_PROTON, weighted: bool = False) -> str:
    """The readout as plain text, one ``quantity: value`` per line (what :func:`readout_html` shows)."""
    return "\n".join(f"{k}: {v}" for k, v in readout_rows(p, kind, weighted))


def readout_html(p: metrics.RejectionPoint, kind: ScoreKind = ELECTRON_PROTON, weighted: bool = False) -> str:
    """The readout table; the exact values ride in ``data-*`` attributes (``repr``) so a browser test can compare
    what the page shows with :mod:`amsnb.metrics` to full precision."""
    rows = "".join(f"<tr><td style='padding-right:12px'>{k}</td><td><b>{v}</b></td></tr>"
                   for k, v in readout_rows(p, kind, weighted))
    return (f"<table class='amsnb-readout-values' data-threshold='{float(p.threshold)!r}' "
            f"data-efficiency='{float(p.efficiency)!r}' data-rejection='{float(p.rejection)!r}' "
            f"data-n-bkg-pass='{p.n_bkg_pass}' data-n-sig-lost='{p.n_sig_lost}' data-weighted='{int(weighted)}' "
            f"style='font-size:13px;line-height:1.35'>{rows}</table>")


DEMO_BANNER = ("<div class='amsnb-demo-banner' style='background:#fff3cd;border:1px solid #e0b000;padding:4px 8px;"
               "margin:2px 0 6px 0;font-size:13px'><b>Demonstration scores</b>: toy Beta-distributed scores "
               "(<code>amsnb.widgets.threshold_tuner.demo_scores</code>), not a trained classifier. Give a run folder "
               "or score files to tune a real working point.</div>")


def demo_scores(seed: int = 7, n_proton: int = 20000, n_electron: int = 5000) -> dict[str, dict[str, dict]]:
    """Synthetic score arrays for a standalone demonstration: ``{model: {set: arrays}}``.

    A documented toy, not physics: reconstructed energies log-uniform in 200-2000 GeV; electron scores
    ~ Beta(6, 2); proton scores ~ Beta(1, b) with b = 3 + 2 log10(E / 200 GeV) for "demo_bdt" (separation
    improving with energy) and b + 1.5 for "demo_cnn" (rejections ~25 and ~80 at 90 % efficiency, enough
    passing protons for visible changes per slider step); sets "mc_high_test" and "iss_test" differ by seed only.
    Unit weights. Deterministic for a given ``seed`` (the browser tests recompute it)."""
    out: dict[str, dict[str, dict]] = {}
    for k, eval_set in enumerate(("mc_high_test", "iss_test")):
        rng = np.random.default_rng(seed + 100 * k)
        n = n_proton + n_electron
        label = np.r_[np.zeros(n_proton, np.int8), np.ones(n_electron, np.int8)]
        energy = (200.0 * 10 ** rng.uniform(0, 1, n)).astype(np.float32)
        b = 3.0 + 2.0 * np.log10(energy / 200.0)
        u_e = rng.beta(6.0, 2.0, n)
        for model, extra in (("demo_bdt", 0.0), ("demo_cnn", 1.5)):
            u_p = rng.beta(1.0, b + extra)
            score = np.where(label == 1, u_e, u_p).astype(np.float32)
            out.setdefault(model, {})[eval_set] = {
                "run": np.full(n, seed, np.int32), "event": np.arange(n, dtype=np.int64), "label": label,
                "energy": energy, "weight": np.ones(n, np.float32), "score": score}
    return out


#: Temporary folders of :func:`demo_workdir`, kept alive until the interpreter (the dashboard's kernel) exits.
_DEMO_DIRS: list = []


def demo_workdir(seed: int = 7, **kw) -> Path:
    """:func:`write_demo_workdir` into a temporary folder that is removed when the process exits: the dashboard
    without a workdir used to leave one ``/tmp/amsnb_tuner_*`` folder per launch. A working point saved there is
    demonstration output and goes with it."""
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="amsnb_tuner_")
    _DEMO_DIRS.append(tmp)
    return write_demo_workdir(Path(tmp.name) / "demo", seed=seed, **kw)


def write_demo_workdir(workdir, seed: int = 7, **kw) -> Path:
    """Write :func:`demo_scores` as score files into ``workdir`` (amsnb.scores format); returns the workdir path."""
    from .. import scores as _scores
    from ..workdir import Workdir

    wd = Workdir(workdir)
    for model, sets in demo_scores(seed, **kw).items():
        for eval_set, arr in sets.items():
            _scores.write_scores(_scores.score_path(wd, model, eval_set), **arr)
    return wd.path


def _as_float32(arr: dict) -> dict:
    """Score files store float32; the tuner computes on exactly what the files hold."""
    return {k: (np.asarray(v, np.float32) if k in ("score", "energy", "weight") else np.asarray(v))
            for k, v in arr.items()}


# ------------------------------------------------------------------------------------------------ widget
class ThresholdTuner:
    """Interactive working-point chooser over ``{model: {set: score arrays}}`` (see module docstring)."""

    def __init__(self, scores: dict, energy_edges=None, cl: float = 0.68, save_dir=None, model=None,
                 eval_set=None, efficiency: float = 0.9, n_curve: int = 40, interactive: bool | None = False,
                 blit: bool | None = None, use_weights: bool = False, demo: bool | None = None,
                 kinds: dict[str, ScoreKind] | None = None):
        if not scores or not any(scores.values()):
            raise EmptySelectionError("ThresholdTuner: no score arrays given; pass {model: {set: arrays}} or use "
                                      "ThresholdTuner.from_workdir(workdir) after notebooks 03/04")
        # only sets with both classes labelled (an unlabelled flight set such as iss_target has no rejection)
        usable = {m: {s: _as_float32(a) for s, a in sets.items() if _labelled(a)} for m, sets in scores.items()}
        self.scores = {m: sets for m, sets in usable.items() if sets}
        if not self.scores:
            raise EmptySelectionError("ThresholdTuner: no score set has both electrons (label 1) and protons "
                                      "(label 0); the tuner needs labelled sets such as mc_test or iss_test")
        self.cl = cl
        self.use_weights = bool(use_weights)  # False: event counts (seed 000, notebook 05); True: the files' weights
        self.kinds = dict(kinds or {})  # {model: ScoreKind}; electron/proton where not given
        self.save_dir = Path(save_dir) if save_dir is not None else Path.cwd()
        self._edges_given = None if energy_edges is None else np.asarray(energy_edges, float)
        self._engines: dict[tuple[str, str], working_points.WorkingPointEngine] = {}
        self._curve_cache: dict = {}
        self.n_curve = n_curve
        # demonstration data (the models of demo_scores) carry a banner
        self.demo = all(m.startswith("demo_") for m in self.scores) if demo is None else bool(demo)
        self.model = model if model in self.scores else next(iter(self.scores))
        sets = self.scores[self.model]
        self.eval_set = eval_set if eval_set in sets else next(iter(sets))
        self.last_saved: Path | None = None
        self._muted = False
        self._interactive = interactive
        self._blit_requested = blit
        self._bg = None
        self._build(efficiency)

    @classmethod
    def from_workdir(cls, workdir, models=None, sets=None, **kw) -> ThresholdTuner:
        """Tuner over every current score file of a workdir (``amsnb.scores.load_scores``: stale ones are skipped);
        saves into ``05_evaluation/``."""
        from .. import scores as _scores
        from ..workdir import Workdir

        wd = Workdir(workdir)
        if not wd.exists():  # a read-only entry point: create nothing, say what is wrong
            raise ConfigError(f"{wd.path}: no such run folder; give the workdir of a run "
                              "(`amsnb run --workdir DIR`) that has scores/")
        kw.setdefault("save_dir", wd.notebook("05"))
        scores = _scores.load_scores(wd, models, sets)
        kw.setdefault("kinds", {m: _scores.score_kind(_scores.score_path(wd, m, next(iter(s))))
                                for m, s in scores.items()})
        return cls(scores, **kw)

    @classmethod
    def from_files(cls, score_files, **kw) -> ThresholdTuner:
        """Tuner over score files (a list, or one string of comma-separated paths and globs); the model is the
        file's folder name and the set its stem, as in ``scores/<model>/<set>.root`` (``amsnb.scores.load_scores``:
        stale ones are skipped). Saves beside the first file."""
        from .. import scores as _scores
        from ..io import expand_files

        files = expand_files(score_files)
        if not files:
            raise ConfigError("score_files is empty: give score files (scores/<model>/<set>.root) or a workdir")
        kw.setdefault("save_dir", files[0].parent)
        kw.setdefault("kinds", {f.parent.name: _scores.score_kind(f) for f in files})
        return cls(_scores.load_scores(files=files), **kw)

    # -------------------------------------------------------------- state
    def engine(self, model=None, eval_set=None) -> working_points.WorkingPointEngine:
        key = (model or self.model, eval_set or self.eval_set)
        if key not in self._engines:
            a = self.scores[key[0]][key[1]]
            edges = self._edges_given if self._edges_given is not None else _nice_edges(a["energy"], a["label"])
            w = a.get("weight") if self.use_weights else None
            self._engines[key] = working_points.WorkingPointEngine(a["score"], a["label"], w, a["energy"],
                                                                   edges=edges, name=f"{key[0]}/{key[1]}")
        return self._engines[key]

    @property
    def kind(self) -> ScoreKind:
        """What the current model's classes and axis are."""
        return self.kinds.get(self.model, ELECTRON_PROTON)

    @property
    def mode(self) -> str:
        return self.w_mode.value

    @property
    def energy_range(self) -> tuple[float, float]:
        return tuple(float(x) for x in self.w_energy.value)

    @property
    def point(self) -> metrics.RejectionPoint:
        value = self.w_eff.value if self.mode == "efficiency" else self.w_thr.value
        return readout(self.engine(), self.mode, value, self.energy_range, self.cl)

    # -------------------------------------------------------------- widgets
    def _build(self, efficiency: float) -> None:
        import ipywidgets as W

        eng = self.engine()
        style = {"description_width": "130px"}

        def lay():  # one Layout per widget: a shared Layout would hide all sliders together
            return W.Layout(width="520px")

        self.w_model = W.Dropdown(options=list(self.scores), value=self.model, description="Model", style=style)
        self.w_set = W.Dropdown(options=list(self.scores[self.model]), value=self.eval_set,
                                description="Evaluation set", style=style)
        self.w_mode = W.ToggleButtons(options=[("target efficiency", "efficiency"), ("threshold", "threshold")],
                                      value="efficiency", description="Slider sets", style=style)
        self.w_counts = W.ToggleButtons(options=list(COUNT_MODES), value=self.use_weights, description="Counts",
                                        style=style, tooltips=["plain event counts, as notebook 05 and seed 000",
                                                               "the score files' flux weights"])
        self.w_eff = W.FloatSlider(value=efficiency, min=0.5, max=0.999, step=0.001, readout_format=".3f",
                                   description=f"{self.kind.signal.capitalize()} efficiency", continuous_update=True,
                                   style=style, layout=lay())
        smin, smax = self._score_range()
        self.w_thr = W.FloatSlider(value=eng.threshold_for(efficiency), min=smin, max=smax,
                                   step=_nice_step(smax - smin), readout_format=".4f", description="Threshold",
                                   continuous_update=True, style=style, layout=lay())
        self.w_energy = W.SelectionRangeSlider(options=self._energy_options(), description=self._axis_description(),
                                               style=style, layout=lay())
        self.w_energy.index = (0, len(self.w_energy.options) - 1)
        self.w_readout = W.HTML()
        self.w_save = W.Button(description="Save working point", icon="save", layout=W.Layout(width="auto"),
                               tooltip="write working_point_<model>_<set>.json")
        self.w_status = W.HTML()
        for w, cls in ((self.w_readout, "amsnb-readout"), (self.w_eff, "amsnb-eff-slider"),
                       (self.w_thr, "amsnb-thr-slider"), (self.w_save, "amsnb-save"), (self.w_counts, "amsnb-counts"),
                       (self.w_model, "amsnb-model")):
            w.add_class(cls)
        self.w_thr.layout.display = "none"
        self._build_figure()
        banner = [W.HTML(DEMO_BANNER)] if self.demo else []
        self.widget = W.VBox(banner + [W.HBox([self.w_model, self.w_set]), self.w_counts, self.w_mode, self.w_eff,
                                       self.w_thr,
                                       self.w_energy, self.w_readout, self._canvas_widget,
                                       W.HBox([self.w_save, self.w_status])])
        self.w_model.observe(self._on_model, "value")
        self.w_set.observe(self._on_set, "value")
        self.w_mode.observe(self._on_mode, "value")
        self.w_counts.observe(self._on_counts, "value")
        for w in (self.w_eff, self.w_thr, self.w_energy):
            w.observe(lambda _c: self.update(), "value")
        self.w_save.on_click(lambda _b: self.save())
        self.update(curve=True)

    def _score_range(self):
        a = self.scores[self.model][self.eval_set]
        lab = a["label"] >= 0
        s = a["score"][lab]
        return float(s.min()), float(s.max())

    def _energy_options(self):
        e = self.engine().edges
        return [(f"{x:.0f}" if x >= 10 else f"{x:.3g}", float(x)) for x in e]

    def _axis_description(self) -> str:
        k = self.kind
        return f"{k.axis[0].upper() + k.axis[1:]} [{k.unit}]"

    def _build_figure(self) -> None:
        import ipywidgets as W

        from ..plotting import widget_figure, widget_style
        from ..plotting.performance import score_histograms

        # 864 x 351 px, shown at exactly that size (never scaled by the browser); with the ipympl toolbar it fits
        # JupyterLab's output area beside the file browser at a 1400 px wide window
        self.fig, self._interactive = widget_figure((9.6, 3.9), dpi=90, interactive=self._interactive)
        with widget_style():
            self.ax_curve, self.ax_hist = self.fig.subplots(1, 2)
            self.fig.subplots_adjust(left=0.08, right=0.98, wspace=0.24, bottom=0.14, top=0.9)
            (self.curve_line,) = self.ax_curve.plot([], [], color="#3f90da", lw=1.8)
            (self.curve_limits,) = self.ax_curve.plot([], [], color="#3f90da", lw=1.2, ls=":", marker="^", ms=5,
                                                      label="lower limit (no proton passes)")
            self.curve_band = None
            (self.wp_marker,) = self.ax_curve.plot([], [], "o", color="#bd1f01", ms=9, zorder=5)
            (self.limit_marker,) = self.ax_curve.plot([], [], "^", color="#bd1f01", ms=10, zorder=5, mfc="none")
            self.ax_curve.set_yscale("log")
            self.ax_curve.set_xlabel(f"{self.kind.signal} efficiency")
            self.ax_curve.set_ylabel(f"{self.kind.background} rejection")
            self.ax_curve.set_xlim(0.5, 1.0)
        self._score_histograms = score_histograms
        self.thr_line = None
        # blitting (restore the cached background, draw the moving marks): a full draw of this figure takes
        # ~75 ms, the marks alone a few ms. Static mode blits on the Agg canvas and ships the buffer as a PNG.
        self._blit = (True if self._blit_requested is None else self._blit_requested) and hasattr(
            self.fig.canvas, "copy_from_bbox")
        if self._blit:
            for a in (self.wp_marker, self.limit_marker):
                a.set_animated(True)
            self.fig.canvas.mpl_connect("draw_event", self._on_draw)
        if self._interactive:
            self._canvas_widget = self.fig.canvas
        else:
            width, height = (int(round(x)) for x in self.fig.bbox.size)
            self._canvas_widget = W.Image(format="png", layout=W.Layout(width=f"{width}px", height=f"{height}px",
                                                                        min_width=f"{width}px"))
        self._canvas_widget.add_class("amsnb-tuner-figure")

    # -------------------------------------------------------------- callbacks
    def _on_model(self, change) -> None:
        self.model = change["new"]
        sets = list(self.scores[self.model])
        keep = self.eval_set if self.eval_set in sets else sets[0]
        self.w_set.unobserve(self._on_set, "value")
        self.w_set.options = sets
        self.w_set.value = keep
        self.w_set.observe(self._on_set, "value")
        self.eval_set = keep
        self.w_eff.description = f"{self.kind.signal.capitalize()} efficiency"
        self._reset_ranges()

    def _on_set(self, change) -> None:
        self.eval_set = change["new"]
        self._reset_ranges()

    def _reset_ranges(self) -> None:
        self._muted = True  # no readout for the intermediate states of the sliders
        try:
            self.w_energy.options = self._energy_options()
            self.w_energy.description = self._axis_description()
            self.w_energy.index = (0, len(self.w_energy.options) - 1)
            smin, smax = self._score_range()
            self.w_thr.min, self.w_thr.max = min(smin, self.w_thr.min), max(smax, self.w_thr.max)
            self.w_thr.min, self.w_thr.max = smin, smax
        finally:
            self._muted = False
        self.update(curve=True)

    def _on_counts(self, change) -> None:
        """Event counts <-> flux weights: new engines (their sums), same slider state, curve and readout redone."""
        self.use_weights = bool(change["new"])
        self._engines.clear()
        self.update(curve=True)

    def _on_mode(self, change) -> None:
        # carry the current working point over to the other slider
        old_value = self.w_eff.value if change["old"] == "efficiency" else self.w_thr.value
        old = readout(self.engine(), change["old"], old_value, self.energy_range, self.cl)
        if change["new"] == "threshold":
            self.w_thr.value = min(max(old.threshold, self.w_thr.min), self.w_thr.max)
            self.w_thr.layout.display, self.w_eff.layout.display = None, "none"
        else:
            self.w_eff.value = min(max(round(old.efficiency, 3), self.w_eff.min), self.w_eff.max)
            self.w_eff.layout.display, self.w_thr.layout.display = None, "none"
        self.update()

    def update(self, curve: bool | None = None) -> metrics.RejectionPoint | None:
        """Recompute the readout and move the artists; the curve is recomputed only when the selection changed."""
        if self._muted:
            return None
        key = (self.model, self.eval_set, self.energy_range)
        try:
            p = self.point
        except EmptySelectionError as exc:
            self.w_readout.value = f"<span style='color:#bd1f01'>{exc}</span>"
            return None
        self.current = p
        k = self.kind
        counts = "flux-weighted" if self.use_weights else "event counts"
        self.w_readout.value = (f"<div class='amsnb-readout-text' data-counts='{counts}'><b>{self.model} / "
                                f"{self.eval_set}</b>, {k.axis} {self.energy_range[0]:.0f}-"
                                f"{self.energy_range[1]:.0f} {k.unit}, {counts}"
                                f"{readout_html(p, k, self.use_weights)}</div>")
        if curve or key != getattr(self, "_curve_key", None):
            self._update_curve(key)
        self._update_marks(p)
        self._show()
        return p

    def _update_curve(self, key) -> None:
        from ..plotting import widget_style

        with widget_style():
            self._update_curve_styled(key)

    def _update_curve_styled(self, key) -> None:
        from ..plotting import freeze_style

        eng = self.engine()
        effs = np.linspace(0.5, 0.999, self.n_curve)
        c = eng.curve(effs, self.energy_range, self.cl)
        self._curve_key = key
        rej = np.where(c.is_lower_limit, np.nan, c.rejection)
        self.curve_line.set_data(c.efficiency, rej)
        self.curve_limits.set_data(c.efficiency[c.is_lower_limit], c.rejection[c.is_lower_limit])
        self.curve_line.set_label(f"{self.model} / {self.eval_set}")
        self.ax_curve.set_xlabel(f"{self.kind.signal} efficiency")
        self.ax_curve.set_ylabel(f"{self.kind.background} rejection")
        if self.curve_band is not None:
            self.curve_band.remove()
        self.curve_band = self.ax_curve.fill_between(c.efficiency, np.where(np.isnan(rej), np.nan, c.rejection_lo),
                                                     np.where(np.isnan(rej), np.nan, c.rejection_hi),
                                                     color="#3f90da", alpha=0.25, lw=0)
        finite = c.rejection[np.isfinite(c.rejection)]
        self.ax_curve.set_ylim(max(0.8, 0.7 * finite.min()), 2.0 * finite.max())
        self.ax_curve.set_title(f"{self.model} / {self.eval_set}")
        # histograms: redrawn only with the selection (not per threshold)
        self.ax_hist.clear()
        er = self.energy_range
        _, self.thr_line = self._score_histograms(eng.scores_in(1, er), eng.scores_in(0, er), eng.weights_in(1, er),
                                                  eng.weights_in(0, er), ax=self.ax_hist,
                                                  labels=(f"{self.kind.signal}s", f"{self.kind.background}s"))
        if self.ax_hist.get_legend() is not None:  # above the axes: the moving threshold line never crosses it
            self.ax_hist.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize="small",
                                frameon=False, borderaxespad=0.2)
        freeze_style(self.fig)  # ticks in the widget style, not the notebook's (we are inside widget_style)
        self.thr_line.set_animated(self._blit)
        self._bg = None  # the background changed: the next mark update does a full draw

    def _update_marks(self, p: metrics.RejectionPoint) -> None:
        if p.is_lower_limit:
            self.wp_marker.set_data([], [])
            self.limit_marker.set_data([p.efficiency], [p.rejection])
        else:
            self.wp_marker.set_data([p.efficiency], [p.rejection])
            self.limit_marker.set_data([], [])
        if self.thr_line is not None:
            self.thr_line.set_xdata([p.threshold, p.threshold])
        from ..plotting import frontend_ready, request_draw

        canvas = self.fig.canvas
        if not self._blit:
            if self._interactive:
                canvas.draw_idle()  # static mode: _show draws
        elif self._bg is None or not frontend_ready(self.fig):
            request_draw(self.fig)  # full draw (ipympl: once shown); _on_draw caches the background, adds the marks
        else:
            canvas.restore_region(self._bg)
            self._draw_marks()
            canvas.blit(self.fig.bbox)

    def _animated(self):
        return [a for a in (self.wp_marker, self.limit_marker, self.thr_line) if a is not None]

    def _draw_marks(self) -> None:
        for a in self._animated():
            a.axes.draw_artist(a)

    def _on_draw(self, _event) -> None:
        """After any full draw (resize, selection change): cache the background without the marks, add them."""
        canvas = self.fig.canvas
        self._bg = canvas.copy_from_bbox(self.fig.bbox)
        self._draw_marks()

    @contextlib.contextmanager
    def static(self):
        """``with tuner.static() as fig:`` the figure with the marks drawn as normal artists, for ``savefig`` /
        ``wd.save_figure`` / ``display`` (which skip animated artists); blitting resumes afterwards."""
        for a in self._animated():
            a.set_animated(False)
        try:
            yield self.fig
        finally:
            for a in self._animated():
                a.set_animated(self._blit)
            self._bg = None  # a savefig may have drawn at another dpi: redraw and re-cache on the next update
            if getattr(self, "current", None) is not None:
                self._update_marks(self.current)
                self._show()

    def _show(self) -> None:
        """Static mode: the Agg buffer (already blitted or drawn) as a fast PNG into the Image widget."""
        if self._interactive:
            return
        from ..plotting import canvas_png

        if not self._blit:
            self.fig.canvas.draw()
        self._canvas_widget.value = canvas_png(self.fig)

    # -------------------------------------------------------------- output
    def save(self, path=None) -> Path:
        """Write the current working point JSON (``working_point_<model>_<set>.json`` in ``save_dir``)."""
        p = self.point
        path = Path(path) if path is not None else self.save_dir / f"working_point_{self.model}_{self.eval_set}.json"
        lo, hi = self.energy_range
        out = working_points.save_working_point(path, p, model=self.model, eval_set=self.eval_set,
                                                energy_range=(lo, hi))
        self.last_saved = out
        note = (" (demonstration scores: this folder is temporary and is removed when the app stops)"
                if self.demo else "")
        self.w_status.value = f"<span class='amsnb-save-status'>saved <code>{out}</code>{note}</span>"
        return out

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def _labelled(a: dict) -> bool:
    lab = np.asarray(a["label"])
    return bool((lab == 1).any() and (lab == 0).any())


def _nice_edges(energy, label, n_max: int = 12) -> np.ndarray:
    """Log-spaced energy edges over the labelled events, rounded to 2 significant digits, at most ``n_max``
    bins and on average >= 200 events per bin so each bin has a usable rejection."""
    e = np.asarray(energy, float)[np.asarray(label) >= 0]
    if e.size == 0:
        raise EmptySelectionError("ThresholdTuner: no labelled events (label 0 or 1) in the score file")
    lo, hi = float(e.min()), float(e.max())
    n = int(max(1, min(n_max, e.size // 200)))
    if lo <= 0 or hi <= lo:
        return np.array([lo, np.nextafter(hi, np.inf)]) if hi > lo else np.array([lo, lo + 1.0])
    edges = np.geomspace(lo, hi, n + 1)
    mid = np.array([float(f"{x:.2g}") for x in edges[1:-1]])
    edges = np.unique(np.r_[lo, mid[(mid > lo) & (mid < hi)], np.nextafter(hi, np.inf)])
    return edges


def _nice_step(span: float) -> float:
    """The threshold slider's step (one key press): a power of ten near 1/500 of the score range (0.001 for
    scores in [0, 1])."""
    if not span > 0 or not math.isfinite(span):
        return 0.001
    return float(10 ** math.floor(math.log10(span / 500)))
