"""Shower reconstruction on hand-made images whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammainc

from amsnb.ecal import reco as er
from amsnb.errors import SchemaError
from amsnb.schema import N_CELLS, N_LAYERS


def _line_image(x0, y0, dxdz, dydz, e_layer=(100.0,) * N_LAYERS):
    """One cell per layer on a straight track, split linearly between the two nearest cells (exact COG)."""
    img = np.zeros((1, N_LAYERS, N_CELLS), np.float32)
    for lay in range(N_LAYERS):
        pos = (x0 + dxdz * er.LAYER_Z[lay]) if er.IS_X[lay] else (y0 + dydz * er.LAYER_Z[lay])
        f = (pos - er.CELL_CENTRES[0]) / 0.9
        i = int(np.floor(f))
        w = f - i
        img[0, lay, i] = e_layer[lay] * (1 - w)
        img[0, lay, i + 1] = e_layer[lay] * w
    return img


def test_axis_energy_and_counts_of_a_straight_track():
    img = _line_image(3.3, -7.1, 0.12, -0.05)
    r = er.reconstruct(img)
    assert r["entry_x"][0] == pytest.approx(3.3, abs=1e-3)
    assert r["entry_y"][0] == pytest.approx(-7.1, abs=1e-3)
    assert r["dxdz"][0] == pytest.approx(0.12, abs=1e-4)
    assert r["dydz"][0] == pytest.approx(-0.05, abs=1e-4)
    assert r["energy_raw"][0] == pytest.approx(1.8, rel=1e-5)
    assert r["n_hit_cells"][0] == 36
    np.testing.assert_allclose(r["layer_frac"][0], 1 / 18, rtol=1e-5)
    assert r["f_front"][0] == pytest.approx(2 / 18, rel=1e-5) and r["f_rear"][0] == pytest.approx(2 / 18, rel=1e-5)
    assert r["f_core"][0] == pytest.approx(1.0, rel=1e-5)  # both cells lie within one cell of the axis
    assert r["n_saturated"][0] == 0


def test_lateral_rms_and_cell_ratios():
    img = np.zeros((1, N_LAYERS, N_CELLS), np.float32)
    img[0, :, 35], img[0, :, 36], img[0, :, 37] = 10.0, 80.0, 10.0  # symmetric about cell 36
    r = er.reconstruct(img)
    expect_rms = np.sqrt(2 * 10 * 0.9**2 / 100)
    assert r["lateral_rms"][0] == pytest.approx(expect_rms, rel=1e-4)
    np.testing.assert_allclose(r["layer_rms"][0], expect_rms, rtol=1e-4)
    assert r["s1_s3"][0] == pytest.approx(0.8, rel=1e-5)
    assert r["s3_s5"][0] == pytest.approx(1.0, rel=1e-5)


def test_gamma_profile_fit_recovers_depth_and_containment():
    """A noiseless Gamma(a, T) layer profile: the fit returns T within half a grid step, and the energy corrects
    the rear leakage to within 2 % (the calibration is fitted on fluctuating showers, not this one)."""
    for t, a in ((6.0, 4.0), (10.5, 6.4)):
        b = (a - 1) / t
        edges = np.arange(N_LAYERS + 1) * er.LAYER_X0
        lay = np.diff(gammainc(a, b * edges))
        img = np.zeros((1, N_LAYERS, N_CELLS), np.float32)
        img[0, :, 36] = 1e6 * lay  # 1000 GeV shower
        r = er.reconstruct(img)
        assert abs(r["shower_max"][0] - t) < 0.3, (t, r["shower_max"][0])
        assert abs(r["energy"][0] / 1000.0 - 1) < 0.02, r["energy"][0]


def test_saturation_count_and_empty_and_bad_shapes():
    img = np.zeros((2, N_LAYERS, N_CELLS), np.float32)
    img[0, 8, 30] = 5000.0
    img[0, 9, 30] = 5000.0
    r = er.reconstruct(img, saturation_mev=5000.0)
    assert list(r["n_saturated"]) == [2, 0]
    for k, v in r.items():
        assert np.isfinite(v).all(), k  # an empty event gives zeros, never NaN
    assert r["energy"][1] == 0
    flat = er.reconstruct(img.reshape(2, -1))  # flat 1296-vectors are accepted
    assert flat["energy_raw"][0] == pytest.approx(10.0)
    with pytest.raises(SchemaError, match="18, 72"):
        er.reconstruct(np.zeros((3, 18, 70)))


def _awkward_images(rng, n=400):
    """Shower-like images plus the cases a user's file may hold: negative cells, ties, NaN, empty and saturated
    events, maxima at both edges of a layer."""
    x = rng.exponential(50, (n, N_LAYERS, N_CELLS)).astype(np.float32)
    x[x < 40] = 0
    x[:60] -= 20
    x[60:90] = np.round(x[60:90] / 50) * 50
    x[90:95, 3, 10] = np.nan
    x[95:100] = 0
    x[100:110, :, :5] = 1.7e5
    x[110:115] = -0.0
    x[115:120, :, 0] = 3.0
    x[115:120, :, -1] = 3.0
    return x


def test_reco_kernels_match_the_numpy_reference(monkeypatch):
    """The numba kernels of the reconstruction (template search, cell ratios and counts: amsnb.ecal._kernels) give
    the NumPy reference's results bit for bit, on awkward images too, and so does reconstruct() as a whole."""
    from amsnb.ecal import _kernels as k

    rng = np.random.default_rng(3)
    img = _awkward_images(rng)
    if k.HAVE_NUMBA:
        frac = rng.dirichlet(np.ones(N_LAYERS), 300).astype(np.float32)
        frac[:5] = 0
        frac[5, 7] = np.nan
        frac[6:10] = frac[5:6] * 0 + 1 / N_LAYERS  # identical rows
        proj = frac @ er._TEMPL_F32
        best, vals = np.empty(len(frac), np.int64), np.empty((len(frac), 6), np.float32)
        k._template_best_nb(proj, er._INV_NORM2_F32, len(er._A_GRID), best, vals)
        ref_best, ref_vals = k._template_best_py(proj, er._INV_NORM2_F32, len(er._A_GRID))
        np.testing.assert_array_equal(best, ref_best)
        np.testing.assert_array_equal(vals, ref_vals)
        axis_cell = rng.integers(-3, N_CELLS + 3, (len(img), N_LAYERS))
        for thr in (np.inf, float(np.float32(0.999 * 1.7e5))):
            got = k.cell_ratios(img, axis_cell, thr)
            want = k._cell_ratios_py(img, axis_cell, thr)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
    with np.errstate(invalid="ignore"):
        fast = er.reconstruct(img, saturation_mev=1.7e5)
        monkeypatch.setattr(k, "HAVE_NUMBA", False)
        slow = er.reconstruct(img, saturation_mev=1.7e5)
    for name in fast:
        np.testing.assert_array_equal(fast[name], slow[name], err_msg=name)
    assert list(fast["n_saturated"][100:102]) == [90, 90]
