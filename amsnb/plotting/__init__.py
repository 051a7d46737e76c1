"""Plotting: thin glue over hist + mplhep. Metrics compute numbers; these functions only draw them.

One submodule per area shared by both studies (``cuts``, ``performance``, ``training``; ``layout``, the overlap
check of every saved figure); the wings draw their own figures (``amsnb.ecal.plots``, ``amsnb.nuclei.plots``) with
these helpers. This module holds the shared style and label.
"""

from __future__ import annotations

import contextlib

_STYLED = False


def use_style() -> None:
    """Apply the mplhep style once (style contexts are unreliable with mplhep, so it is global)."""
    global _STYLED
    if not _STYLED:
        import mplhep as hep

        hep.style.use("ROOT")
        _STYLED = True


def label(ax, text: str = "", loc: int = 0, source: str = "fast simulation"):
    """The figure's label: what made the events, not a collaboration's name. amsnb's own simulation is a physics-based
    toy of AMS-02, so its figures say "amsnb fast simulation" (an "AMS-02 Simulation" label would claim the
    collaboration's Geant4 MC); ``source`` names other inputs (e.g. "user ntuples"); ``text`` follows (e.g.
    "ISS-like")."""
    import mplhep as hep

    extra = ", ".join(t for t in (source, text) if t)
    return hep.label.exp_label(exp="amsnb", text=extra, data=True, com=None, lumi=None, ax=ax, loc=loc)


#: Display names of the model families in amsnb's model tags (``cvt_tiny_da``, ``bdt``, ``mda_P``).
_FAMILIES = {"bdt": "BDT", "likelihood": "Likelihood", "cnn": "CNN", "cvt": "CvT", "coatnet": "CoAtNet",
             "mda": "MDA"}


#: Display names of the alignment suffixes of ECAL model tags (``amsnb.ecal.experiment.model_tag``).
_ALIGNMENTS = {"da": "DANN", "coral": "CORAL", "mmd": "MMD", "cdan": "CDAN", "cdane": "CDAN+E"}


def model_label(tag: str) -> str:
    """A model tag as a legend says it: ``cvt_tiny_da`` -> "CvT tiny + DANN", ``cnn_small_views_coral`` -> "CNN
    small views + CORAL", ``bdt`` -> "BDT", ``cnn_small_da_mclow_valmc`` -> "CNN small + DANN (train mc_low, val.
    MC)"; a tag of another form is returned as it is."""
    parts = str(tag).split("_")
    if parts[0] not in _FAMILIES:
        return str(tag)
    words, notes, da = [_FAMILIES[parts[0]]], [], ""
    for part in parts[1:]:
        if part in _ALIGNMENTS:
            da = _ALIGNMENTS[part]
        elif part.startswith("val") and len(part) > 3:
            notes.append(f"val. {part[3:].upper() if part[3:] in ('mc', 'iss') else part[3:]}")
        elif part.startswith("mc") and len(part) > 2:
            notes.append(f"train mc_{part[2:]}")
        else:
            words.append(part)
    out = " ".join(words) + (f" + {da}" if da else "")
    return out + (f" ({', '.join(notes)})" if notes else "")


def canvas_png(fig) -> bytes:
    """The figure's current Agg buffer as PNG bytes (zlib level 1): what the widgets push to an ``ipywidgets.Image``
    when no ipympl canvas is used (outside a kernel, ``use_widget_canvas=False``, or ipympl not installed)."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
    return buf.getvalue()


#: The widgets' own style: matplotlib's defaults with compact fonts, whatever style the notebook applied globally
#: (``use_style`` sets mplhep's ROOT style, made for publication figures: its fonts are far too big for a widget).
WIDGET_RC = {"font.size": 9.0, "axes.titlesize": 9.5, "axes.labelsize": 9.0, "xtick.labelsize": 8.0,
             "ytick.labelsize": 8.0, "legend.fontsize": 8.0, "figure.titlesize": 10.0, "legend.frameon": False,
             "axes.formatter.limits": (-4, 5), "image.interpolation": "nearest"}


@contextlib.contextmanager
def widget_style():
    """``with widget_style():`` build a widget's figure with :data:`WIDGET_RC` on top of matplotlib's defaults.

    Fonts, tick sizes and label positions are fixed when artists are created, so the figure keeps this style when it
    is redrawn later outside the context (ticks created by a later zoom copy the first tick's properties)."""
    import matplotlib as mpl
    import matplotlib.style

    with matplotlib.style.context("default"), mpl.rc_context(WIDGET_RC):
        yield


def freeze_style(fig) -> None:
    """Lay the figure out now (call inside :func:`widget_style`), without rendering and without touching an ipympl
    canvas: matplotlib creates ticks lazily at the first draw (after every ``clear`` or scale change), reading the
    rcParams in force then, i.e. the notebook's global style; ticks made later copy the first one's properties."""
    fig.draw_without_rendering()


def ipympl_usable() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, Voila) with ipympl installed: the widgets then draw on an
    ipympl canvas (zoom, pan, in-place updates) whatever ``%matplotlib`` backend the notebook uses."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None or not hasattr(shell, "kernel"):
            return False
        import ipympl.backend_nbagg  # noqa: F401
    except Exception:  # noqa: BLE001 - no IPython / no ipympl: the PNG path
        return False
    return True


def widget_figure(figsize, dpi: float = 100, interactive: bool | None = None):
    """``(fig, interactive)``: a figure outside pyplot (never shown twice by the inline backend) on an ipympl canvas
    when ``interactive`` (default :func:`ipympl_usable`), else on an Agg canvas whose buffer goes out as a PNG
    (:func:`canvas_png`). Build its artists inside :func:`widget_style`.

    On the ipympl canvas, never call ``fig.canvas.draw()`` or ``blit`` before the browser has shown it: ipympl 0.10
    stores the first frame drawn before then as the widget's initial image without the ``data:`` prefix, the browser
    cannot decode it and the canvas stays blank ("drawImage ... 'broken' state"). Use :func:`request_draw`."""
    from matplotlib.figure import Figure

    if interactive is None:
        interactive = ipympl_usable()
    fig = Figure(figsize=figsize, dpi=dpi)
    if interactive:
        from ipympl.backend_nbagg import Canvas, FigureManager

        canvas = Canvas(fig)
        FigureManager(canvas, 0)
        canvas.header_visible = False
        canvas.footer_visible = False
        canvas.resizable = False
        canvas.toolbar_position = "left"
        # never squeezed by a neighbour (the toolbar would cover the figure's left edge): canvas + toolbar width
        width = int(round(fig.bbox.width))
        canvas.layout.min_width = f"{width + 48}px"
        canvas.layout.flex = "0 0 auto"
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    return fig, bool(interactive)


def frontend_ready(fig) -> bool:
    """Whether ``fig``'s canvas may be drawn now: always for Agg; for ipympl once the browser has initialised it."""
    return not getattr(fig.canvas, "syncing_data_url", False)


def request_draw(fig) -> None:
    """A full draw that is safe before display: ipympl asks the browser, which draws once the canvas is shown (its
    ``draw_event`` then caches a blitting background); Agg draws at once."""
    if hasattr(fig.canvas, "syncing_data_url"):
        fig.canvas.draw_idle()
    else:
        fig.canvas.draw()
