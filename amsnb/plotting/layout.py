"""A layout check for saved figures: text that overlaps other text, runs over another panel, or leaves the figure.

:func:`text_problems` draws the figure once and compares the window extents (pixels) of every drawn text artist:
titles, axis labels, tick labels, legend entries, annotations, colorbar labels. It reports

- two texts whose boxes overlap (a label over a title, crowded tick labels, a fit box over a legend),
- a text of one panel inside the plotting area of another panel (a y-label running into the next heat map;
  twin axes sharing one area count as one panel),
- a text outside the figure (cut off when saved without ``bbox_inches="tight"``).

:meth:`amsnb.workdir.Workdir.save_figure` runs it on every figure it saves and records the findings in
``figures/layout_problems.json``; the notebook regression test fails on any.
"""

from __future__ import annotations

import warnings

TOLERANCE_PX = 1.0  # boxes that merely touch (a pixel of font padding) are not an overlap


class FigureLayoutWarning(UserWarning):
    """A saved figure has overlapping or cut-off text."""


def _drawn_texts(fig) -> list:
    """Every visible, non-empty text that a draw places: the artist tree without invisible subtrees, and of each
    axis only the ticks inside its view (the ones drawn)."""
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.text import Text

    out = {}  # text -> the axes it belongs to (None: the figure's)

    def walk(artist, owner):
        if not artist.get_visible():
            return
        if isinstance(artist, Axes):
            owner = artist
        if isinstance(artist, Axis):
            for tick in artist._update_ticks():
                for lab in (tick.label1, tick.label2):
                    if lab.get_visible() and lab.get_text().strip():
                        out.setdefault(lab, owner)
            for child in (artist.label, artist.offsetText):
                walk(child, owner)
            return
        if isinstance(artist, Text):
            if artist.get_text().strip():
                out.setdefault(artist, owner)
            return
        if getattr(artist, "axison", True) is False:
            for child in artist.get_children():
                if not isinstance(child, Axis):
                    walk(child, owner)
            return
        for child in artist.get_children():
            walk(child, owner)

    walk(fig, None)
    return out


def _describe(t) -> str:
    s = t.get_text().strip().replace("\n", " ")
    return repr(s if len(s) <= 40 else s[:37] + "...")


def _overlap(a, b, tol: float = TOLERANCE_PX) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def text_problems(fig, check_bounds: bool = True) -> list[str]:
    """Layout problems of ``fig`` as sentences (empty: clean). Draws the figure once."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    owners = _drawn_texts(fig)
    boxes = []
    for t in owners:
        try:
            bb = t.get_window_extent(renderer)
        except Exception:  # a text without a position (never drawn)
            continue
        if bb.width <= 0 or bb.height <= 0:
            continue
        boxes.append((t, bb))
    problems = []
    for i, (t1, b1) in enumerate(boxes):
        for t2, b2 in boxes[i + 1:]:
            if t1.get_text() == t2.get_text() and abs(b1.x0 - b2.x0) < 1 and abs(b1.y0 - b2.y0) < 1:
                continue  # the same text drawn twice in one place (label1/label2 of a mirrored tick)
            if _slanted(t1) or _slanted(t2):
                continue  # the upright box of a slanted label (rotation=30) is mostly empty: not compared
            if _overlap(b1, b2):
                problems.append(f"text {_describe(t1)} overlaps text {_describe(t2)}")
    # a text over the plotting area of another panel (twins share an area: one panel)
    panels = []
    for ax in fig.get_axes():
        if not ax.get_visible() or not ax.axison:
            continue
        pos = tuple(round(v, 1) for v in ax.bbox.extents)
        panels.append((ax, pos, ax.bbox))
    for t, bb in boxes:
        own = owners[t]
        own_pos = tuple(round(v, 1) for v in own.bbox.extents) if own is not None else None
        if own is None:
            continue  # figure-level texts (suptitle, fig.text): compared with all texts above
        for ax, pos, abox in panels:
            if ax is own or pos == own_pos or _is_inset(ax, own) or _is_inset(own, ax):
                continue
            if _overlap(bb, abox, tol=2.0):
                problems.append(f"text {_describe(t)} runs into another panel"
                                f"{(' (' + repr(ax.get_title()) + ')') if ax.get_title() else ''}")
                break
    if check_bounds:
        fbox = fig.bbox
        for t, bb in boxes:
            if bb.x0 < fbox.x0 - 1 or bb.y0 < fbox.y0 - 1 or bb.x1 > fbox.x1 + 1 or bb.y1 > fbox.y1 + 1:
                problems.append(f"text {_describe(t)} leaves the figure")
    return list(dict.fromkeys(problems))


def _slanted(t) -> bool:
    return round(t.get_rotation()) % 90 != 0


def _is_inset(child, parent) -> bool:
    """``child`` is drawn inside ``parent`` on purpose (an inset or a colorbar placed within it)."""
    return child in getattr(parent, "child_axes", [])


def check_figure(fig, name: str = "figure", check_bounds: bool = True) -> list[str]:
    """:func:`text_problems`, with a :class:`FigureLayoutWarning` naming the figure when there are any."""
    problems = text_problems(fig, check_bounds=check_bounds)
    if problems:
        warnings.warn(f"figure {name}: " + "; ".join(problems), FigureLayoutWarning, stacklevel=3)
    return problems
