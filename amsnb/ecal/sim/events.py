"""The events of a call: :func:`simulate` (its random stream, the blocks of ``BLOCK`` events, the particles'
energies and weights, reconstruction into the schema arrays) and how the chunks of a chunked run are cut and seeded
(``ROOT_CHUNK``, chunk ``k`` seeded by ``(seed, k)``). Everything here determines the events, so this file is part of
:data:`amsnb.ecal.sim.digest.DIGEST_FILES`; the processes that run the chunks are :mod:`amsnb.ecal.sim.engine`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError
from ...schema import ECAL, N_CELLS
from ..reco import energy_from_layers, reconstruct
from .physics import (
    PROTON_INDEX,
    V_MIN,
    V_REF,
    WINDOW,
    EcalDomain,
    cell_readout,
    electron_showers,
    flux,
    get_domain,
    incidence,
    layer_rho,
    log_slope,
    power_law,
    proton_draws,
    proton_latents,
    proton_showers,
    tracker_response,
    trd_response,
    visible_fraction,
)

#: Events per block of :func:`simulate` (cache-sized temporaries, :func:`_simulate_into`). The random stream runs
#: through the blocks in order, so the block size is part of the events.
BLOCK = 2048


def _check_args(n, particle, energy_range, energy_mode):
    if particle not in ("electron", "proton"):
        raise ConfigError(f"particle='{particle}' must be 'electron' or 'proton'")
    if int(n) < 0:
        raise ConfigError(f"n={n}: the number of events must be >= 0")
    lo, hi = energy_range
    if not (0 < lo < hi):
        raise ConfigError(f"energy_range={energy_range}: need 0 < low < high in GeV")
    if energy_mode not in ("reco", "true"):
        raise ConfigError(f"energy_mode='{energy_mode}' must be 'reco' (range of reconstructed energy) or 'true'")


def simulate(n: int, particle: str = "electron", domain: str | EcalDomain = "mc", seed: int | Sequence[int] = 0,
             energy_range: tuple[float, float] = (200.0, 2000.0), *, spectral_index: float = 1.0,
             energy_mode: str = "reco", positron_fraction: float = 0.1, weight_norm: float | None = None,
             first_event: int = 0, run: int | None = None, window: int | None = None,
             extras: bool = False) -> dict[str, np.ndarray]:
    """Simulate ``n`` electrons or protons; returns the ECAL schema arrays (plus MC-truth ``extras`` if asked).

    ``energy_range`` (GeV) is the range of *reconstructed* energy (``energy_mode="reco"``): electrons are drawn at
    that primary energy; protons first draw their interaction, then the primary energy E whose expected
    reconstructed energy is the drawn target (docs/simulation.md), so ~93 % land in the range and reconstructed bins
    fill efficiently. ``extras=True`` adds ``truth_*`` arrays (entry point and slopes, interaction depth, pi0
    fraction, ...), which are not schema branches. The generation spectrum is E^-spectral_index
    (1 = flat in log E); ``weight`` re-weights to the physical flux (:func:`flux`), normalised so that the sum of
    weights of a sample of ``weight_norm`` (default ``n``) events estimates the rate in arbitrary common units:
    electrons and protons from different calls combine into the physical composition. ``energy_mode="true"``
    draws the primary energy itself (protons then include non-interacting ones).
    """
    _check_args(n, particle, energy_range, energy_mode)
    n = int(n)
    out = new_output(n)
    ex = _simulate_into(out, n, particle, domain, seed, energy_range, spectral_index=spectral_index,
                        energy_mode=energy_mode, positron_fraction=positron_fraction, weight_norm=weight_norm,
                        first_event=first_event, run=run, window=window)
    if extras:
        out.update(ex)
    return out


def new_output(n: int) -> dict[str, np.ndarray]:
    return {b.name: np.zeros((n, *b.shape), b.np_dtype) for b in ECAL.branches}  # calloc: lazily zeroed pages


def _one_blas_thread():
    """Limit BLAS to one thread while simulating (the reconstruction's small float32 matrix products): OpenBLAS's
    second thread made no event faster but spun on the other core (x1.3 wall, x2.5 CPU time for 1 process; with one
    worker per core it oversubscribed them). It also makes the events independent of the machine: a multi-threaded
    ``sgemm`` rounds differently, so the same seed gave rounding-level different events with another number of
    cores or ``OPENBLAS_NUM_THREADS``."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn, a dependency
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _simulate_into(out: dict[str, np.ndarray], n: int, particle: str, domain, seed, energy_range, *,
                   spectral_index: float = 1.0, energy_mode: str = "reco", positron_fraction: float = 0.1,
                   weight_norm: float | None = None, first_event: int = 0, run: int | None = None,
                   window: int | None = None) -> dict[str, np.ndarray]:
    """:func:`simulate` into the (n, ...) arrays of ``out`` (every ECAL branch, any initial content; views of a
    shared buffer in worker processes); returns the MC-truth extras."""
    dom = get_domain(domain)
    seed_seq = list(seed) if isinstance(seed, (list, tuple)) else [int(seed)]
    rng = np.random.default_rng(seed_seq + [0 if particle == "electron" else 1, dom.code])
    gain, _ = dom.maps()
    lo, hi = map(float, energy_range)
    norm = float(weight_norm or max(n, 1))
    width = window or WINDOW  # the same for both classes: a class-dependent edge would be a fake discriminant
    if not 1 <= width <= N_CELLS:
        raise ConfigError(f"window={window}: cells per layer receiving shower energy must be 1..{N_CELLS} "
                          f"(leave it unset for the whole layer)")
    run = seed_seq[0] if run is None else run
    # blocks of ~2k events keep the per-cell temporaries in cache (2x faster than one big array); each block
    # writes into views of the preallocated output
    extra_parts = []
    with _one_blas_thread():
        for s in range(0, n, BLOCK):
            m = min(BLOCK, n - s)
            view = {k: v[s:s + m] for k, v in out.items()}
            extra_parts.append(_simulate_block(rng, m, particle, dom, gain, lo, hi, norm, width, spectral_index,
                                               energy_mode, positron_fraction, first_event + s, run, view))
    return {k: np.concatenate([p[k] for p in extra_parts]) for k in (extra_parts[0] if extra_parts else {})}


def _simulate_block(rng, n, particle, dom, gain, lo, hi, norm, width, spectral_index, energy_mode,
                    positron_fraction, first_event, run, out) -> dict:
    """Simulate ``n`` events into the arrays of ``out`` (views); returns the MC-truth extras."""
    if particle == "electron":
        e_true, pdf = power_law(rng, n, lo, hi, spectral_index)
        weight = flux(e_true, "electron") / (norm * pdf)
        expected, ev, truth, mip, ex = electron_showers(rng, n, e_true, dom, width)
        sign = np.where(rng.random(n) < positron_fraction, 1.0, -1.0)
        pdg = np.where(sign > 0, -11, 11)
    else:
        truth, ev = incidence(rng, n, width)
        if energy_mode == "true":
            e_true, pdf = power_law(rng, n, lo, hi, spectral_index)
            lat = proton_latents(rng, n, dom)
            weight = flux(e_true, "proton") / (norm * pdf)
        else:
            # draw latents, keeping each with probability a(v) = min(1, (v/V_REF)^(index-1)) (zero below V_MIN): at
            # fixed reconstructed energy the physical density of v is ~ v^(index-1), so the kept protons look like
            # the physical mixture and the weights stay near flat; P(keep) = E[a] enters the weight
            parts, drawn, got = [], 0, 0
            while got < n:
                m = max(4 * (n - got), 512)
                cand = proton_latents(rng, m, dom)
                vc = visible_fraction(cand, np.ones(m), dom)
                acc = np.where(vc > V_MIN, np.minimum(1.0, vc / V_REF) ** (PROTON_INDEX - 1), 0.0)
                ok = rng.random(m) < acc
                parts.append(({k: c[ok] for k, c in cand.items()}, vc[ok], acc[ok]))
                drawn += m
                got += int(ok.sum())
            lat = {k: np.concatenate([p[0][k] for p in parts])[:n] for k in parts[0][0]}
            v = np.concatenate([p[1] for p in parts])[:n]
            a_v = np.concatenate([p[2] for p in parts])[:n]
            p_acc = got / drawn
            e_t, pdf_t = power_law(rng, n, lo, hi, spectral_index)
            e_p0 = e_t / v
        if energy_mode == "true":
            expected, ev, truth, mip, ex = proton_showers(rng, n, e_true, lat, dom, width, ev, truth)
        else:
            # Find the primary energy E whose expected *reconstructed* energy is E_t: E R(E) = E_t, with R from the
            # shower's layer sums (the data's reconstruction) and the same random numbers replayed at each trial
            # energy (two Newton steps from E0 = E_t / v). The shape is then drawn at E itself and the proposal
            # density of E is g(E_t) |dE_t/dE| h(latents) a(v) / P(keep), with dE_t/dE = R (1 + s), s = dlnR/dlnE.
            # (the components' random numbers are drawn once, then the stream goes on as after the final shower's)
            draws = proton_draws(rng, lat, ev, dom.proton)
            e_lo, rho_lo = e_p0, layer_rho(rng, draws, e_p0, lat, dom, width, ev, truth)
            e_hi = e_t / rho_lo
            rho_hi = layer_rho(rng, draws, e_hi, lat, dom, width, ev, truth)
            slope = log_slope(e_lo, rho_lo, e_hi, rho_hi, -0.1)
            e_true = np.exp(np.log(e_hi) - (np.log(e_hi * rho_hi / e_t)) / (1 + slope))
            expected, ev, truth, mip, ex = proton_showers(rng, n, e_true, lat, dom, width, ev, truth, draws=draws)
            rho = np.maximum(energy_from_layers(expected.sum(axis=2, dtype=np.float64), ev.sec) / e_true, 1e-5)
            slope = log_slope(e_hi, rho_hi, e_true, rho, slope)
            weight = flux(e_true, "proton") * p_acc / (norm * pdf_t * rho * (1 + slope) * a_v)
        sign = np.ones(n)
        pdg = np.full(n, 2212)
    img = out["ecal_edep"]
    cell_readout(rng, expected, ev, dom, gain, mip, img)
    reco = reconstruct(img, saturation_mev=dom.saturation_mev)
    rig, chi2, q = tracker_response(rng, n, e_true, sign, particle, dom)
    values = dict(
        reco,
        run=run,
        event=np.arange(first_event, first_event + n),
        rigidity=rig,
        e_over_r=reco["energy"] / np.abs(rig),
        tracker_charge=q,
        trd_llr=trd_response(rng, n, e_true, particle, dom),
        track_chi2=chi2,
        label=1 if particle == "electron" else 0,
        true_energy=e_true,
        pdg=pdg,
        domain=dom.code,
        weight=weight,
    )
    for k, v in values.items():
        out[k][...] = v
    return {**{f"truth_{k}": np.asarray(v) for k, v in truth.items()},
            **{f"truth_{k}": np.asarray(v) for k, v in ex.items()}}


#: Events per chunk of :func:`~amsnb.ecal.sim.engine.simulate_to_root`, :func:`~amsnb.ecal.sim.engine.simulate_chunked`
#: and ``amsnb simulate ecal``: chunk ``k``
#: is seeded by ``(seed, k)``, so the chunk size is part of a file's identity. 5k keeps 2 workers evenly busy on
#: 1e5 events (20 chunks; 20k gave 5, the last one simulated alone) and the writer starts after 5k events.
ROOT_CHUNK = 5_000


def root_tasks(n, particle, domain, seed, energy_range, chunk, kwargs) -> list:
    _check_args(n, particle, energy_range, kwargs.get("energy_mode", "reco"))
    n, chunk = int(n), int(chunk)
    if chunk < 1:
        raise ConfigError(f"chunk={chunk}: events per chunk must be >= 1")
    return [(min(chunk, n - start), particle, domain, [int(seed), k], energy_range, n, start, int(seed), kwargs)
            for k, start in enumerate(range(0, max(n, 1), chunk))]


def root_chunk(m, particle, domain, seed, energy_range, n, start, run, kwargs, out=None) -> dict:
    """One chunk of :func:`~amsnb.ecal.sim.engine.simulate_to_root`: returns its arrays, or with ``out`` (views of
    m rows) fills them and returns only the MC-truth extras."""
    if out is None:
        return simulate(m, particle, domain, seed=seed, energy_range=energy_range, weight_norm=n, first_event=start,
                        run=run, **kwargs)
    kw = {k: v for k, v in kwargs.items() if k != "extras"}
    return _simulate_into(out, m, particle, domain, seed, energy_range, weight_norm=n, first_event=start, run=run,
                          **kw)
