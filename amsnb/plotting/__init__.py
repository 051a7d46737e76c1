"""Plotting: thin glue over hist + mplhep. Metrics compute numbers; these functions only draw them.

One submodule per area (``ecal``, ``cuts``, ``performance``, ``training``, ``nuclei``); this module holds
the shared style and label.
"""

from __future__ import annotations

_STYLED = False


def use_style() -> None:
    """Apply the mplhep style once (style contexts are unreliable with mplhep, so it is global)."""
    global _STYLED
    if not _STYLED:
        import mplhep as hep

        hep.style.use("ROOT")
        _STYLED = True


def label(ax, text: str = "", loc: int = 0):
    """The experiment label: there is no AMS style in mplhep, so a clean generic label.

    mplhep adds "Simulation" itself (``data=False``); ``text`` follows it (e.g. "ISS-like").
    """
    import mplhep as hep

    return hep.label.exp_label(exp="AMS-02", text=text, com=None, lumi=None, ax=ax, loc=loc)


def canvas_png(fig) -> bytes:
    """The figure's current Agg buffer as PNG bytes (zlib level 1): what the widgets push to an ``ipywidgets.Image``
    (ipympl canvases render blank under Voila here; an Image updates in place without flicker)."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
    return buf.getvalue()
