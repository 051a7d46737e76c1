"""The speed work on the ECAL simulation (issue 14) must not change an event: the fused kernels do the NumPy steps'
operations in the same order, the energy search draws the shower components' random numbers once instead of
replaying the stream, and reused workspace buffers carry nothing from one block to the next. Bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from amsnb.ecal import _kernels as k
from amsnb.ecal import sim as ecal
from amsnb.ecal.sim import physics

needs_numba = pytest.mark.skipif(not k.HAVE_NUMBA, reason="numba not installed: the NumPy fallback is what runs")


def _equal(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{what}: {name}")


@needs_numba
def test_add_em_component_kernel_is_the_numpy_steps(monkeypatch):
    """One shower component's cells: the numba pass per (event, layer) equals the NumPy path's (m, 18) steps (radius
    scale, centre moved by the slope, layer energy, float32 casts, skipped empty layers, then the cell CDF)."""
    rng = np.random.default_rng(1)
    n, m, nl, w = 300, 200, 18, 72
    rows = np.sort(rng.choice(n, m, replace=False))
    start = rng.integers(0, 1, (n, nl))
    axis = rng.uniform(-30, 30, (n, nl))
    sec = rng.uniform(1, 1.05, m)
    e = rng.uniform(1, 2000, m)
    lfrac = rng.dirichlet(np.ones(nl), m) * (rng.random((m, nl)) > 0.3)  # empty layers are skipped
    lfrac[:5] *= 1e-12
    r_c, r_t, p = rng.uniform(0.02, 2, (m, nl)), rng.uniform(0.1, 5, (m, nl)), rng.uniform(0, 1, (m, nl))
    edges = (np.arange(w + 1) * 0.9).astype(np.float32)
    cell_edges = np.arange(w + 1) * 0.9 - 32.4
    for slope, scale in ((None, 2.45), (rng.normal(0, 0.1, (m, 2)), 2.45 * rng.uniform(0.6, 1.4, m))):
        z0 = rng.uniform(0, 16, m)
        got, ref = (np.ones((n, nl, w), np.float32) for _ in range(2))
        for out, have in ((got, True), (ref, False)):
            monkeypatch.setattr(k, "HAVE_NUMBA", have)
            k.add_em_component(out, rows, start, axis, sec, e, lfrac, r_c, r_t, p, scale, slope, z0, cell_edges,
                               ecal.LAYER_Z, ecal.IS_X, 0.005, edges)
        np.testing.assert_array_equal(got, ref)


@needs_numba
def test_component_layers_kernel_is_edges_then_layer_fractions():
    """The longitudinal step of a component (depth edges, Gamma rate, fractions, energy-search layer sums) in one
    kernel equals the NumPy edges and rate fed to the numba ``layer_fractions``."""
    rng = np.random.default_rng(2)
    m, n = 500, 700
    a, t = rng.uniform(1.05, 15, m), rng.uniform(0.5, 20, m)
    t0, sec = rng.exponential(3, m), rng.uniform(1, 1.05, m)
    rows, e = np.sort(rng.choice(n, m, replace=False)), rng.uniform(1, 3000, m)
    le = physics._LAYER_EDGES_X0
    edges = np.clip(le[None, :] * sec[:, None] - t0[:, None], 0, None)
    ref = k.layer_fractions(a, (a - 1.0) / t, edges)
    np.testing.assert_array_equal(k.component_layers(a, t, t0, sec, le), ref)
    sums, ref_sums = rng.uniform(0, 1, (n, 18)), None
    ref_sums = sums.copy()
    ref_sums[rows] += e[:, None] * 1e3 * ref
    np.testing.assert_array_equal(k.component_layers(a, t, t0, sec, le, sums, rows, e), ref)
    np.testing.assert_array_equal(sums, ref_sums)


def test_energy_search_draws_once_like_the_replayed_stream():
    """The components' random numbers drawn once (``proton_draws``) are those a replay of the stream from the same
    state drew, and leave the stream where the replayed shower left it."""
    dom = ecal.get_domain("iss")
    rng = np.random.default_rng(5)
    n = 400
    truth, ev = physics.incidence(rng, n, ecal.WINDOW)
    lat = physics.proton_latents(rng, n, dom)
    e = np.exp(rng.uniform(np.log(200), np.log(2000), n))
    state = rng.bit_generator.state
    replay = physics.proton_showers(rng, n, e, lat, dom, ecal.WINDOW, ev, truth, layers_only=True)[0]
    after_replay = rng.bit_generator.state
    rng.bit_generator.state = state
    draws = physics.proton_draws(rng, lat, ev, dom.proton)
    assert rng.bit_generator.state == after_replay
    once = physics.proton_showers(rng, n, e, lat, dom, ecal.WINDOW, ev, truth, layers_only=True, draws=draws)[0]
    assert rng.bit_generator.state == after_replay  # replaying from the draws consumes nothing
    np.testing.assert_array_equal(once, replay)


@pytest.mark.parametrize("particle", ["electron", "proton"])
def test_blocks_and_workspaces_do_not_leak(particle):
    """Blocks of one stream are sequential: the first BLOCK events of a longer run are the BLOCK-event run's (the
    second block reuses the workspace the first filled), and a run with another window or size in between (other
    workspace shapes) changes nothing."""
    b = ecal.BLOCK
    kw = dict(domain="iss", seed=3, weight_norm=1e4)
    short = ecal.simulate(b, particle, **kw)
    long = ecal.simulate(b + 300, particle, **kw)
    _equal(short, {name: v[:b] for name, v in long.items()}, "first block")
    ecal.simulate(100, particle, domain="mc", seed=1, window=30)
    _equal(long, ecal.simulate(b + 300, particle, **kw), "after another window")


@pytest.mark.parametrize("domain", ["mc", "iss"])
def test_same_events_across_block_boundaries_and_workers(domain):
    """Chunks longer than a block (each crosses a block boundary), 1 and 2 worker processes (tuned allocator,
    forked workspaces), both particles: every branch bit for bit, and each chunk is ``simulate`` seeded by
    (seed, k)."""
    n, chunk = 2 * ecal.BLOCK + 500, ecal.BLOCK + 200
    for particle in ("electron", "proton"):
        one = ecal.simulate_chunked(n, particle, domain, seed=8, chunk=chunk, workers=1)
        two = ecal.simulate_chunked(n, particle, domain, seed=8, chunk=chunk, workers=2)
        _equal(one, two, f"{particle} {domain} 1 vs 2 workers")
        last = ecal.simulate(n - 2 * chunk, particle, domain, seed=[8, 2], weight_norm=n, first_event=2 * chunk,
                             run=8)
        _equal({name: v[2 * chunk:] for name, v in one.items()}, last, f"{particle} {domain} chunk 2")


def test_template_search_workspace_is_not_returned():
    """The template projection goes into a reused buffer: results of a call survive the next call."""
    from amsnb.ecal import reco

    rng = np.random.default_rng(4)
    f1, f2 = rng.dirichlet(np.ones(18), 300), rng.dirichlet(np.ones(18), 50)
    first = reco.fit_longitudinal(f1, np.ones(300))
    kept = [x.copy() for x in first]
    reco.fit_longitudinal(f2, np.ones(50))
    for x, y in zip(first, kept):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(reco.fit_longitudinal(f1, np.ones(300)), kept):
        np.testing.assert_array_equal(x, y)
