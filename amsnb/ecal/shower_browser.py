"""Shower browser: step through ECAL events of a sample, both views as log-scale heat maps, the longitudinal and
lateral profiles and the event's reconstructed variables.

The logic is two pure functions, :func:`select_events` and :func:`event_view` (tested without any widget); the
:class:`ShowerBrowser` only wires ipywidgets to them. The figure is built once and its artists are mutated per
event and blitted over a cached background, so an update takes ~10-20 ms. Inside a Jupyter kernel with ipympl
installed (JupyterLab, Voila, whatever ``%matplotlib`` backend) the canvas is an ipympl widget (zoom, pan; the first
full draw happens when the browser shows it, never before: see :func:`amsnb.plotting.widget_figure`); otherwise
(plain Python, ``use_widget_canvas=False``) the Agg buffer is sent as a PNG to an ``Image`` widget at its exact size.
The figure has its own style (:func:`amsnb.plotting.widget_style`), independent of the notebook's.

Stable hooks for browser tests: CSS classes ``amsnb-event-label`` (text "event 3 / 200, E = 1234.5 GeV"),
``amsnb-reco-table``, ``amsnb-next``, ``amsnb-prev``, ``amsnb-keys`` (type n / p to step), ``amsnb-shower-figure``
(the canvas or image).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError, EmptySelectionError
from ..schema import DOMAIN_NAMES, ECAL, N_CELLS
from .reco import IS_X, LAYER_X0, lateral_profile

#: Variables shown in the event's table.
TABLE_VARIABLES = ("energy", "true_energy", "rigidity", "e_over_r", "tracker_charge", "trd_llr", "track_chi2",
                   "shower_max", "shower_alpha", "lateral_rms", "f_front", "f_rear", "f_core", "s1_s3", "s3_s5",
                   "n_hit_cells", "n_saturated", "entry_x", "entry_y", "dxdz", "dydz")
_LATERAL_EDGES = np.arange(0, 15.3, 0.9)
_CLASS_NAMES = {1: "electron", 0: "proton", -1: "unknown"}


def select_events(data: dict[str, np.ndarray], particle: str = "all", domain: str = "all",
                  energy_range: tuple[float, float] | None = None) -> np.ndarray:
    """Indices of the events of one class ("all", "electron", "proton", "unknown"), domain ("all", "mc", "iss")
    and reconstructed-energy range (GeV)."""
    n = len(data["energy"])
    keep = np.ones(n, bool)
    if particle != "all":
        codes = {v: k for k, v in _CLASS_NAMES.items()}
        if particle not in codes:
            raise ConfigError(f"particle='{particle}' must be one of all, {', '.join(codes)}")
        keep &= data.get("label", np.full(n, -1)) == codes[particle]
    if domain != "all":
        if domain not in ("mc", "iss"):
            raise ConfigError(f"domain='{domain}' must be all, mc or iss")
        keep &= data.get("domain", np.zeros(n)) == (0 if domain == "mc" else 1)
    if energy_range is not None:
        keep &= (data["energy"] >= energy_range[0]) & (data["energy"] <= energy_range[1])
    return np.flatnonzero(keep)


def first_event(data: dict[str, np.ndarray], particle: str = "all", energy_range=None,
                central_cm: float | None = 20.0) -> int:
    """Index of the first event of a class in an energy range entering within ``central_cm`` of the ECAL centre
    (0 if there is none, e.g. unlabeled data)."""
    idx = select_events(data, particle, "all", energy_range)
    if central_cm is not None and len(idx):
        central = (np.abs(data["entry_x"][idx]) < central_cm) & (np.abs(data["entry_y"][idx]) < central_cm)
        idx = idx[central] if central.any() else idx
    return int(idx[0]) if len(idx) else 0


def event_label(position: int, total: int, energy: float) -> str:
    """The readout text: ``event 3 / 200, E = 1234.5 GeV`` (1-based position within the selection)."""
    return f"event {position + 1} / {total}, E = {energy:.1f} GeV"


def event_view(data: dict[str, np.ndarray], index: int) -> dict:
    """Everything the browser draws for event ``index``: the x- and y-view images (layers x cells, MeV), the
    longitudinal profile (energy fraction per layer), the lateral profile, and the table of variables."""
    img = np.asarray(data["ecal_edep"][index], np.float32)
    reco = {k: np.asarray(data[k][index:index + 1]) for k in ("entry_x", "entry_y", "dxdz", "dydz")}
    centres, lat = lateral_profile(img[None], reco, _LATERAL_EDGES)
    total = float(img.sum())
    rows = [(k, float(data[k][index])) for k in TABLE_VARIABLES if k in data]
    label = int(data["label"][index]) if "label" in data else -1
    dom = DOMAIN_NAMES.get(int(data["domain"][index]), "?") if "domain" in data else "?"
    return {
        "x_view": img[IS_X], "y_view": img[~IS_X],
        "longitudinal": img.sum(1) / total if total > 0 else np.zeros(len(img)),
        "lateral": (centres, lat),
        "table": rows,
        "title": f"{_CLASS_NAMES.get(label, '?')}, {dom}, run {int(data['run'][index]) if 'run' in data else 0} "
                 f"event {int(data['event'][index]) if 'event' in data else index}",
        "energy": float(data["energy"][index]),
    }


def _unit(name: str) -> str:
    try:
        return ECAL[name].unit
    except (KeyError, AttributeError, TypeError):
        return ""


def format_value(value: float) -> str:
    """A table value for the eye: integers as integers, else 4 significant digits without exponent notation
    (down to 1e-4; smaller magnitudes keep the exponent)."""
    v = float(value)
    if not np.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e7:
        return f"{int(v)}"
    if abs(v) >= 1e-4:
        digits = max(0, 3 - int(np.floor(np.log10(abs(v)))))
        return f"{v:.{digits}f}"
    return f"{v:.3g}"


def table_html(rows) -> str:
    """The variables table: name, value, unit."""
    cells = "".join(f"<tr><td>{k}</td><td style='text-align:right;padding:0 4px'>{format_value(v)}</td>"
                    f"<td>{_unit(k)}</td></tr>" for k, v in rows)
    head = "<tr><th style='text-align:left'>variable</th><th>value</th><th style='text-align:left'>unit</th></tr>"
    return f"<table class='amsnb-reco-vars' style='font-size:12px'>{head}{cells}</table>"


def empty_label(particle: str, domain: str, energy_range) -> str:
    """The readout when the filters select nothing: ``no events match: class unknown, domain all, E 57-2480 GeV``."""
    text = f"no events match: class {particle}, domain {domain}"
    if energy_range is not None:
        text += f", E {energy_range[0]:.0f}-{energy_range[1]:.0f} GeV"
    return text


def _load(data, n: int, seed: int, energy_range, mapping=None) -> dict[str, np.ndarray]:
    if data is None or (isinstance(data, str) and not data):
        from .sim import simulate

        parts = [simulate(n // 4, part, dom, seed=[seed, i], energy_range=energy_range)
                 for i, (part, dom) in enumerate([("electron", "mc"), ("proton", "mc"), ("electron", "iss"),
                                                  ("proton", "iss")])]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if isinstance(data, (str, os.PathLike, list, tuple)):
        from .. import io

        # the user's files through their mapping (sparse hits, derived variables, a tag's labels); events with
        # NaN/inf values or bad hits cannot be drawn and are skipped
        return io.read(io.expand_files(data), mapping=mapping or None, nan_policy="drop", max_events=n if n else None)
    if isinstance(data, dict):
        if "ecal_edep" not in data or "energy" not in data:
            raise ConfigError("ShowerBrowser data needs at least the 'ecal_edep' and 'energy' arrays")
        return data
    raise ConfigError(f"ShowerBrowser data must be a ROOT file path, a dict of arrays or None, not {type(data)}")


def _at_depth(view_image: np.ndarray, rows: np.ndarray) -> np.ma.MaskedArray:
    """One view's layers placed in the 18 layers of the ECAL (the other view's and empty cells masked)."""
    full = np.ma.masked_all((len(rows), view_image.shape[1]))
    full[rows] = np.ma.masked_less_equal(view_image, 0)
    return full


class ShowerBrowser:
    """Interactive event browser. ``ShowerBrowser(data)`` with ``data`` a dict of schema arrays, ROOT files (a path,
    a list, a glob or a comma-separated string; ``mapping``: their branch mapping, docs/mapping.md), or None
    (simulate ``n`` events on the fly: electrons and protons, MC and ISS-like)."""

    def __init__(self, data=None, *, n: int = 200, seed: int = 1, energy_range: tuple[float, float] = (200.0, 2000.0),
                 use_widget_canvas: bool | None = None, blit: bool | None = None, mapping=None):
        self.data = _load(data, n, seed, energy_range, mapping)
        if len(self.data["energy"]) == 0:
            raise EmptySelectionError("ShowerBrowser: the sample has no events")
        self.selection = select_events(self.data)
        self.position = 0
        self._build_figure(use_widget_canvas)
        self.blit = True if blit is None else blit
        self._background = None
        if self.blit:  # redraw only the changing artists over a cached background (~10x faster than a full draw)
            for artist in self._artists:
                artist.set_animated(True)
            self.fig.canvas.mpl_connect("draw_event", self._cache_background)
        self._build_widgets()
        self.show(0)

    # ---------------------------------------------------------------- figure (built once, artists mutated)
    def _build_figure(self, use_widget_canvas):
        from matplotlib.colors import LogNorm

        from ..plotting import widget_figure, widget_style

        # 800 x 520 px at 80 dpi, shown at exactly that size (a PNG scaled by the browser is blurred)
        self.fig, self.widget_canvas = widget_figure((10, 6.5), dpi=80, interactive=use_widget_canvas)
        fig = self.fig
        with widget_style():
            gs = fig.add_gridspec(2, 3, width_ratios=(1, 1, 0.045), height_ratios=(1, 1), left=0.07, right=0.92,
                                  bottom=0.09, top=0.9, hspace=0.38, wspace=0.28)
            self.ax_x, self.ax_y = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
            self.ax_cbar = fig.add_subplot(gs[0, 2])  # its own axis: the colour bar covers no image
            self.ax_long, self.ax_lat = fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1])
            norm = LogNorm(vmin=1.0, vmax=2e5)  # fixed: 1 MeV .. above the 169 GeV cell saturation
            # all 18 layers at their depth, the other view's layers blank: the same depth at the same height in both
            extent = (0, N_CELLS, len(IS_X) * LAYER_X0, 0)
            self.im_x = self.ax_x.imshow(np.full((len(IS_X), N_CELLS), np.nan), aspect="auto", norm=norm,
                                         cmap="viridis", interpolation="nearest", extent=extent)
            self.im_y = self.ax_y.imshow(np.full((len(IS_X), N_CELLS), np.nan), aspect="auto", norm=norm,
                                         cmap="viridis", interpolation="nearest", extent=extent)
            fig.colorbar(self.im_y, cax=self.ax_cbar, label="cell energy [MeV]")
            for ax, v in ((self.ax_x, "x"), (self.ax_y, "y")):
                ax.set_xlabel(f"cell ({v} view, {int((IS_X if v == 'x' else ~IS_X).sum())} layers)")
                ax.set_facecolor("#f4f4f4")
            self.ax_x.set_ylabel(r"depth [$X_0$]")
            depth = (np.arange(18) + 0.5) * LAYER_X0
            (self.line_long,) = self.ax_long.plot(depth, np.zeros(18), "o-", ms=3)
            self.ax_long.set_xlabel(r"depth [$X_0$]")
            self.ax_long.set_ylabel("energy fraction per layer")
            self.ax_long.set_ylim(1e-4, 1)
            self.ax_long.set_yscale("log")
            centres = 0.5 * (_LATERAL_EDGES[1:] + _LATERAL_EDGES[:-1])
            (self.line_lat,) = self.ax_lat.step(centres, np.full(len(centres), 1e-5), where="mid")
            self.ax_lat.set_yscale("log")
            self.ax_lat.set_ylim(1e-5, 1)
            self.ax_lat.set_xlabel("distance to the shower axis [cm]")
            self.ax_lat.set_ylabel("energy fraction per bin")
            self.title = fig.suptitle("")
            self.empty_text = fig.text(0.5, 0.5, "", ha="center", va="center", fontsize=13, color="#bd1f01",
                                       bbox={"facecolor": "white", "edgecolor": "#bd1f01"})
            fig.draw_without_rendering()  # creates the ticks now, in this style (no canvas draw: safe before display)
        self._artists = (self.im_x, self.im_y, self.line_long, self.line_lat, self.title, self.empty_text)

    def _build_widgets(self):
        import ipywidgets as w

        d = self.data
        emin, emax = float(np.min(d["energy"])), float(np.max(d["energy"]))
        self.w_class = w.Dropdown(options=["all", "electron", "proton", "unknown"], value="all", description="class")
        self.w_domain = w.Dropdown(options=["all", "mc", "iss"], value="all", description="domain")
        self.w_energy = w.FloatRangeSlider(value=(emin, emax), min=emin, max=max(emax, emin + 1), step=1.0,
                                           description="E [GeV]", continuous_update=False, readout_format=".0f",
                                           layout=w.Layout(width="420px"))
        self.w_prev = w.Button(description="◀ prev", tooltip="previous event (key p)")
        self.w_next = w.Button(description="next ▶", tooltip="next event (key n)")
        self.w_keys = w.Text(value="", placeholder="type n / p", description="keys", layout=w.Layout(width="160px"))
        self.w_label = w.Label(value="")
        self.w_table = w.HTML(value="", layout=w.Layout(min_width="250px", flex="0 0 auto", margin="0 0 0 8px"))
        for widget, css in ((self.w_label, "amsnb-event-label"), (self.w_table, "amsnb-reco-table"),
                            (self.w_next, "amsnb-next"), (self.w_prev, "amsnb-prev"), (self.w_keys, "amsnb-keys"),
                            (self.w_class, "amsnb-class"), (self.w_domain, "amsnb-domain"),
                            (self.w_energy, "amsnb-energy")):
            widget.add_class(css)
        self.w_prev.on_click(lambda _: self.step(-1))
        self.w_next.on_click(lambda _: self.step(+1))
        self.w_keys.observe(self._on_key, names="value")
        for ctl in (self.w_class, self.w_domain, self.w_energy):
            ctl.observe(self._on_filter, names="value")
        width, height = (int(round(x)) for x in self.fig.bbox.size)
        self.image = None if self.widget_canvas else w.Image(
            format="png", layout=w.Layout(width=f"{width}px", height=f"{height}px", min_width=f"{width}px"))
        canvas = self.fig.canvas if self.widget_canvas else self.image
        canvas.add_class("amsnb-shower-figure")
        controls = w.HBox([self.w_class, self.w_domain, self.w_energy])
        nav = w.HBox([self.w_prev, self.w_next, self.w_keys, self.w_label])
        # the table goes below the figure where the output area is narrower than both
        self.widget = w.VBox([controls, nav, w.HBox([canvas, self.w_table], layout=w.Layout(flex_flow="row wrap"))])

    # ---------------------------------------------------------------- behaviour
    def _on_key(self, change):
        text = change["new"]
        if not text:
            return
        key = text[-1].lower()
        self.w_keys.value = ""
        if key in ("n", "j", " ", "+"):
            self.step(+1)
        elif key in ("p", "k", "-"):
            self.step(-1)

    def _on_filter(self, _change=None):
        self.filter(self.w_class.value, self.w_domain.value, tuple(self.w_energy.value))

    def filter(self, particle: str = "all", domain: str = "all", energy_range=None) -> int:
        """Restrict the browsed events; returns how many remain (the view shows the first)."""
        self.selection = select_events(self.data, particle, domain, energy_range)
        self.position = 0
        if len(self.selection):
            self.show(0)
        else:
            self.show_empty(empty_label(particle, domain, energy_range))
        return len(self.selection)

    def show_empty(self, text: str) -> None:
        """The "no events match" state: empty views and profiles, the reason in the label and on the figure."""
        self.im_x.set_data(np.ma.masked_all(self.im_x.get_array().shape))
        self.im_y.set_data(np.ma.masked_all(self.im_y.get_array().shape))
        self.line_long.set_ydata(np.full(len(self.line_long.get_xdata()), np.nan))
        self.line_lat.set_ydata(np.full(len(self.line_lat.get_xdata()), np.nan))
        self.title.set_text("")
        self.empty_text.set_text(text.replace(": ", "\n", 1))
        self.w_label.value = text
        self.w_table.value = "<i>no event selected</i>"
        self._redraw()

    def step(self, delta: int) -> None:
        if len(self.selection):
            self.show((self.position + delta) % len(self.selection))

    def show(self, position: int) -> dict:
        """Display the event at ``position`` of the current selection; returns its view (for tests)."""
        self.position = int(position)
        view = event_view(self.data, int(self.selection[self.position]))
        self.im_x.set_data(_at_depth(view["x_view"], IS_X))
        self.im_y.set_data(_at_depth(view["y_view"], ~IS_X))
        self.line_long.set_ydata(np.clip(view["longitudinal"], 1e-4, None))
        self.line_lat.set_ydata(np.clip(view["lateral"][1], 1e-5, None))
        self.title.set_text(view["title"])
        self.empty_text.set_text("")
        if hasattr(self, "w_label"):
            self.w_label.value = event_label(self.position, len(self.selection), view["energy"])
            self.w_table.value = table_html(view["table"])
            self._redraw()
        return view

    def _cache_background(self, _event=None):
        self._background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self._draw_artists()

    def _draw_artists(self):
        for artist in self._artists:
            self.fig.draw_artist(artist)

    def _redraw(self):
        from ..plotting import frontend_ready, request_draw

        canvas = self.fig.canvas
        if self.blit and self._background is not None and frontend_ready(self.fig):
            canvas.restore_region(self._background)
            self._draw_artists()
            canvas.blit(self.fig.bbox)
        else:  # full draw (ipympl: when the browser shows the canvas); the draw_event caches the background
            request_draw(self.fig)
        if self.image is not None:
            self.image.value = self.png()

    def png(self) -> bytes:
        """The current Agg buffer as PNG bytes (fast zlib level 1)."""
        from ..plotting import canvas_png

        return canvas_png(self.fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
