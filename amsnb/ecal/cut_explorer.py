"""Cut explorer: move one cut's bounds with sliders and see the cut flow and its N-1 distribution update.

The widget is thin wiring around :func:`explore`, a pure function (cut set + window -> cut flow + N-1 data), so the
behaviour is tested by setting ``slider.value`` and reading ``explorer.state`` (the ipywidgets testing pattern).
The Voila app ``widgets/cut_explorer.ipynb`` builds it with :meth:`CutExplorer.from_source`. The sliders cannot
cross: a minimum moved above the maximum (or the reverse) is refused, the slider goes back and the window label
says why. The N-1 figure has its own style (:func:`amsnb.plotting.widget_style`) and, in a Jupyter kernel with
ipympl, an ipympl canvas (:func:`amsnb.plotting.widget_figure`); elsewhere a PNG.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..cuts import CutFlow, CutSet, NMinusOne, cut_flow, load, n_minus_one
from ..errors import ConfigError

#: Table-1 reconstructed-energy range of the demonstration sample (GeV): mc_high's, generated a little wider
DEMO_ENERGY_RANGE = (900.0, 2200.0)


def demo_sample(n: int = 20000, seed: int = 5, energy_range=DEMO_ENERGY_RANGE) -> dict[str, np.ndarray]:
    """``n`` simulated MC events, half electrons and half protons, in ``energy_range`` (reconstructed energy): the
    cut explorer app's data when no file is given. Seeded, so a test rebuilds exactly what the app shows."""
    from .sim import simulate

    if int(n) < 2:
        raise ConfigError(f"n_events={n}: the demonstration sample needs at least 2 events")
    parts = [simulate(int(n) // 2 + i * (int(n) % 2), part, "mc", seed=[seed, i], energy_range=energy_range)
             for i, part in enumerate(("electron", "proton"))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def load_events(data_files: str = "", cuts="default", mapping: str | None = None, n_events: int = 20000,
                seed: int = 5) -> dict[str, np.ndarray]:
    """The branches the cut set needs (plus ``label``/``weight``), from ROOT files (comma-separated paths or a glob;
    ``mapping`` translates a user's branch names) or, with ``data_files`` empty, from :func:`demo_sample`.
    ``n_events`` caps what is read (0: everything). Events with a NaN/inf value are kept: they fail the cut flow's
    "finite values" step, which names the branches and their event counts, as in notebook 02."""
    if not data_files:
        return demo_sample(n_events, seed)
    from .. import io

    branches = load(cuts).branches() + ["label", "weight"]
    return io.read(io.expand_files(data_files), branches=branches, mapping=mapping or None, nan_policy="keep",
                   max_events=int(n_events) or None)


@dataclass
class ExplorerState:
    cutset: CutSet
    cut: str
    flow: CutFlow
    nm1: NMinusOne


def explore(arrays: Mapping[str, np.ndarray], cutset, cut: str, lo=..., hi=..., set_name: str | None = None
            ) -> ExplorerState:
    """Cut flow and N-1 distribution with ``cut``'s window set to [lo, hi] (``...`` keeps a bound as it is)."""
    cs = load(cutset).with_window(cut, min=lo, max=hi, set_name=set_name)
    return ExplorerState(cs, cut, cut_flow(arrays, cs, set_name), n_minus_one(arrays, cs, set_name, [cut])[cut])


class CutExplorer:
    """``CutExplorer(arrays, cuts="default", set_name="mc_high")``: a dropdown picks the cut, two sliders its
    bounds; the table and the plot follow. ``state`` holds the last result."""

    def __init__(self, arrays: Mapping[str, np.ndarray], cuts="default", set_name: str | None = None,
                 cut: str | None = None, steps: int = 100):
        import ipywidgets as W

        self.arrays = arrays
        self.cutset = load(cuts)
        self.set_name = set_name
        self.steps = steps
        if cut is not None and cut not in self.cutset.names:
            raise ConfigError(f"cut='{cut}' is not in cut set '{self.cutset.name}'; choose from {self.cutset.names}")
        self.cut_select = W.Dropdown(options=self.cutset.names, value=cut or self.cutset.names[0], description="cut")
        self.lo = W.FloatSlider(description="min", continuous_update=False, layout=W.Layout(width="360px"))
        self.hi = W.FloatSlider(description="max", continuous_update=False, layout=W.Layout(width="360px"))
        self.window_label = W.HTML()
        self.table = W.HTML()
        self.message = W.HTML()
        self._build_figure()
        for w, css in ((self.cut_select, "amsnb-cut-select"), (self.lo, "amsnb-cut-lo"), (self.hi, "amsnb-cut-hi"),
                       (self.window_label, "amsnb-cut-window"), (self.table, "amsnb-cut-table"),
                       (self.image, "amsnb-cut-figure"), (self.message, "amsnb-cut-message")):
            w.add_class(css)
        self._updating = False
        self.state: ExplorerState | None = None
        self._configure()
        self.cut_select.observe(lambda _c: self._configure(), names="value")
        self.lo.observe(self._on_slider, names="value")
        self.hi.observe(self._on_slider, names="value")
        self.widget = W.VBox([W.HBox([self.cut_select, self.lo, self.hi]), self.message, self.window_label,
                              self.table, self.image])

    @classmethod
    def from_source(cls, data_files: str = "", cuts="default", set_name: str | None = None, cut: str | None = None,
                    mapping: str | None = None, n_events: int = 20000, seed: int = 5) -> CutExplorer:
        """The explorer on ROOT files or, with ``data_files`` empty, on a simulated sample (:func:`load_events`)."""
        return cls(load_events(data_files, cuts, mapping, n_events, seed), cuts, set_name=set_name, cut=cut)

    def _configure(self) -> None:
        """Slider ranges from the variable's spread and the current window of the chosen cut."""
        cut = self.cutset[self.cut_select.value]
        values = np.asarray(self.cutset.values(self.arrays, cut.variable), np.float64)
        values = values[np.isfinite(values)]
        lo_w, hi_w = cut.window(self.set_name)
        vmin, vmax = (np.percentile(values, [0.1, 99.9]) if len(values) else (0.0, 1.0))
        vmin = min(vmin, lo_w) if lo_w is not None else vmin
        vmax = max(vmax, hi_w) if hi_w is not None else vmax
        vmax = vmax if vmax > vmin else vmin + 1.0
        self._updating = True
        for s, val, enabled in ((self.lo, lo_w, lo_w is not None), (self.hi, hi_w, hi_w is not None)):
            s.min, s.max = -1e300, 1e300  # avoid transient min > max clamps while resetting
            s.min, s.max = float(vmin), float(vmax)
            s.step = float((vmax - vmin) / self.steps)
            s.readout_format = _readout_format(s.step)
            s.value = float(val) if enabled else (float(vmin) if s is self.lo else float(vmax))
            s.disabled = not enabled
        self._updating = False
        self.update()

    def _on_slider(self, change) -> None:
        if self._updating:
            return
        if not (self.lo.disabled or self.hi.disabled) and self.lo.value > self.hi.value:
            moved = "minimum" if change["owner"] is self.lo else "maximum"
            self.message.value = (f"<span style='color:#bd1f01'>refused: the {moved} "
                                  f"{_readout(change['new'], self.lo.step)} would pass the "
                                  f"{'maximum' if moved == 'minimum' else 'minimum'} "
                                  f"{_readout((self.hi if moved == 'minimum' else self.lo).value, self.lo.step)}; "
                                  f"the window stays as it was</span>")
            self._updating = True
            try:
                change["owner"].value = change["old"]
            finally:
                self._updating = False
            return
        self.message.value = ""
        self.update()

    def update(self) -> ExplorerState:
        """Recompute for the current slider values and redraw."""
        cut = self.cutset[self.cut_select.value]
        lo_w, hi_w = cut.window(self.set_name)
        lo = float(self.lo.value) if lo_w is not None else None
        hi = float(self.hi.value) if hi_w is not None else None
        self.state = explore(self.arrays, self.cutset, cut.name, lo, hi, self.set_name)
        self.window_label.value = self.window_html()
        self.table.value = self.state.flow.html()
        self._draw()
        return self.state

    def window_html(self) -> str:
        """The window in force, rounded for the eye; the exact bounds (``repr``) ride in data attributes so a
        browser test can recompute the cut flow for precisely what the page shows."""
        cut = self.state.cutset[self.state.cut]
        lo, hi = cut.window(self.set_name)
        step = self.lo.step if not self.lo.disabled else self.hi.step
        parts = ([] if lo is None else [_readout(lo, step)]) + [f"<code>{html.escape(cut.variable)}</code>"]
        text = " &le; ".join(parts + ([] if hi is None else [_readout(hi, step)]))
        return (f'<span class="amsnb-cut-bounds" data-lo="{lo!r}" '
                f'data-hi="{hi!r}">{html.escape(cut.name)}: {text}</span>')

    def _build_figure(self) -> None:
        import ipywidgets as W

        from ..plotting import widget_figure, widget_style

        # off pyplot: no second copy shown by the inline backend. Fixed margins: with layout="constrained" a
        # slider release took 220 ms instead of 90 ms (bench_widgets.cut_explorer(quick=True), 2e4 events)
        self._fig, self._interactive = widget_figure((6.5, 4), dpi=100)
        with widget_style():
            self._ax = self._fig.add_subplot()
        self._fig.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.9)
        if self._interactive:
            self.image = self._fig.canvas
        else:
            width, height = (int(round(x)) for x in self._fig.bbox.size)
            self.image = W.Image(format="png", layout=W.Layout(width=f"{width}px", height=f"{height}px"))

    def _draw(self) -> None:
        from ..plotting import canvas_png, freeze_style, request_draw, widget_style
        from ..plotting.cuts import single_n_minus_one

        with widget_style():  # the draw too: ticks are made at draw time, in the rcParams then in force
            single_n_minus_one(self.state.nm1, self._ax)
            if self._interactive:
                freeze_style(self._fig)
            else:
                self._fig.canvas.draw()
        if self._interactive:
            request_draw(self._fig)  # ipympl: drawn when the browser asks
        else:
            self.image.value = canvas_png(self._fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def _readout_format(step: float) -> str:
    """Slider readout with as many decimals as the step needs, never exponent notation (``1000``, not ``1.00e+3``)."""
    if not step > 0:
        return ".2f"
    return f".{max(0, min(6, -int(np.floor(np.log10(step)))))}f"


def _readout(value: float, step: float) -> str:
    return format(float(value), _readout_format(step))
