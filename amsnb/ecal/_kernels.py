"""Fused kernels of the ECAL simulation (numba), with NumPy fallbacks (``AMSNB_NO_NUMBA=1`` forces them).

The simulation's cost is per cell: the projected CDF of each shower component at the 73 cell edges of each layer
(``add_em_cells``) and the readout (fluctuation, noise, gain, threshold, saturation: ``readout_cells``). NumPy does
each as ~10 passes over (events, 18, 73) temporaries; the kernels do one pass per (event, layer) in registers.
Per shower component, the longitudinal layer fractions (``layer_fractions``: incomplete gamma functions at the 19
layer edges, evaluated 3 times per proton component by the energy search) were the largest cost of a proton.
The readout kernel draws its per-cell normals itself from the simulation's ``numpy.random.Generator`` (numba's
``Generator.standard_normal`` is NumPy's float32 ziggurat on the same bit generator, so it returns the numbers
``rng.standard_normal(shape, dtype=float32)`` would, in the same order), without a (events, 18, 72) temporary; the
other kernels consume no random numbers. ``add_em_cells`` and ``readout_cells`` are bit for bit the NumPy path's
arithmetic; ``layer_fractions`` agrees with SciPy's ``gammainc`` at rounding level (1e-14), so events of the numba
and NumPy paths agree to rounding, not bit for bit (a cell at its threshold may flip).

The reconstruction (``amsnb.ecal.reco``) uses two more: ``template_search`` (squares, scaling and argmax of the
longitudinal template projection, row by row after the same ``sgemm``) and ``cell_ratios`` (core cells, max-cell
ratios, hit and saturated counts in one pass over the images); both are bit for bit their NumPy fallbacks, so a
user's file reconstructs to the same numbers with or without numba.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

#: Largest x = b t at which the numba path of :func:`layer_fractions` sums the power series of P(a, x) (it then
#: needs <~ 90 terms for the simulation's a <~ 15); beyond, the continued fraction of Q.
_X_SERIES = 40.0

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


def _layer_fractions_py(a, b, edges):
    from scipy.special import gammainc

    return np.diff(gammainc(a[:, None], b[:, None] * edges), axis=1)


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
    # error_model="numpy": a float division follows IEEE 754 instead of testing for ZeroDivisionError, which is what
    # lets LLVM vectorise the loops (8 float32 lanes: x11 on the EM cell kernel). SIMD sqrt and division are
    # correctly rounded like the scalar ones and no operation is reordered (no fastmath), so the results stay
    # bit-identical to the NumPy fallback.

    @numba.njit(cache=True, nogil=True, error_model="numpy")
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

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _em_component_nb(out, rows, start, axis, sec, e_gev, lfrac, r_c, r_t, p, rm, has_off, slope, z_start,
                         cell_edges, layer_z, is_x, thr, edges):  # pragma: no cover - compiled
        # the float64 steps of amsnb.ecal.sim.physics._add_em between the radial parameters and the cell CDF, pair by
        # pair in the same operation order (each rounds like NumPy's element-wise op), then the loop of _add_em_cells_nb
        m, nl = lfrac.shape
        w = edges.shape[0] - 1
        f = np.empty(w + 1, np.float32)
        for i in range(m):
            ev = rows[i]
            for lay in range(nl):
                half_e = np.float32(e_gev[i] * 500.0 * lfrac[i, lay])
                if not half_e > thr:
                    continue
                centre = axis[ev, lay]
                if has_off:
                    dz = max(layer_z[lay] - z_start[i], 0.0) * sec[i]
                    centre = centre + (slope[i, 0] if is_x[lay] else slope[i, 1]) * dz
                b = np.float32(cell_edges[start[ev, lay]] - centre)
                pv = p[i, lay]
                hc = np.float32(np.float64(half_e) * pv)
                ht = np.float32(np.float64(half_e) * (1.0 - pv))
                rc = r_c[i, lay] * rm[i]
                rt = r_t[i, lay] * rm[i]
                c2 = np.float32(rc * rc)
                t2 = np.float32(rt * rt)
                for j in range(w + 1):
                    x = b + edges[j]
                    x2 = x * x
                    f[j] = hc * (x / np.sqrt(x2 + c2)) + ht * (x / np.sqrt(x2 + t2))
                row = out[ev * nl + lay]
                for j in range(w):
                    row[j] += f[j + 1] - f[j]

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _gammainc_cf(a, x):  # pragma: no cover - compiled
        """P(a, x) = 1 - Q(a, x), Q by its continued fraction (modified Lentz; x > _X_SERIES only)."""
        tiny = 1e-300
        b = x + 1.0 - a
        c = 1.0 / tiny
        d = 1.0 / b
        h = d
        for i in range(1, 1000):
            an = -i * (i - a)
            b += 2.0
            d = an * d + b
            if abs(d) < tiny:
                d = tiny
            c = b + an / c
            if abs(c) < tiny:
                c = tiny
            d = 1.0 / d
            dl = d * c
            h *= dl
            if abs(dl - 1.0) < 1e-16:
                break
        return 1.0 - math.exp(a * math.log(x) - x - math.lgamma(a)) * h

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _layer_fractions_nb(a, b, edges, out):  # pragma: no cover - compiled
        m, ne = edges.shape
        x = np.empty(ne)
        s = np.empty(ne)
        term = np.empty(ne)
        for i in range(m):
            ai = a[i]
            jmax, xmax = 0, 0.0
            for j in range(ne):
                xj = b[i] * edges[i, j]
                x[j] = xj if xj <= _X_SERIES else 0.0
                s[j] = 1.0
                term[j] = 1.0
                if xj <= _X_SERIES and xj > xmax:
                    jmax, xmax = j, xj
            # P(a, x) = x^a e^-x / Gamma(a+1) sum_k x^k / ((a+1)...(a+k)): the series of all edges of a row at once
            # (one reciprocal per term, independent lanes that vectorise); the largest x converges last
            ap = ai
            if xmax > 0.0:
                for _ in range(1000):
                    ap += 1.0
                    r = 1.0 / ap
                    for j in range(ne):
                        t = term[j] * (x[j] * r)
                        term[j] = t
                        s[j] += t
                    if ap > xmax and term[jmax] < 1e-17 * s[jmax]:
                        break
            lga1 = math.lgamma(ai + 1.0)
            prev = 0.0
            for j in range(ne):
                xj = b[i] * edges[i, j]
                if xj <= 0.0:
                    p = 0.0
                elif xj <= _X_SERIES:
                    p = math.exp(ai * math.log(xj) - xj - lga1) * s[j]
                else:
                    p = _gammainc_cf(ai, xj)
                if j > 0:
                    out[i, j - 1] = p - prev
                prev = p

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _component_layers_nb(a, t, t_start, sec, layer_edges, e_gev, rows, add, sums, out):  # pragma: no cover
        # the shower component's depth edges and Gamma rate as amsnb.ecal.sim.physics._add_em computed them with NumPy
        # (same operations, element by element), the fractions by _layer_fractions_nb, and with ``add`` the layer
        # sums ``sums[rows[i]] += (E_i 1e3) f_i`` of the energy search
        m = a.shape[0]
        ne = layer_edges.shape[0]
        b = np.empty(m)
        edges = np.empty((m, ne))
        for i in range(m):
            b[i] = (a[i] - 1.0) / t[i]
            for j in range(ne):
                x = layer_edges[j] * sec[i] - t_start[i]
                edges[i, j] = 0.0 if x < 0.0 else x
        _layer_fractions_nb(a, b, edges, out)
        if add:
            for i in range(m):
                e = e_gev[i] * 1e3
                row = sums[rows[i]]
                for j in range(ne - 1):
                    row[j] += e * out[i, j]

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _readout_nb(rng, expected, resp, mip_amp, mip_cell, has_mip, gain, use_gain, stoch2, noise2, thr, sat,
                    img):  # pragma: no cover - compiled
        n, nl, w = expected.shape
        for i in range(n):
            r = resp[i]
            # the same float32 normals, in the same (C) order, as rng.standard_normal(expected.shape, float32); one
            # array call per event (a scalar call per cell costs 3x more)
            z = rng.standard_normal(nl * w, dtype=np.float32)
            for lay in range(nl):
                row = img[i, lay]
                for c in range(w):
                    e = expected[i, lay, c] * r
                    row[c] = e + np.sqrt(stoch2 * e + noise2) * z[lay * w + c]
                if has_mip:
                    c = mip_cell[i, lay]
                    row[c] += mip_amp[i, lay]
                for c in range(w):
                    v = row[c]
                    if use_gain:
                        v *= gain[lay, c]
                    v = np.float32(0.0) if v < thr else v
                    row[c] = sat if v > sat else v

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _template_best_nb(proj, inv, na, best, vals):  # pragma: no cover - compiled
        n, g = proj.shape
        nt = g // na
        sc = np.empty(g, np.float32)
        bits = sc.view(np.int32)
        for i in range(n):
            row = proj[i]
            n_nan = 0
            for k in range(g):
                d = row[k]
                v = d * d * inv[k]
                sc[k] = v
                n_nan += v != v
            if n_nan == 0:
                # scores are >= +0 (a square times a positive norm): their int32 bit patterns order like the floats,
                # and an integer max vectorises where a float one may not (NaN semantics)
                m = bits[0]
                for k in range(1, g):
                    m = max(m, bits[k])
                b = 0
                while bits[b] != m:
                    b += 1
            else:  # np.argmax: the first NaN
                b = 0
                while sc[b] == sc[b]:
                    b += 1
            it, ia = b // na, b % na
            best[i] = b
            vals[i, 0] = sc[b]
            vals[i, 1] = sc[max(it - 1, 0) * na + ia]
            vals[i, 2] = sc[min(it + 1, nt - 1) * na + ia]
            vals[i, 3] = sc[it * na + max(ia - 1, 0)]
            vals[i, 4] = sc[it * na + min(ia + 1, na - 1)]
            vals[i, 5] = row[b]

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _cell_ratios_nb(img, axis_cell, sat_thr, core, r13, r35, counts):  # pragma: no cover - compiled
        n, nl, w = img.shape
        bits = img.view(np.int32)
        for i in range(n):
            nhit = 0
            nsat = 0
            for lay in range(nl):
                row = img[i, lay]
                rb = bits[i, lay]
                # np.argmax of the row: the first maximum through a vectorised integer max of order-preserving keys
                # (the int32 bits, negative floats' magnitude bits flipped; -0 < +0 there, but a row whose maximum
                # is 0 gives E_max/E_3 = E_3/E_5 = 0 whichever zero is taken), or the first NaN if there is one
                n_nan = 0
                km = np.int32(-2147483648)
                for c in range(w):
                    v = row[c]
                    nhit += v > 0
                    nsat += v >= sat_thr
                    n_nan += v != v
                    b = rb[c]
                    km = max(km, b ^ ((b >> 31) & np.int32(0x7FFFFFFF)))
                m = 0
                if n_nan == 0:
                    while (rb[m] ^ ((rb[m] >> 31) & np.int32(0x7FFFFFFF))) != km:
                        m += 1
                else:
                    while row[m] == row[m]:
                        m += 1
                # the NumPy path's gathers: the clipped cell's value times (cell inside), in the same order
                a = axis_cell[i, lay]
                tot = np.float32(0.0)
                for d in range(-1, 2):
                    j = a + d
                    tot += row[min(max(j, 0), w - 1)] * np.float32(1.0 if 0 <= j < w else 0.0)
                core[i, lay] = tot
                e0 = row[m]
                e3 = e0 + row[max(m - 1, 0)] * np.float32(1.0 if m >= 1 else 0.0)
                e3 = e3 + row[min(m + 1, w - 1)] * np.float32(1.0 if m + 1 < w else 0.0)
                e5 = e3 + row[max(m - 2, 0)] * np.float32(1.0 if m >= 2 else 0.0)
                e5 = e5 + row[min(m + 2, w - 1)] * np.float32(1.0 if m + 2 < w else 0.0)
                r13[i, lay] = e0 / e3 if e3 > 0 else np.float32(0.0)
                r35[i, lay] = e3 / e5 if e5 > 0 else np.float32(0.0)
            counts[i, 0] = nhit
            counts[i, 1] = nsat


def _template_best_py(proj, inv, na):
    dot = proj.copy()
    np.multiply(proj, proj, out=proj)
    proj *= inv
    best = np.argmax(proj, axis=1)
    nt = proj.shape[1] // na
    it, ia = np.divmod(best, na)
    grid = proj.reshape(-1, nt, na)
    rows = np.arange(len(best))
    vals = np.stack([grid[rows, it, ia], grid[rows, np.maximum(it - 1, 0), ia],
                     grid[rows, np.minimum(it + 1, nt - 1), ia], grid[rows, it, np.maximum(ia - 1, 0)],
                     grid[rows, it, np.minimum(ia + 1, na - 1)], dot[rows, best]], axis=1)
    return best, vals


def _gather(a, idx):
    w = a.shape[2]
    return np.take_along_axis(a, np.clip(idx, 0, w - 1)[..., None], axis=2)[..., 0] * ((idx >= 0) & (idx < w))


def _cell_ratios_py(img, axis_cell, sat_thr):
    core = sum(_gather(img, axis_cell + d) for d in (-1, 0, 1))
    imax = np.argmax(img, axis=2)
    e0 = _gather(img, imax)
    e3 = e0 + _gather(img, imax - 1) + _gather(img, imax + 1)
    e5 = e3 + _gather(img, imax - 2) + _gather(img, imax + 2)
    r13 = np.divide(e0, e3, out=np.zeros_like(e0), where=e3 > 0)
    r35 = np.divide(e3, e5, out=np.zeros_like(e3), where=e5 > 0)
    n_hit = (img > 0).sum(axis=(1, 2))
    n_sat = (img >= sat_thr).sum(axis=(1, 2)) if np.isfinite(sat_thr) else np.zeros(len(img), np.int64)
    return core, r13, r35, n_hit, n_sat


_WORKSPACE = threading.local()


def _workspace(name: str, shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` in a buffer this thread reuses (valid until its next call
    with the same ``name``)."""
    size = math.prod(shape)
    buf = getattr(_WORKSPACE, name, None)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 1), dtype)
        setattr(_WORKSPACE, name, buf)
    return buf[:size].reshape(shape)


def layer_fractions(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fractions (m, L) of Gamma(a_i, rate b_i) longitudinal profiles between consecutive depths ``edges`` (m, L+1)
    (X0, >= 0): diff of the regularised lower incomplete gamma P(a_i, b_i edges).

    NumPy path: ``scipy.special.gammainc``. numba path: the power series of P evaluated for all edges of a row
    together (x <= 40; the continued fraction of Q beyond), x2.4 faster on the simulation's rows; it agrees with
    SciPy to 1e-14 in P (absolute), i.e. at rounding level, not bit for bit (tests/test_sim_ecal.py)."""
    a = np.ascontiguousarray(a, np.float64)
    b = np.ascontiguousarray(b, np.float64)
    edges = np.ascontiguousarray(edges, np.float64)
    if not HAVE_NUMBA:
        return _layer_fractions_py(a, b, edges)
    out = np.empty((edges.shape[0], max(edges.shape[1] - 1, 0)))
    _layer_fractions_nb(a, b, edges, out)
    return out


def component_layers(a, t, t_start, sec, layer_edges, sums=None, rows=None, e_gev=None) -> np.ndarray:
    """Layer fractions (m, L) of Gamma(a, (a-1)/t) shower components starting at depth ``t_start`` (X0 along the
    axis), the layer boundaries ``layer_edges`` (L+1, X0) scaled by ``sec`` = 1/cos(theta) (m,): the longitudinal
    step of amsnb.ecal.sim.physics._add_em. With ``sums`` (n, L) float64: also ``sums[rows] += E[GeV] 1e3 * fractions``.

    numba path: the edges, rates and sums in one kernel around :func:`layer_fractions`'s (same operations in the
    same order as the NumPy path, so the same numbers)."""
    f64 = np.float64
    if not HAVE_NUMBA or (sums is not None and not (sums.flags.c_contiguous and sums.dtype == f64)):
        edges = np.clip(np.asarray(layer_edges)[None, :] * np.asarray(sec)[:, None] - t_start[:, None], 0, None)
        lfrac = layer_fractions(a, (a - 1.0) / t, edges)
        if sums is not None:
            sums[rows] += e_gev[:, None] * 1e3 * lfrac
        return lfrac
    m = len(a)
    out = np.empty((m, max(len(layer_edges) - 1, 0)))
    add = sums is not None
    c = np.ascontiguousarray
    _component_layers_nb(c(a, f64), c(t, f64), c(t_start, f64), c(sec, f64), c(layer_edges, f64),
                         c(e_gev if add else np.zeros(m), f64), c(rows if add else np.zeros(m, np.int64), np.int64),
                         add, sums if add else np.zeros((1, 1)), out)
    return out


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


def add_em_component(expected, rows, start, axis, sec, e_gev, lfrac, r_c, r_t, p, r_scale, off_slope, z_start,
                     cell_edges, layer_z, is_x, min_half_mev, edges) -> None:
    """Add one shower component's expected cell deposits (MeV) to ``expected`` (n, 18, W) float32: the projected
    CDF of its GFLASH core + tail (radii ``r_c``, ``r_t`` in R_M times ``r_scale``, R_M in cm; core probability
    ``p``; (m, 18) for the events ``rows``) at the window's cell edges around its centre (the axis, moved by
    ``off_slope`` (m, 2) below ``z_start``). (event, layer) pairs holding at most 2 ``min_half_mev`` are skipped.

    numba path: one pass per (event, layer) doing the NumPy path's float64/float32 operations in the same order
    (bit for bit); NumPy path: the (m, 18) array steps, then :func:`add_em_cells`."""
    m = len(rows)
    f64 = np.float64
    rm = np.ascontiguousarray(np.broadcast_to(np.asarray(r_scale, f64), (m,)), f64)
    width = expected.shape[-1]
    if HAVE_NUMBA and expected.flags.c_contiguous and expected.dtype == np.float32:
        has_off = off_slope is not None
        _em_component_nb(expected.reshape(-1, width), np.ascontiguousarray(rows, np.int64),
                         np.ascontiguousarray(start, np.int64), np.ascontiguousarray(axis, f64),
                         np.ascontiguousarray(sec, f64), np.ascontiguousarray(e_gev, f64),
                         np.ascontiguousarray(lfrac, f64), np.ascontiguousarray(r_c, f64),
                         np.ascontiguousarray(r_t, f64), np.ascontiguousarray(p, f64), rm, has_off,
                         np.ascontiguousarray(off_slope if has_off else np.zeros((m, 2)), f64),
                         np.ascontiguousarray(z_start if has_off else np.zeros(m), f64),
                         np.ascontiguousarray(cell_edges, f64), np.ascontiguousarray(layer_z, f64),
                         np.ascontiguousarray(is_x, np.bool_), float(min_half_mev),
                         np.ascontiguousarray(edges, np.float32))
        return
    f32 = np.float32
    n_layers = lfrac.shape[1]
    rm = rm.reshape(-1, 1) * np.ones((1, n_layers))
    r_c, r_t = r_c * rm, r_t * rm
    centre = axis[rows]
    if off_slope is not None:
        dz = np.clip(layer_z[None, :] - z_start[:, None], 0, None) * sec[:, None]
        centre = centre + np.where(is_x[None, :], off_slope[:, :1], off_slope[:, 1:]) * dz
    base = (cell_edges[start[rows]] - centre).astype(f32).ravel()
    half_e = (e_gev[:, None] * 500.0 * lfrac).astype(f32).ravel()  # 0.5 * E[MeV] * layer fraction
    p, rc2, rt2 = p.ravel(), (r_c**2).ravel(), (r_t**2).ravel()
    sel = np.flatnonzero(half_e > min_half_mev)
    dense = len(sel) == len(half_e)
    if not dense:
        base, half_e, p, rc2, rt2 = base[sel], half_e[sel], p[sel], rc2[sel], rt2[sel]
    pair = (rows[:, None] * n_layers + np.arange(n_layers)[None, :]).ravel()
    if not dense:
        pair = pair[sel]
    # one fused pass per (event, layer): each pair appears once, so the += into the (n*18, W) view is exact
    flat = expected.reshape(-1, width)
    assert np.shares_memory(flat, expected)
    add_em_cells(flat, pair, base, (half_e * p).astype(f32), (half_e * (1 - p)).astype(f32), rc2.astype(f32),
                 rt2.astype(f32), edges)


def readout_cells(rng, expected, resp, mip_amp, mip_cell, gain, use_gain, stoch2, noise2, thr, sat, img) -> None:
    """img = min(sat, threshold(gain (E r + sqrt(stoch2 E r + noise2) z + mip))) cell by cell (float32), with z the
    next ``expected.size`` float32 normals of ``rng`` in C order and the MIP deposit ``mip_amp`` (n, 18) added in
    cell ``mip_cell`` (n, 18) of each layer (``mip_amp=None``: none)."""
    f32 = np.float32
    ok = (HAVE_NUMBA and img.flags.c_contiguous and expected.flags.c_contiguous and img.dtype == f32
          and expected.dtype == f32 and img.shape == expected.shape)
    resp = np.ascontiguousarray(resp, f32)
    gain = np.ascontiguousarray(gain, f32)
    has_mip = mip_amp is not None
    if not ok:
        z = rng.standard_normal(expected.shape, dtype=f32)
        mip = None
        if has_mip:
            mip = np.zeros(expected.shape, f32)
            np.put_along_axis(mip, np.asarray(mip_cell)[:, :, None], np.asarray(mip_amp, f32)[:, :, None], axis=2)
        _readout_cells_py(expected, resp, z, mip, gain, use_gain, f32(stoch2), f32(noise2), f32(thr), f32(sat), img)
        return
    amp = np.ascontiguousarray(mip_amp, f32) if has_mip else np.zeros((1, 1), f32)
    cell = np.ascontiguousarray(mip_cell, np.int64) if has_mip else np.zeros((1, 1), np.int64)
    _readout_nb(rng, expected, resp, amp, cell, has_mip, gain, bool(use_gain), f32(stoch2), f32(noise2), f32(thr),
                f32(sat), img)


def template_search(frac: np.ndarray, templ: np.ndarray, inv_norm2: np.ndarray, na: int):
    """Best template of the longitudinal fit (amsnb.ecal.reco.fit_longitudinal): ``best`` = argmax over the grid of
    (frac @ templ)^2 * inv_norm2 (float32, templ (18, nT*nA) with the a index fastest) and ``vals`` (n, 6) float32:
    that score, the scores of its T-1, T+1, a-1, a+1 neighbours (clamped at the grid's edges) and its projection.

    Both paths take the projection from the same float32 matrix product (BLAS ``sgemm``: a fused loop rounds
    differently, and sgemm's own rounding depends on a row's place in the batch). The numba path then does the
    squares, scaling, argmax and neighbour look-ups row by row in cache instead of as passes over (n, grid)
    temporaries, with the same float32 operations: bit for bit the NumPy path (tests/test_ecalreco.py)."""
    frac = np.ascontiguousarray(frac, np.float32)
    templ = np.asarray(templ, np.float32)
    inv_norm2 = np.ascontiguousarray(inv_norm2, np.float32)
    if not HAVE_NUMBA:
        return _template_best_py(frac @ templ, inv_norm2, na)
    # the (n, grid) projection (8 MB for a 2048-event block) goes into a buffer this thread reuses: a fresh array of
    # that size is a new mapping whose pages fault in on first touch (the same sgemm call, so the same numbers)
    proj = np.matmul(frac, templ, out=_workspace("proj", (len(frac), templ.shape[1])))
    best = np.empty(len(frac), np.int64)
    vals = np.empty((len(frac), 6), np.float32)
    _template_best_nb(proj, inv_norm2, int(na), best, vals)
    return best, vals


def cell_ratios(img: np.ndarray, axis_cell: np.ndarray, sat_thr: float):
    """Per-layer cell sums of amsnb.ecal.reco.reconstruct on float32 images (n, 18, 72): the 3 cells around
    ``axis_cell`` (n, 18), E_max/E_3 and E_3/E_5 around the first maximum cell (0 where the denominator is not > 0),
    and per event the cells > 0 and >= ``sat_thr`` (inf: none). Bit for bit the NumPy path (gathers of the clipped
    cell times "inside", summed in the same order), in one pass over the images instead of ~12."""
    if not (HAVE_NUMBA and img.dtype == np.float32 and img.flags.c_contiguous):
        return _cell_ratios_py(img, axis_cell, sat_thr)
    n, nl, _ = img.shape
    core = np.empty((n, nl), np.float32)
    r13 = np.empty((n, nl), np.float32)
    r35 = np.empty((n, nl), np.float32)
    counts = np.empty((n, 2), np.int64)
    _cell_ratios_nb(img, np.ascontiguousarray(axis_cell, np.int64), float(sat_thr), core, r13, r35, counts)
    if not np.isfinite(sat_thr):
        counts[:, 1] = 0
    return core, r13, r35, counts[:, 0], counts[:, 1]
