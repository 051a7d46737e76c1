"""Fused per-cell kernels of the ECAL simulation (numba), with NumPy fallbacks of identical arithmetic.

The simulation's cost is per cell: the projected CDF of each shower component at the 73 cell edges of each layer
(``add_em_cells``) and the readout (fluctuation, noise, gain, threshold, saturation: ``readout_cells``). NumPy does
each as ~10 passes over (events, 18, 73) temporaries; the kernels do one pass per (event, layer) in registers.
They consume no random numbers (the draws stay in :mod:`amsnb.ecal.sim`, in the same order), so the random stream
and hence the events are those of the NumPy path up to float32 rounding. ``AMSNB_NO_NUMBA=1`` forces the fallback.
"""

from __future__ import annotations

import os

import numpy as np

try:
    if os.environ.get("AMSNB_NO_NUMBA"):
        raise ImportError("AMSNB_NO_NUMBA is set")
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; the fallback keeps a broken install usable
    numba = None
    HAVE_NUMBA = False


def _add_em_cells_py(out, pair, base, he_c, he_t, rc2, rt2, edges):
    x = base[:, None] + edges[None, :]
    x2 = x * x
    f = he_c[:, None] * (x / np.sqrt(x2 + rc2[:, None])) + he_t[:, None] * (x / np.sqrt(x2 + rt2[:, None]))
    out[pair] += f[:, 1:] - f[:, :-1]


def _readout_cells_py(expected, resp, z, mip, gain, use_gain, stoch2, noise2, thr, sat, img):
    e = expected * resp[:, None, None]
    meas = e + np.sqrt(stoch2 * e + noise2) * z
    if mip is not None:
        meas += mip
    if use_gain:
        meas *= gain[None]
    meas[meas < thr] = 0.0
    np.minimum(meas, sat, out=meas)
    img[...] = meas


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, fastmath=False)
    def _add_em_cells_nb(out, pair, base, he_c, he_t, rc2, rt2, edges):  # pragma: no cover - compiled
        w = edges.shape[0] - 1
        f = np.empty(w + 1, np.float32)
        for i in range(pair.shape[0]):
            b, hc, ht, c2, t2 = base[i], he_c[i], he_t[i], rc2[i], rt2[i]
            for j in range(w + 1):
                x = b + edges[j]
                x2 = x * x
                f[j] = hc * (x / np.sqrt(x2 + c2)) + ht * (x / np.sqrt(x2 + t2))
            row = out[pair[i]]
            for j in range(w):
                row[j] += f[j + 1] - f[j]

    @numba.njit(cache=True, nogil=True)
    def _readout_nb(expected, resp, z, mip, has_mip, gain, use_gain, stoch2, noise2, thr, sat, img):  # pragma: no cover
        n, nl, w = expected.shape
        for i in range(n):
            r = resp[i]
            for lay in range(nl):
                for c in range(w):
                    e = expected[i, lay, c] * r
                    v = e + np.sqrt(stoch2 * e + noise2) * z[i, lay, c]
                    if has_mip:
                        v += mip[i, lay, c]
                    if use_gain:
                        v *= gain[lay, c]
                    if v < thr:
                        v = np.float32(0.0)
                    elif v > sat:
                        v = sat
                    img[i, lay, c] = v


def add_em_cells(out: np.ndarray, pair: np.ndarray, base: np.ndarray, he_c: np.ndarray, he_t: np.ndarray,
                 rc2: np.ndarray, rt2: np.ndarray, edges: np.ndarray) -> None:
    """``out[pair[i], j] += F_i(edge j+1) - F_i(edge j)`` with F_i(x) = he_c x/sqrt(x^2+rc2) + he_t x/sqrt(x^2+rt2),
    x = base_i + edges (the projected CDF of the GFLASH core + tail, times half the layer energy).

    ``out`` (pairs, W) float32 (the (event, layer) rows of the expectation); each pair index appears once."""
    f32 = np.float32
    args = (np.ascontiguousarray(base, f32), np.ascontiguousarray(he_c, f32), np.ascontiguousarray(he_t, f32),
            np.ascontiguousarray(rc2, f32), np.ascontiguousarray(rt2, f32), np.ascontiguousarray(edges, f32))
    if HAVE_NUMBA and out.flags.c_contiguous and out.dtype == f32:
        _add_em_cells_nb(out, np.ascontiguousarray(pair, np.int64), *args)
    else:
        _add_em_cells_py(out, pair, *args)


def readout_cells(expected, resp, z, mip, gain, use_gain, stoch2, noise2, thr, sat, img) -> None:
    """img = min(sat, threshold(gain (E r + sqrt(stoch2 E r + noise2) z + mip))) cell by cell (float32)."""
    f32 = np.float32
    ok = (HAVE_NUMBA and img.flags.c_contiguous and expected.flags.c_contiguous and z.flags.c_contiguous
          and img.dtype == f32 and expected.dtype == f32 and z.dtype == f32)
    resp = np.ascontiguousarray(resp, f32)
    gain = np.ascontiguousarray(gain, f32)
    if not ok:
        _readout_cells_py(expected, resp, z, mip, gain, use_gain, f32(stoch2), f32(noise2), f32(thr), f32(sat), img)
        return
    has_mip = mip is not None
    mip_a = np.ascontiguousarray(mip, f32) if has_mip else np.zeros((1, 1, 1), f32)
    _readout_nb(expected, resp, z, mip_a, has_mip, gain, bool(use_gain), f32(stoch2), f32(noise2), f32(thr), f32(sat),
                img)
