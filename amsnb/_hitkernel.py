"""The sparse-hit scatter of :func:`amsnb.io._scatter` as one fused numba pass over the hits.

NumPy needs ~10 passes (flatten, casts, index arithmetic, masks, a float64 ``bincount`` image, a float32 copy);
this kernel reads each hit once and adds it into the float32 image, counting duplicates (neighbours in cell order,
or a per-event occupancy mark for events whose hits are not sorted), out-of-range indices, NaN/inf and negative
energies, and marking the events with bad hits. The sums are float32 in hit order where NumPy sums in float64, so
images agree to float32 rounding. ``AMSNB_NO_NUMBA=1`` or a missing numba uses the NumPy path in :mod:`amsnb.io`.
"""

from __future__ import annotations

import os

import numpy as np

try:
    if os.environ.get("AMSNB_NO_NUMBA"):
        raise ImportError("AMSNB_NO_NUMBA is set")
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None
    HAVE_NUMBA = False

#: Rows of the ``problems`` array: count and first event of each kind of bad hit.
LAYER_OUT, CELL_OUT, NONFINITE, NEGATIVE = range(4)

if HAVE_NUMBA:
    @numba.njit(cache=True, nogil=True)
    def _scatter_nb(counts, layer, cell, edep, lbase, cbase, nl, nc, factor, image, bad, problems):  # pragma: no cover
        seen = np.zeros(nl * nc, np.uint8)
        dup = 0
        i0 = 0
        for e in range(counts.shape[0]):
            i1 = i0 + counts[e]
            prev = -1
            unsorted = False
            for i in range(i0, i1):
                lay = np.int64(layer[i]) - lbase
                cel = np.int64(cell[i]) - cbase
                en = np.float64(edep[i])
                kind = -1
                if not np.isfinite(en):
                    kind = NONFINITE
                elif en < 0:
                    kind = NEGATIVE
                if lay < 0 or lay >= nl:
                    kind = LAYER_OUT
                elif cel < 0 or cel >= nc:
                    kind = CELL_OUT
                if kind >= 0:
                    bad[e] = True
                    if problems[kind, 0] == 0:
                        problems[kind, 1] = e
                    problems[kind, 0] += 1
                    if kind == LAYER_OUT or kind == CELL_OUT:
                        continue
                k = lay * nc + cel
                if k == prev:  # hits in cell order (the usual layout): a duplicate follows its twin
                    dup += 1
                elif k < prev:
                    unsorted = True
                prev = k
                image[e, lay, cel] += np.float32(en * factor)
            if unsorted:  # count this event's duplicates with an occupancy mark instead, then clear it
                for i in range(i0, i1):
                    lay = np.int64(layer[i]) - lbase
                    cel = np.int64(cell[i]) - cbase
                    if 0 <= lay < nl and 0 <= cel < nc:
                        k = lay * nc + cel
                        if seen[k]:
                            dup += 1
                        seen[k] = 1
                prev = -1
                for i in range(i0, i1):  # undo the in-order count of this event
                    lay = np.int64(layer[i]) - lbase
                    cel = np.int64(cell[i]) - cbase
                    if 0 <= lay < nl and 0 <= cel < nc:
                        k = lay * nc + cel
                        if k == prev:
                            dup -= 1
                        prev = k
                        seen[k] = 0
            i0 = i1
        return dup


def scatter(counts: np.ndarray, layer: np.ndarray, cell: np.ndarray, edep: np.ndarray, layer_base: int,
            cell_base: int, shape: tuple[int, int], factor: float):
    """``(image float32 (n, *shape), bad_events, problems (4, [count, first event]), duplicates)``."""
    n = len(counts)
    image = np.zeros((n, *shape), np.float32)
    bad = np.zeros(n, np.bool_)
    problems = np.zeros((4, 2), np.int64)
    dup = _scatter_nb(counts.astype(np.int64, copy=False), layer, cell, edep, int(layer_base), int(cell_base),
                      int(shape[0]), int(shape[1]), float(factor), image, bad, problems)
    return image, bad, problems, int(dup)
