"""Cut explorer: move one cut's bounds with sliders and see the cut flow and its N-1 distribution update.

The widget is thin wiring around :func:`explore`, a pure function (cut set + window -> cut flow + N-1 data), so the
behaviour is tested by setting ``slider.value`` and reading ``explorer.state`` (the ipywidgets testing pattern).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..cuts import CutFlow, CutSet, NMinusOne, cut_flow, load, n_minus_one


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
        self.cut_select = W.Dropdown(options=self.cutset.names, value=cut or self.cutset.names[0], description="cut")
        self.lo = W.FloatSlider(description="min", continuous_update=False, readout_format=".3g")
        self.hi = W.FloatSlider(description="max", continuous_update=False, readout_format=".3g")
        self.table = W.HTML()
        self.out = W.Output()
        self._fig = None
        self._updating = False
        self.state: ExplorerState | None = None
        self._configure()
        self.cut_select.observe(lambda _c: self._configure(), names="value")
        self.lo.observe(self._on_slider, names="value")
        self.hi.observe(self._on_slider, names="value")
        self.widget = W.VBox([W.HBox([self.cut_select, self.lo, self.hi]), self.table, self.out])

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
            s.value = float(val) if enabled else (float(vmin) if s is self.lo else float(vmax))
            s.disabled = not enabled
        self._updating = False
        self.update()

    def _on_slider(self, _change) -> None:
        if not self._updating:
            self.update()

    def update(self) -> ExplorerState:
        """Recompute for the current slider values and redraw."""
        cut = self.cutset[self.cut_select.value]
        lo_w, hi_w = cut.window(self.set_name)
        lo = float(self.lo.value) if lo_w is not None else None
        hi = float(self.hi.value) if hi_w is not None else None
        self.state = explore(self.arrays, self.cutset, cut.name, lo, hi, self.set_name)
        self.table.value = self.state.flow.html()
        self._draw()
        return self.state

    def _draw(self) -> None:
        import matplotlib.pyplot as plt

        from ..plotting.cuts import single_n_minus_one

        if self._fig is None:
            with plt.ioff():
                self._fig, self._ax = plt.subplots(figsize=(6, 4))
        single_n_minus_one(self.state.nm1, self._ax)
        self.out.clear_output(wait=True)
        with self.out:
            from IPython.display import display

            display(self._fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
