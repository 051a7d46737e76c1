"""Validation of the ECAL fast simulation against the published figures it is built from (physics.md §1, §3, §4, §7).

Every sample is fresh (fixed seeds, so the tests are reproducible); each tolerance says what it covers. The whole
file runs in ~30 s on 2 cores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from amsnb import io
from amsnb.ecal import sim as ecal
from amsnb.ecal.sim import events
from amsnb.errors import ConfigError
from amsnb.schema import ECAL


def _central(a, half=25.0):
    """Showers entering >= 7 cm (~3 R_M) from every edge: no lateral leakage (the cuts of notebook 02 do this)."""
    return (np.abs(a["truth_entry_x"]) < half) & (np.abs(a["truth_entry_y"]) < half)


@pytest.fixture(scope="module")
def electrons_fixed_energy():
    return {e: ecal.simulate(1500, "electron", seed=11, energy_range=(e, e * 1.0001), extras=True)
            for e in (50.0, 200.0, 1000.0)}


def test_schema_valid_both_domains_and_particles():
    for dom in ("mc", "iss"):
        for part in ("electron", "proton"):
            a = ecal.simulate(300, part, dom, seed=1)
            assert io.validate_arrays(a, ECAL) == 300
            for b in ECAL.branches:
                assert a[b.name].dtype == b.np_dtype, b.name
            assert not io.count_nonfinite(a), (dom, part)
            assert (a["label"] == (1 if part == "electron" else 0)).all()
            assert (a["domain"] == (1 if dom == "iss" else 0)).all()
            assert (a["weight"] > 0).all() and (a["ecal_edep"] >= 0).all()
            assert np.allclose(a["layer_frac"].sum(1), 1, atol=1e-4)
            assert len(np.unique(a["event"])) == 300


def test_deterministic_for_a_seed():
    a = ecal.simulate(500, "proton", "iss", seed=5)
    b = ecal.simulate(500, "proton", "iss", seed=5)
    c = ecal.simulate(500, "proton", "iss", seed=6)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not np.array_equal(a["ecal_edep"], c["ecal_edep"])


def test_energy_resolution_vs_published(electrons_fixed_energy):
    """sigma(E)/E against sqrt(0.104^2/E + 0.014^2) (AMS, physics.md §1). Tolerance 25 %: the statistical error
    of a standard deviation from ~850 central showers is 2.4 %; the rest is the model freedom (the formula is an
    [R] figure and our constant term emerges from leakage fluctuations, not a tuned number). Linearity: the mean
    E_reco/E_true within 1.5 % (AMS: better than 1 % at 8-180 GeV; stat. error 0.05 %)."""
    for e, a in electrons_fixed_energy.items():
        c = _central(a)
        r = a["energy"][c] / a["true_energy"][c]
        published = math.sqrt(0.104**2 / e + 0.014**2)
        assert abs(r.std() / r.mean() / published - 1) < 0.25, (e, r.std(), published)
        assert abs(r.mean() - 1) < 0.015, (e, r.mean())


def test_shower_max_vs_ln_e(electrons_fixed_energy):
    """Reconstructed depth of maximum vs ln E against the PDG t_max = ln(E/E_c) - 0.5 (E_c = 8.3 MeV, physics.md §3).
    GFLASH's sampling-calorimeter T lies 0.7 X0 below the PDG line for this ECAL (physics.md §3 table), so the
    tolerance is 1.0 X0 on the level (stat. error of a mean: 0.03 X0) and 15 % on the slope d t_max / d ln E = 1."""
    es = sorted(electrons_fixed_energy)
    means = []
    for e in es:
        a = electrons_fixed_energy[e]
        tmax = a["shower_max"][_central(a)]
        pdg = math.log(e / ecal.E_CRIT_GEV) - 0.5
        assert abs(tmax.mean() - pdg) < 1.0, (e, tmax.mean(), pdg)
        means.append(tmax.mean())
    slope = np.polyfit(np.log(es), means, 1)[0]
    assert 0.85 < slope < 1.15, slope


def test_lateral_containment_moliere_radius(electrons_fixed_energy):
    """90 % of a shower's energy lies within 1 R_M (PDG). The model's radial profile integrated over depth must give
    0.90 +- 0.05 at R_M = 2.45 cm; the images must hold >= 90 % (and < 99.5 %) within +-R_M of the reconstructed axis
    in projection (a band contains the disc, so >= 0.90; a stat. error of 0.1 % on the mean)."""
    for e in (100.0, 1000.0):
        assert abs(ecal.radial_containment(e, ecal.MOLIERE_CM) - 0.90) < 0.05
    from amsnb.ecal.reco import CELL_CENTRES, IS_X, LAYER_Z

    a = electrons_fixed_energy[1000.0]
    c = _central(a)
    ax = np.where(IS_X[None, :], a["entry_x"][c, None] + a["dxdz"][c, None] * LAYER_Z,
                  a["entry_y"][c, None] + a["dydz"][c, None] * LAYER_Z)
    img = a["ecal_edep"][c]
    band = np.abs(CELL_CENTRES[None, None, :] - ax[:, :, None]) < ecal.MOLIERE_CM
    frac = (img * band).sum((1, 2)) / img.sum((1, 2))
    assert 0.90 <= frac.mean() < 0.995, frac.mean()


def _tail_ratio(a, mask):
    """Mean cell energy 16-20 cm from the true axis over that 12-16 cm from it (both views, all layers)."""
    from amsnb.ecal.reco import CELL_CENTRES, IS_X, LAYER_Z

    ax = np.where(IS_X[None, :], a["truth_entry_x"][mask, None] + a["truth_dxdz"][mask, None] * LAYER_Z,
                  a["truth_entry_y"][mask, None] + a["truth_dydz"][mask, None] * LAYER_Z)
    d = np.abs(CELL_CENTRES[None, None, :] - ax[:, :, None])
    img = a["ecal_edep"][mask]
    return img[(d >= 16) & (d < 20)].mean() / img[(d >= 12) & (d < 16)].mean()


@pytest.mark.parametrize("particle", ["electron", "proton"])
def test_lateral_tail_has_no_window_edge(particle):
    """The lateral tails must continue smoothly past 16 cm (the old 36-cell window cut them there, an edge a
    classifier could learn). Far from the core the GFLASH/hadronic profiles fall like 1/r^3 in projection, so the
    mean cell energy at 16-20 cm over that at 12-16 cm is ~0.47 (measured 0.50-0.52 at 1-2 TeV); a window edge gives
    ~0.05. Band 0.3-0.8: ~140 central showers, event-to-event spread of the tail ~20 %."""
    kw = dict(seed=21, energy_range=(1000.0, 2000.0), extras=True)
    for window, lo, hi in ((None, 0.3, 0.8), (36, 0.0, 0.15)):  # the 36-cell window must fail the first band
        a = ecal.simulate(1500, particle, window=window, **kw)
        c = (np.abs(a["truth_entry_x"]) < 10) & (np.abs(a["truth_entry_y"]) < 10)
        if particle == "proton":
            c &= a["truth_interacted"]
        assert lo < _tail_ratio(a, c) < hi, (window, _tail_ratio(a, c))


def test_proton_interaction_fraction():
    """Fraction of protons interacting in the ECAL vs 1 - exp(-L sec(theta)/lambda_I), L = 16.65 cm, lambda_I = 25.9 cm
    (physics.md §1, ~0.47). 4 binomial sigma (sigma = 0.8 % for 4000 protons). MIP-like events (raw energy < 1 GeV)
    must match the non-interacting fraction within 4 % (physics.md §4: 1.4-3.6 % of interacting ones look MIP-like)."""
    a = ecal.simulate(4000, "proton", seed=3, energy_range=(200.0, 2000.0), energy_mode="true", extras=True)
    sec = np.sqrt(1 + a["truth_dxdz"] ** 2 + a["truth_dydz"] ** 2)
    expect = np.mean(1 - np.exp(-ecal.DEPTH_CM * sec / ecal.LAMBDA_I_CM))
    got = a["truth_interacted"].mean()
    sigma = math.sqrt(expect * (1 - expect) / len(sec))
    assert abs(got - expect) < 4 * sigma, (got, expect)
    mip_like = (a["energy_raw"] < 1.0).mean()
    assert 0 <= mip_like - (1 - got) < 0.04, (mip_like, 1 - got)


def test_energy_conservation():
    """Deposits never exceed the primary energy beyond fluctuations: raw <= E (1 + 6 sigma) with the stochastic and
    response terms (6 sigma: no false alarm in 3000 events), protons (that leak most) always below E."""
    e = ecal.simulate(1500, "electron", seed=4, energy_range=(100.0, 2000.0))
    p = ecal.simulate(1500, "proton", seed=4, energy_range=(100.0, 2000.0))
    et = e["true_energy"]
    sig = np.sqrt(ecal.STOCHASTIC**2 / et + 0.009**2)
    assert (e["energy_raw"] <= et * (1 + 6 * sig)).all()
    assert (p["energy_raw"] <= p["true_energy"]).all()


def test_reco_range_weights_match_brute_force():
    """Protons drawn by visible fraction (reco mode) must carry weights that reproduce the rate of a brute-force
    sample of primaries falling into the same reconstructed-energy bin. Tolerance: 3 combined standard errors of
    the two weighted sums (sqrt(sum w^2)). Reco mode must also put >= 90 % of its events in the bin."""
    lo, hi = 300.0, 600.0
    reco = ecal.simulate(4000, "proton", seed=21, energy_range=(lo, hi))
    brute = ecal.simulate(20000, "proton", seed=22, energy_range=(lo, 40 * hi), energy_mode="true")
    sums = []
    for a in (reco, brute):
        sel = (a["energy"] > lo) & (a["energy"] < hi)
        w = a["weight"][sel].astype(np.float64)
        sums.append((w.sum(), math.sqrt((w**2).sum())))
    (s1, e1), (s2, e2) = sums
    assert ((reco["energy"] > lo) & (reco["energy"] < hi)).mean() > 0.9
    assert abs(s1 - s2) < 3 * math.hypot(e1, e2), sums


def test_flux_ratio_and_domains():
    assert ecal.p_over_e(430.0) == pytest.approx(490, rel=1e-6)
    assert ecal.p_over_e(1670.0) == pytest.approx(1600, rel=1e-6)
    assert 490 < ecal.p_over_e(1000.0) < 1030
    gain, dead = ecal.get_domain("iss").maps()
    assert dead.sum() == ecal.DOMAINS["iss"].n_dead_cells and (gain[dead] == 0).all()
    assert abs(gain[~dead].std() - 0.024) < 0.004  # 1288 cells: stat. error of a std 2 %
    with pytest.raises(ConfigError, match="domain"):
        ecal.simulate(10, "electron", "nowhere")
    with pytest.raises(ConfigError, match="energy_range"):
        ecal.simulate(10, "electron", energy_range=(10, 5))


def test_generate_table1_resumable(tmp_path):
    paths = ecal.generate_table1(tmp_path, scale=2e-4, seed=3, iss_scale=3e-4, progress=False)
    sizes = ecal.table1_sizes(2e-4, 3e-4)
    for name, path in paths.items():
        assert io.num_entries(path) == sum(sizes[name])
    target = io.read(paths["iss_target"], branches=["label", "domain"])
    assert (target["label"] == -1).all() and (target["domain"] == 1).all()
    mtime = paths["mc_low"].stat().st_mtime_ns
    again = ecal.generate_table1(tmp_path, scale=2e-4, seed=3, iss_scale=3e-4, progress=False)
    assert again["mc_low"].stat().st_mtime_ns == mtime  # complete files are kept
    before = io.read(paths["mc_low"], branches=["energy"])["energy"]
    other = ecal.generate_table1(tmp_path, scale=2e-4, seed=4, iss_scale=3e-4, progress=False)
    after = io.read(other["mc_low"], branches=["energy"])["energy"]
    assert not np.array_equal(before, after)  # another seed regenerates instead of reusing stale events
    assert ecal.cli_main(["--preset", "electrons", "--n", "50", "--out", str(tmp_path / "e.root")]) == 0
    assert io.num_entries(tmp_path / "e.root") == 50


def test_fused_kernels_match_numpy_arithmetic():
    """The numba cell kernels (amsnb.ecal._kernels) do the NumPy path's float32 arithmetic cell by cell, and the
    readout kernel draws the same float32 normals from the same Generator: bit-identical results (checked when
    numba is present). The layer-fraction kernel sums the power series of P(a, x) instead of calling SciPy's
    gammainc: equal to 1e-13 in P (rounding level: the float64 series of <= 90 terms, each rounded once)."""
    from amsnb.ecal import _kernels as k

    if not k.HAVE_NUMBA:
        pytest.skip("numba not installed: the NumPy fallback is what runs")
    rng = np.random.default_rng(0)
    m, w = 500, 72
    f32 = np.float32
    base = rng.uniform(-60, 0, m).astype(f32)
    he_c, rc2 = rng.uniform(0, 1e3, m).astype(f32), rng.uniform(0.01, 3, m).astype(f32)
    he_t, rt2 = (0.3 * he_c).astype(f32), (8 * rc2).astype(f32)
    edges = (np.arange(w + 1) * 0.9).astype(f32)
    pair = rng.permutation(2 * m)[:m]
    a, b = np.ones((2 * m, w), f32), np.ones((2 * m, w), f32)
    k._add_em_cells_nb(a, pair, base, he_c, he_t, rc2, rt2, edges)
    k._add_em_cells_py(b, pair, base, he_c, he_t, rc2, rt2, edges)
    np.testing.assert_array_equal(a, b)
    exp = rng.exponential(50, (20, 18, w)).astype(f32)
    amp = rng.exponential(10, (20, 18)).astype(f32)
    cell = rng.integers(0, w, (20, 18))
    mip = np.zeros(exp.shape, f32)
    np.put_along_axis(mip, cell[:, :, None], amp[:, :, None], axis=2)
    gain = rng.uniform(0.9, 1.1, (18, w)).astype(f32)
    resp = rng.uniform(0.98, 1.02, 20).astype(f32)
    for use_mip in (False, True):
        x, y = np.full_like(exp, np.nan), np.zeros_like(exp)
        k.readout_cells(np.random.default_rng(5), exp, resp, amp if use_mip else None, cell, gain, True, 10.816,
                        0.4, 1.9, 1e3, x)
        z = np.random.default_rng(5).standard_normal(exp.shape, dtype=f32)
        k._readout_cells_py(exp, resp, z, mip if use_mip else None, gain, True, f32(10.816), f32(0.4), f32(1.9),
                            f32(1e3), y)
        np.testing.assert_array_equal(x, y)
    # layer fractions over the simulation's range (a 1.05-15, rate 0.05-3 /X0, depths 0-18 X0, late starts) and far
    # beyond it (x up to 60: the continued-fraction branch)
    n = 4000
    sh = rng.uniform(1.05, 15, n)
    rate = rng.uniform(0.05, 3.3, n)
    depth = np.clip(np.arange(19)[None, :] * 0.96 * rng.uniform(1, 1.05, (n, 1)) - rng.uniform(0, 12, (n, 1)), 0, None)
    got = k.layer_fractions(sh, rate, depth)
    ref = k._layer_fractions_py(sh, rate, depth)
    assert got.shape == ref.shape == (n, 18)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)
    np.testing.assert_allclose(got.sum(1), ref.sum(1), rtol=0, atol=1e-13)


def test_numba_and_numpy_paths_give_the_same_events(monkeypatch):
    """With and without numba (the fallback a machine without it runs), a seed gives the same events up to
    rounding: the layer fractions differ at 1e-14 (previous test), which the float32 cells absorb except when a
    value crosses a rounding or threshold boundary. Stated tolerance: every integer branch equal in >= 99 % of the
    events, every float branch within 1e-4 (relative, or 1e-3 absolute in MeV/cm/X0 units) in >= 99 % of them;
    measured on 12000 events: all bit-identical."""
    from amsnb.ecal import _kernels as k

    if not k.HAVE_NUMBA:
        pytest.skip("numba not installed: only the NumPy fallback exists here")
    runs = []
    for have in (True, False):
        monkeypatch.setattr(k, "HAVE_NUMBA", have)
        runs.append({p: ecal.simulate(800, p, "iss", seed=9, extras=True) for p in ("electron", "proton")})
    for part in ("electron", "proton"):
        a, b = runs[0][part], runs[1][part]
        for name in a:
            x, y = np.asarray(a[name]), np.asarray(b[name])
            if x.dtype.kind in "iub":
                same = (x == y).reshape(len(x), -1).all(1)
            else:
                close = np.isclose(x.astype(np.float64), y.astype(np.float64), rtol=1e-4, atol=1e-3, equal_nan=True)
                same = close.reshape(len(x), -1).all(1)
            assert same.mean() >= 0.99, (part, name, same.mean())


def test_events_do_not_depend_on_blas_threads():
    """The reconstruction's float32 matrix products round differently on 1 and 2 OpenBLAS threads (that made the
    events depend on the machine's cores); the simulation runs them on one thread whatever the caller set."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        a = ecal.simulate(1000, "proton", "iss", seed=2)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        b = ecal.simulate(1000, "proton", "iss", seed=2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_simulate_into_overwrites_every_branch():
    """Worker processes simulate into reused shared buffers: every branch must be written (full layer and a narrow
    window), so a buffer holding another chunk's values gives the events of a fresh one."""
    for part in ("electron", "proton"):
        for window in (None, 30):
            dirty = {k: np.full_like(v, 7) for k, v in events.new_output(300).items()}
            events._simulate_into(dirty, 300, part, "iss", 3, (200.0, 2000.0), window=window)
            fresh = ecal.simulate(300, part, "iss", seed=3, window=window)
            for name in fresh:
                np.testing.assert_array_equal(dirty[name], fresh[name], err_msg=f"{part} {window} {name}")


@pytest.mark.parametrize("kind", ["protons", "set", "arrays"])
def test_same_events_whatever_the_number_of_workers(tmp_path, kind):
    """Chunks are seeded by their index, simulated in worker processes and written in order: 1 or 3 workers write
    the same events (every branch, bit for bit); ``simulate_chunked`` returns what ``simulate_to_root`` writes."""
    files = []
    for workers in (1, 3):
        path = tmp_path / f"{kind}{workers}.root"
        if kind == "protons":
            ecal.simulate_to_root(path, 700, "proton", "iss", seed=4, chunk=200, progress=False, workers=workers)
        elif kind == "set":
            spec = ecal.SetSpec("mixed", "mc", 0, 0, (200.0, 2000.0))
            ecal.write_set(path, spec, 300, 400, 4, 0, chunk=150, progress=False, workers=workers)
        else:
            files.append(ecal.simulate_chunked(700, "proton", "iss", seed=4, chunk=200, workers=workers,
                                               extras=True))
            continue
        files.append(io.read(path))
    assert len(files[0]["event"]) == 700
    for name in files[0]:
        np.testing.assert_array_equal(files[0][name], files[1][name], err_msg=name)
    if kind == "arrays":
        assert "truth_interacted" in files[0]
        written = io.read(ecal.simulate_to_root(tmp_path / "ref.root", 700, "proton", "iss", seed=4, chunk=200,
                                                progress=False))
        for name in written:
            np.testing.assert_array_equal(files[0][name], written[name], err_msg=name)


def test_the_cli_writes_what_the_library_writes(tmp_path):
    """``amsnb simulate ecal --preset protons`` is ``simulate_to_root`` with its default chunking
    (``ROOT_CHUNK``-event chunks, chunk k seeded by (seed, k)), whatever the number of workers: 2.4 chunks here."""
    from amsnb.cli import main

    n = int(2.4 * ecal.ROOT_CHUNK)
    path = tmp_path / "cli.root"
    assert main(["simulate", "ecal", "--preset", "protons", "--n", str(n), "--seed", "6", "--domain", "iss",
                 "--workers", "2", "--out", str(path)]) == 0
    cli = io.read(path)
    ref = ecal.simulate_chunked(n, "proton", "iss", seed=6, workers=1)
    assert len(cli["event"]) == n
    for name in ref:
        np.testing.assert_array_equal(cli[name], ref[name], err_msg=name)


def test_mc_vs_iss_shifts():
    """The domain knobs' effect on 1-2 TeV electrons (docs/simulation.md, notebook 01's mc-vs-iss figures): ISS
    showers ~0.3 X0 deeper (depth_shift_x0; measured 0.26-0.27 X0 here, stat. 0.033 X0 from ~1500 central showers
    per domain with a 0.9 X0 spread) and wider (lateral_scale 1.05). The reconstructed lateral rms, in 0.9 cm
    cells, is dominated by the shower core inside the central cell, so it grows by 0.5-0.8 % only (stat. 0.23 %):
    the test asks for wider but less than 2 %."""
    a = {d: ecal.simulate(2500, "electron", d, seed=21, energy_range=(1000.0, 2000.0), extras=True)
         for d in ("mc", "iss")}
    c = {d: _central(v) for d, v in a.items()}
    ratio = a["iss"]["lateral_rms"][c["iss"]].mean() / a["mc"]["lateral_rms"][c["mc"]].mean()
    shift = a["iss"]["shower_max"][c["iss"]].mean() - a["mc"]["shower_max"][c["mc"]].mean()
    assert 1.0 < ratio < 1.02, ratio
    assert 0.15 < shift < 0.45, shift


def test_compact_cache_dtypes_keep_tev_cells(tmp_path):
    """1-2 TeV electrons hold cells above float16's 65504 MeV: the float16 cache clips them there (finite, no inf),
    the log16 cache (float16 of ln(1 + MeV)) keeps every cell to 0.4 % and decodes to float32 MeV."""
    from amsnb.ecal.cache import EcalDataset, build_cache

    a = ecal.simulate(200, "electron", seed=2, energy_range=(1000.0, 2000.0))
    io.write(tmp_path / "e.root", a, ECAL)
    img = a["ecal_edep"]
    assert (img > 65504).any()
    for dtype in ("float16", "log16"):
        ds = EcalDataset(build_cache(tmp_path / "e.root", tmp_path / dtype, dtype=dtype, progress=False))
        x = np.stack([ds[i]["x"].numpy()[0] for i in range(len(ds))])
        assert x.dtype == np.float32 and np.isfinite(x).all(), dtype
        if dtype == "float16":
            np.testing.assert_allclose(x, np.minimum(img, 65504), rtol=1e-3)
        else:
            np.testing.assert_allclose(x, img, rtol=4e-3, atol=1e-3)
