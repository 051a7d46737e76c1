"""Fast simulation of heavy nuclei (Z = 14..26) crossing the AMS-02 tracker and TOF, with fragmentation.

Why: the "below-L1" background of seed 004 comes from nuclei that fragment between tracker L1 and L2 (TRD +
upper TOF): L1 shows the parent's charge, the inner tracker the fragment's. This module reproduces that
topology with per-layer charge, position and cluster-count responses so the MDA network and the template fit
of the L1 charge have something physical to learn and measure. Every constant cites ``docs/physics.md``
(§5 tracker/TOF, §6 fragmentation, §7 flux ratios) or is marked as an assumption ([R]/[NF] there) and is a
field of :class:`NucleiConfig` or :class:`NucleiDomain`, so a scan is a parameter change.

Model, per event (vectorized over events):

* primary Z with rigidity R ~ R^-gamma in ``rigidity_range``; ``weight`` = relative abundance at a few hundred GV
  (§7) / generated events, so samples of different species combine into the physical composition;
* a straight track through the layer z positions of §5 (bending is folded into the rigidity resolution);
* material gaps above L1, L1-L2 (``x_l1l2`` g/cm², scan range 5-7 of §6, with the two upper-TOF planes at its
  bottom), inside the inner tracker and L8-L9 (lower TOF + RICH); in each gap the nucleus interacts with
  P = 1 - exp(-x/lambda), lambda from the Sihver cross section on the 83 % C + 17 % Al mixture (§6); the leading
  charge loses dZ >= 0 drawn from partial cross sections (:func:`partial_cross_sections_mb`: sigma_cc = 0.87
  sigma_inel, dZ = 1 ~ 100-140 mb on carbon, docs/nuclei.md); after a charge change a second track (the next
  fragment) appears with probability ``p_second``;
* per-layer charge from the energy loss in 300 um of silicon (Vavilov core + escaping delta rays: a Landau-like
  tail growing with Z^2), a gain residual, the readout non-linearity with noise, inverted and calibrated to the peak
  (:func:`_layer_charge`); the inner-tracker charge is the truncated mean of L2-L8 (highest dropped);
* clusters per layer and side: the track's own + Poisson(delta rays ~ Z^2) + fragment debris below an interaction;
* inner and inner+L1 rigidities with the MDR / multiple-scattering resolution of §5 (MDR ~ lever arm^2), plus a kink
  term for an interaction between L1 and L2 (the inner+L1 fit sees the parent's L1 hit);
* TOF beta and plane charges (a plane measures the charge of whatever crosses it: energy loss in 1 cm of plastic,
  Birks quenching, photo-electron statistics, :func:`_tof_charge`).

Domains ``mc`` and ``data`` differ by documented shifts (:data:`DOMAINS`): charge scale, gain-residual and noise
terms, delta-ray rate (charge tail and clusters), TOF charge scale and resolution. ``data`` stands for flight data
in the notebooks; its truth is kept only so closure tests can check estimates against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..schema import DOMAIN_CODES, N_TRACKER_LAYERS, NUCLEI

# ------------------------------------------------------------------------------------------ constants
#: Layer z positions L1..L9 in cm (physics.md §5, [V-code] CC/TofTrack.C).
LAYER_Z_CM = np.array([158.920, 53.060, 29.228, 25.212, 1.698, -2.318, -25.212, -29.228, -135.882])
#: Mass numbers of the species (most abundant isotope); Z -> (symbol, A).
SPECIES = {14: ("Si", 28), 15: ("P", 31), 16: ("S", 32), 17: ("Cl", 35), 18: ("Ar", 40), 19: ("K", 39),
           20: ("Ca", 40), 21: ("Sc", 45), 22: ("Ti", 48), 23: ("V", 51), 24: ("Cr", 52), 25: ("Mn", 55),
           26: ("Fe", 56)}
LIGHT_A = {z: max(2 * z, 1) for z in range(1, 14)} | {1: 1, 2: 4, 3: 7, 4: 9, 5: 11, 6: 12, 7: 14, 8: 16}
#: Relative abundances at equal rigidity, 200-900 GV, Si = 1 (physics.md §7): S/Si 0.18 [D], Fe/Si 0.98 [V];
#: P/Si and Cl/Si total 0.03 (§6 illustration: secondary-only >= 0.012, total [NF]); Ar, K, Ca and Z = 21-25
#: are [NF] in physics.md: recalled HEAO-3-like ratios, an assumption to scan, not an AMS value.
ABUNDANCE = {14: 1.0, 15: 0.03, 16: 0.18, 17: 0.03, 18: 0.045, 19: 0.03, 20: 0.065, 21: 0.015, 22: 0.04,
             23: 0.025, 24: 0.05, 25: 0.035, 26: 0.98}
GLOBAL_Z = (14, 15, 16, 17, 18, 19, 20, 26)  # the seed's global MC species
N_AVOGADRO = 6.02214076e23
TARGET_MIX = ((12.0, 0.83), (27.0, 0.17))  # (A, mass fraction): "mostly carbon and aluminum" (physics.md §6)
TOF_PLANE_G = 1.05  # g/cm2 per 1-cm scintillator plane (physics.md §6 estimate: upper TOF 2 x 1 cm ~ 2.1)


def mass_number(z) -> np.ndarray:
    z = np.asarray(z)
    table = np.array([LIGHT_A.get(i, SPECIES.get(i, ("", 2 * i))[1]) for i in range(27)], dtype=float)
    return table[np.clip(z, 0, 26)]


def sihver_sigma_mb(a_p, a_t) -> np.ndarray:
    """Inelastic cross section (mb), Sihver et al. 1993 (physics.md §6): r0 = 1.36 fm, b0 = 1.581 - 0.876 (...)."""
    a_p = np.asarray(a_p, dtype=float)
    s = a_p ** (-1 / 3) + a_t ** (-1 / 3)
    b0 = 1.581 - 0.876 * s
    r0 = 1.36e-13  # cm
    return np.pi * r0**2 * (a_p ** (1 / 3) + a_t ** (1 / 3) - b0 * s) ** 2 / 1e-27


def interaction_length(z, sigma_scale: float = 1.0) -> np.ndarray:
    """lambda (g/cm2) in the C/Al mixture: 1/lambda = N_A sum_i w_i sigma_i / A_i (physics.md §6 table)."""
    a_p = mass_number(z)
    inv = sum(w * N_AVOGADRO * sihver_sigma_mb(a_p, a_t) * 1e-27 / a_t for a_t, w in TARGET_MIX)
    return 1.0 / (sigma_scale * inv)


def interaction_probability(z, grammage: float, sigma_scale: float = 1.0) -> np.ndarray:
    """Probability of an inelastic interaction (charge-changing or not) in ``grammage`` g/cm2 of the C/Al mix."""
    return 1.0 - np.exp(-grammage / interaction_length(z, sigma_scale))


def charge_changing_probability(z, grammage: float, config: NucleiConfig | None = None) -> np.ndarray:
    """Probability that the leading charge changes in ``grammage`` g/cm2: sigma_cc = ``sigma_cc_frac`` sigma_inel."""
    cfg = config or DEFAULT_CONFIG
    return 1.0 - np.exp(-grammage * cfg.sigma_cc_frac / interaction_length(z, cfg.sigma_scale))


def partial_cross_sections_mb(z: int, config: NucleiConfig | None = None, a_t: float = 12.0) -> np.ndarray:
    """sigma(dZ) in mb for a primary of charge ``z`` on a target of mass ``a_t``, dZ = 0 .. z-1 (index = dZ).

    dZ = 0 is the inelastic but not charge-changing part (neutron removal): (1 - sigma_cc_frac) sigma_inel. For
    1 <= dZ <= z/2 the leading fragment takes the measured-like partial cross sections
    sigma_1 (A/32)^(1/3) exp(-(dZ-1)/dz_slope), times (1 +- odd_even) for an even / odd fragment charge; what is left
    of sigma_cc (central collisions) spreads evenly over the lighter leading fragments. sigma_1 and the shape are
    given on carbon; on another target every channel scales with sigma_inel (factorisation, docs/nuclei.md).
    """
    cfg = config or DEFAULT_CONFIG
    z = int(z)
    a_p = float(mass_number(z))
    s_inel = float(sihver_sigma_mb(a_p, a_t)) * cfg.sigma_scale
    s_inel_c = float(sihver_sigma_mb(a_p, 12.0)) * cfg.sigma_scale
    out = np.zeros(max(z, 1))
    if z <= 1:
        return out
    out[0] = (1.0 - cfg.sigma_cc_frac) * s_inel
    s_cc = cfg.sigma_cc_frac * s_inel
    dz = np.arange(1, z)
    near = dz <= max(z // 2, 1)
    zf = z - dz
    oe = np.where(zf % 2 == 0, 1.0 + cfg.odd_even, 1.0 - cfg.odd_even)
    part = cfg.sigma_dz1_mb * (a_p / 32.0) ** (1 / 3) * np.exp(-(dz - 1) / cfg.dz_slope) * oe * (s_inel / s_inel_c)
    part = np.where(near, part, 0.0)
    if part.sum() > s_cc:
        part *= s_cc / part.sum()
    far = ~near
    if far.any():
        part[far] = (s_cc - part.sum()) / far.sum()
    else:
        part *= s_cc / part.sum()
    out[1:] = part
    return out


def _dz_cdf(cfg: NucleiConfig) -> np.ndarray:
    """(27, 26) cumulative P(dZ | interaction) per current charge 0..26 on the C/Al mix (rows of z <= 1 unused)."""
    cdf = np.ones((27, 26))
    for z in range(2, 27):
        tot = np.zeros(z)
        for a_t, w in TARGET_MIX:  # weight each target by its share of the interaction rate (w sigma / A)
            tot += w * partial_cross_sections_mb(z, cfg, a_t) / a_t
        c = np.cumsum(tot / tot.sum())
        cdf[z, :z] = c
        cdf[z, z - 1:] = 1.0
    return cdf


# ------------------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class NucleiDomain:
    """Response differences between the ``mc`` and ``data`` domains (all assumptions, documented in docs/nuclei.md)."""
    name: str
    code: int
    charge_scale: float = 1.0  # multiplies every tracker charge (gain calibration of the whole tracker)
    charge_res_scale: float = 1.0  # multiplies the tracker's gain-residual and noise terms (not the energy loss)
    delta_ray_scale: float = 1.0  # multiplies the delta-ray rate: energy-loss tail in a layer and extra clusters
    tof_charge_scale: float = 1.0
    tof_res_scale: float = 1.0  # multiplies the TOF gain residual and photo-electron fluctuation terms


DOMAINS = {
    "mc": NucleiDomain("mc", DOMAIN_CODES["mc"]),
    "data": NucleiDomain("data", DOMAIN_CODES["data"], charge_scale=1.012, charge_res_scale=1.12,
                         delta_ray_scale=1.25, tof_charge_scale=0.985, tof_res_scale=1.15),
}


@dataclass(frozen=True)
class NucleiConfig:
    """Geometry, material and resolution parameters (physics.md §5-§6; [R]/[NF] figures are assumptions)."""
    rigidity_range: tuple[float, float] = (60.0, 2000.0)  # GV, generated (true) rigidity
    spectral_index: float = 2.7  # R^-gamma; heavy-nuclei spectra ~ R^-2.7 above 100 GV [R]
    x_above_l1: float = 0.5  # g/cm2 above L1 (thermal blanket, L1 support) [NF]: assumption
    x_l1l2: float = 6.0  # g/cm2 TRD + upper TOF + supports; scan range 5-7 (physics.md §6, low confidence)
    x_inner: tuple[float, ...] = (0.4, 0.15, 0.4, 0.15, 0.4, 0.15)  # g/cm2 per inner gap L2-L3 ... L7-L8 [NF]
    x_l8l9: float = 4.0  # lower TOF (2 x 1.05) + RICH radiator (~2) [NF]
    sigma_scale: float = 1.0  # scales all inelastic cross sections (AMS varied Glauber sigma by +-10 %, §6)
    sigma_cc_frac: float = 0.87  # sigma_charge-changing / sigma_inel (rest: neutron removal, Z unchanged)
    sigma_dz1_mb: float = 120.0  # partial cross section dZ = 1 on carbon for A = 32 (scales as A^1/3), mb
    dz_slope: float = 6.0  # partial cross sections fall as exp(-(dZ - 1) / dz_slope) for dZ <= Z/2
    odd_even: float = 0.15  # even fragment charges x (1 + odd_even), odd x (1 - odd_even)
    p_second: float = 0.55  # probability that an interaction leaves a reconstructed second track (assumption)
    p_spurious_second: float = 0.03  # a noise/delta second track without any interaction
    layer_eff: tuple[float, float] = (0.985, 0.995)  # per-layer hit efficiency x side, y side
    l1_eff: float = 0.96  # L1 hit efficiency (edge of acceptance, §5)
    l9_eff: float = 0.75  # L9 hit/acceptance (small L9, §5)
    # silicon layer response (energy loss in units of the Z = 1 mean restricted loss Delta_1 in 300 um Si):
    si_xi_rel: float = 0.064  # Landau xi / Delta_1 (xi = 0.1535 Z/A rho x = 5.4 keV, Delta_1 ~ 84 keV; PDG)
    si_tcut_rel: float = 1.8  # delta rays above ~150 keV leave the 300 um layer: T_cut / Delta_1
    delta_dep_rel: float = 1.2  # mean energy an escaping delta ray leaves in the layer / Delta_1 (~100 keV)
    gain_res: tuple[float, float] = (0.03, 0.035)  # relative gain residual after equalisation: inner, L1
    sat_z2: float = 400.0  # readout non-linearity: signal halved at Z^2 = sat_z2 (seed strip saturates, Z > ~10)
    noise_z2: float = 1.5  # electronic noise after the non-linearity, in Z^2 units
    pos_res_cm: tuple[float, float] = (0.0030, 0.0010)  # x, y point resolution (10 um Z=1, 5 um Z=6, §5)
    mdr_inner_gv: float = 300.0  # inner tracker MDR for Z >= 3 from 3.6 TV (L1-L9) x (0.83 m / 2.95 m)^2 [D]
    mdr_inl1_gv: float = 1500.0  # inner + L1: (1.9 m / 2.95 m)^2 x 3.6 TV [D]
    ms_term: float = 0.09  # multiple-scattering relative rigidity resolution [R]
    kink_pt_gv: float = 0.25  # transverse momentum of a fragmentation kick, GeV/c per nucleon-scale [R]
    delta_ray_k: float = 0.0035  # delta-ray clusters per layer-side ~ k Z^2 (Si 0.7, Fe 2.4) [R]
    debris_per_dz: float = 0.45  # extra clusters per lost charge below an interaction (assumption)
    # TOF scintillator plane (1 cm): Vavilov core, Birks quenching, photo-electron statistics, gain residual
    tof_xi_rel: float = 0.043  # xi / Delta_1 for 1 cm of plastic (xi = 85 keV, Delta_1 ~ 2 MeV; PDG)
    tof_tcut_rel: float = 1.0  # delta rays above ~2 MeV leave the counter: T_cut / Delta_1
    tof_birks_z2: float = 400.0  # light halved at Z^2 = 400 (Birks quenching of the core; delta-ray light is not)
    tof_npe1: float = 200.0  # photo-electrons for Z = 1 (summed over the PMTs of a counter)
    tof_gain_res: float = 0.02  # counter gain / attenuation residual after calibration
    sigma_beta: float = 0.01  # Delta beta / beta^2 ~ 1 % for heavy ions (§5 [R])


DEFAULT_CONFIG = NucleiConfig()


def get_domain(domain: str | NucleiDomain) -> NucleiDomain:
    if isinstance(domain, NucleiDomain):
        return domain
    if domain == "iss":
        domain = "data"
    if domain not in DOMAINS:
        raise ConfigError(f"domain='{domain}' must be one of {list(DOMAINS)} (parameter --domain)")
    return DOMAINS[domain]


def _check_z(z: Sequence[int]) -> tuple[int, ...]:
    zs = tuple(int(v) for v in z)
    bad = [v for v in zs if v not in SPECIES]
    if not zs or bad:
        raise ConfigError(f"z={list(z)}: primaries must be in {min(SPECIES)}..{max(SPECIES)} (parameter --z)")
    return zs


# ------------------------------------------------------------------------------------------ simulation
def _gaps(cfg: NucleiConfig) -> np.ndarray:
    """Grammage of the 10 gaps: [above L1, L1-L2, L2-L3, ..., L7-L8, L8-L9] (gap k+1 lies after layer k)."""
    if len(cfg.x_inner) != 6:
        raise ConfigError(f"x_inner has {len(cfg.x_inner)} entries; it needs the 6 gaps L2-L3 ... L7-L8")
    return np.array([cfg.x_above_l1, cfg.x_l1l2, *cfg.x_inner, cfg.x_l8l9], dtype=float)


def _draw_dz(rng, z_cur: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Charge lost by the leading charge in an inelastic interaction, 0 <= dZ <= Z-1, drawn from the partial cross
    sections (:func:`partial_cross_sections_mb` on the C/Al mix, ``cdf`` from :func:`_dz_cdf`); 0 = not
    charge-changing."""
    u = rng.random(len(z_cur))
    rows = cdf[np.clip(z_cur, 0, 26)]
    dz = (u[:, None] > rows).sum(axis=1)
    return np.minimum(dz, np.maximum(z_cur - 1, 0))


def _energy_loss(rng, z: np.ndarray, xi_rel: float, tcut_rel: float, dep_rel: float, delta_scale: float) -> np.ndarray:
    """Energy deposited by charge ``z`` in a thin layer, in units of Z^2 x (mean loss of Z = 1).

    Heavy ions are in the Vavilov regime once the delta rays that leave the layer are cut off (kappa = xi Z^2 / T_cut
    >> 1): a Gaussian core of variance xi Z^2 T_cut (relative width sqrt(xi T_cut) / Z); the delta rays above T_cut
    (about xi Z^2 / T_cut of them, Poisson) leave part of their energy (exponential, mean ``dep_rel``) and make the
    upward, Landau-like tail whose size grows with Z^2. The mean of the tail is calibrated away (divided out)."""
    z = np.asarray(z)
    zf = z.astype(float)
    z2 = zf**2
    core = 1.0 + np.sqrt(xi_rel * tcut_rel) / np.maximum(zf, 1.0) * rng.standard_normal(z.shape)
    nu = delta_scale * xi_rel / tcut_rel * z2
    k = rng.poisson(nu)
    tail = rng.gamma(np.maximum(k, 1e-9), dep_rel) * (k > 0)  # sum of k exponential deposits
    norm = _peak_table(xi_rel, tcut_rel, dep_rel)[np.clip(z, 0, 26)]
    return z2 * (core + tail / np.maximum(z2, 1.0)) / norm


@lru_cache(maxsize=8)
def _peak_table(xi_rel: float, tcut_rel: float, dep_rel: float) -> np.ndarray:
    """Per charge 0..26, the most probable (peak) value of (core + tail / Z^2) with the MC delta-ray rate: the charge
    reconstruction is calibrated so that each species' peak sits at its Z (AMS calibrates to the peaks). A fixed
    seed: the table is part of the response, not of an event's randomness."""
    rng = np.random.default_rng(20260)
    out = np.ones(27)
    for z in range(1, 27):
        core = 1.0 + np.sqrt(xi_rel * tcut_rel) / z * rng.standard_normal(40000)
        k = rng.poisson(xi_rel / tcut_rel * z * z, 40000)
        v = core + rng.gamma(np.maximum(k, 1e-9), dep_rel) * (k > 0) / (z * z)
        lo, hi = np.quantile(v, [0.3, 0.6])  # the peak: mode of the histogram around the centre
        h, e = np.histogram(v, 60, (lo - (hi - lo), hi + (hi - lo)))
        hs = np.convolve(h, np.ones(5) / 5, mode="same")
        out[z] = 0.5 * (e[np.argmax(hs)] + e[np.argmax(hs) + 1])
    return out


def _layer_charge(rng, z: np.ndarray, gain_res: float, dom: NucleiDomain, cfg: NucleiConfig) -> np.ndarray:
    """Charge estimate of a silicon layer crossed by charge z: energy loss (:func:`_energy_loss`) x a gain residual,
    through the readout non-linearity S = E / (1 + E / sat_z2) with electronic noise added after it, inverted with the
    mean response (what the charge reconstruction does), square root; times the domain's charge scale."""
    z = np.asarray(z)
    e = _energy_loss(rng, z, cfg.si_xi_rel, cfg.si_tcut_rel, cfg.delta_dep_rel, dom.delta_ray_scale)
    e = e * (1.0 + gain_res * dom.charge_res_scale * rng.standard_normal(z.shape))
    sig = e / (1.0 + e / cfg.sat_z2) + cfg.noise_z2 * dom.charge_res_scale * rng.standard_normal(z.shape)
    sig = np.clip(sig, 0.0, 0.995 * cfg.sat_z2)
    e_rec = sig / (1.0 - sig / cfg.sat_z2)
    q = np.sqrt(np.maximum(e_rec, 0.0))
    return np.where(z > 0, np.maximum(q * dom.charge_scale, 0.05), 0.0)


def layer_charge_sigma68(z: int, layer: str = "inner", domain: str = "mc", n: int = 20000, seed: int = 0,
                         config: NucleiConfig | None = None) -> float:
    """Half-width of the central 68 % of one layer's charge for charge ``z`` ("inner" or "l1" gain residual), both
    sides read out: the per-layer resolution the response model gives (docs/nuclei.md)."""
    cfg = config or DEFAULT_CONFIG
    g = cfg.gain_res[0 if layer == "inner" else 1]
    q = _layer_charge(np.random.default_rng(seed), np.full(n, int(z)), g, get_domain(domain), cfg)
    lo, hi = np.quantile(q, [0.16, 0.84])
    return float((hi - lo) / 2)


def truncated_mean(q: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Mean of the present layers with the highest dropped (AMS-style truncated mean), 0 without hits. Public: the
    MC tune (:func:`amsnb.nuclei.samples.tune_mc_inputs`) recomputes the inner charge with it."""
    qq = np.where(present, q, np.nan)
    n = present.sum(axis=1)
    mx = np.nanmax(np.where(present, q, -np.inf), axis=1)
    tot = np.nansum(qq, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = np.where(n >= 3, (tot - mx) / np.maximum(n - 1, 1), np.where(n > 0, tot / np.maximum(n, 1), 0.0))
    return tm


def simulate(n: int, z: int | Sequence[int] = (14, 15, 16), domain: str | NucleiDomain = "mc",
             seed: int | Sequence[int] = 0, config: NucleiConfig = DEFAULT_CONFIG, *, weight_norm: float | None = None,
             first_event: int = 0, run: int | None = None) -> dict[str, np.ndarray]:
    """Simulate ``n`` nuclei, species drawn uniformly from ``z``; returns the NUCLEI schema arrays (with MC truth).

    ``weight`` = ABUNDANCE[Z] * len(z) / weight_norm (default ``n``): the weights of one species in a sample of
    ``weight_norm`` events sum to its relative abundance (up to the multinomial species counts), so samples of any
    species mix combine into the physical composition, as the ECAL simulation's weights do.

    The steps, in the order they draw from the one random generator (the order fixes the output of a seed):
    :func:`_draw_primaries`, :func:`_propagate` (fragmentation through the layers and TOF planes),
    :func:`_track_points` (geometry, hits), :func:`_main_track_charges`, :func:`_second_track`,
    :func:`_tracker_branches` (measured positions), :func:`_cluster_counts`, :func:`_rigidities`, :func:`_tof`.
    """
    zs = (int(z),) if np.isscalar(z) else _check_z(z)
    _check_z(zs)
    n = int(n)
    if n < 0:
        raise ConfigError(f"n={n} must be >= 0 (parameter --n)")
    dom = get_domain(domain)
    seed_seq = list(seed) if isinstance(seed, (list, tuple)) else [int(seed)]
    rng = np.random.default_rng(seed_seq + [dom.code, 7331])
    cfg = config
    out = NUCLEI.empty(n)

    z0, rig = _draw_primaries(rng, n, zs, cfg)
    passage = _propagate(rng, z0, cfg)
    tracks = _track_points(rng, rig, z0, passage, cfg)
    q, q_inner, q_l1 = _main_track_charges(rng, passage.z_layer, tracks, dom, cfg)
    second = _second_track(rng, rig, tracks, passage, dom, cfg)
    _tracker_branches(out, rng, tracks, q, second, cfg)
    out["n_clusters"][:] = _cluster_counts(rng, passage, tracks, second, dom, cfg)
    out["rig_inner"], out["rig_inl1"] = _rigidities(rng, rig, passage.frag_layer, tracks, cfg)
    out["q_inner"] = q_inner.astype(np.float32)
    out["q_l1"] = q_l1.astype(np.float32)
    out.update(_tof(rng, rig, z0, passage, second, dom, cfg))
    out.update(_truth(z0, passage, zs, dom, n, weight_norm, seed_seq[0] if run is None else run, first_event))
    return out


#: Depth of each tracker layer below L1 [cm].
_DEPTH_CM = LAYER_Z_CM[0] - LAYER_Z_CM


@dataclass
class _Passage:
    """MC truth of the path through the detector: the leading charge crossing each layer and upper-TOF plane, the
    gap index of the first interaction after L1 (-1: none), debris expected per layer, and the second track."""

    z_layer: np.ndarray  # (n, 9) leading charge crossing each layer
    frag_layer: np.ndarray  # layer after which the first interaction happened (-1: none or above L1)
    z_tof: np.ndarray  # (n, 2) charge crossing upper TOF planes 1, 2 (bottom of the L1-L2 gap)
    debris: np.ndarray  # (n, 9) expected extra clusters per layer from earlier interactions
    second_from: np.ndarray  # layer index where a second track starts (-1: none)
    z_second: np.ndarray  # charge of the second track


@dataclass
class _Tracks:
    """True main-track positions per layer, the fragment kick angles and which layer sides have a hit."""

    xs: np.ndarray
    ys: np.ndarray
    kick_angle: np.ndarray
    hit_x: np.ndarray
    hit_y: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return self.hit_x | self.hit_y


def _draw_primaries(rng, n: int, zs: tuple[int, ...], cfg: NucleiConfig) -> tuple[np.ndarray, np.ndarray]:
    """Species uniform in ``zs`` and rigidities from a power law R^-spectral_index in ``cfg.rigidity_range``."""
    z0 = np.asarray(zs)[rng.integers(0, len(zs), n)]
    lo, hi = cfg.rigidity_range
    g = 1.0 - cfg.spectral_index
    u = rng.random(n)
    rig = (lo**g + u * (hi**g - lo**g)) ** (1 / g) if abs(g) > 1e-9 else lo * (hi / lo) ** u
    return z0, rig


def _propagate(rng, z0: np.ndarray, cfg: NucleiConfig) -> _Passage:
    """Fragmentation along the path: gap by gap (the L1-L2 gap split at the two upper TOF planes), interactions with
    the Sihver cross section remove dZ ~ exp(-dZ/decay) from the leading charge, add debris below and sometimes
    start a second track."""
    n, nl = len(z0), N_TRACKER_LAYERS
    gaps = _gaps(cfg)
    zc = z0.copy()
    z_layer = np.zeros((n, nl), dtype=int)
    frag_layer = np.full(n, -1, dtype=int)
    z_tof = np.zeros((n, 2), dtype=int)
    debris = np.zeros((n, nl))
    second_from = np.full(n, -1, dtype=int)
    z_second = np.zeros(n, dtype=int)
    x_tof_top = max(cfg.x_l1l2 - 2 * TOF_PLANE_G, 0.0)
    cdf = _dz_cdf(cfg)
    for gap, x in enumerate(gaps):
        if gap == 1:  # L1-L2: split at the TOF planes so each plane sees the charge crossing it
            pieces = [(x_tof_top + 0.5 * TOF_PLANE_G, 0), (TOF_PLANE_G, 1), (x - x_tof_top - 1.5 * TOF_PLANE_G, None)]
        else:
            pieces = [(x, None)]
        for xp, plane in pieces:
            hit = (rng.random(n) < interaction_probability(zc, max(xp, 0.0), cfg.sigma_scale)) & (zc > 1)
            if hit.any():
                dz = _draw_dz(rng, zc[hit], cdf)
                idx = np.flatnonzero(hit)
                cc = dz >= 1  # charge-changing; dZ = 0 (neutron removal) leaves only target debris
                new_frag = idx[cc & (frag_layer[idx] < 0)]
                if gap > 0:
                    frag_layer[new_frag] = gap - 1
                if gap < nl:
                    debris[idx, gap:] += cfg.debris_per_dz * np.maximum(dz, 0.5)[:, None] * \
                        np.exp(-0.3 * np.arange(nl - gap))
                sec = idx[(rng.random(len(idx)) < cfg.p_second) & (second_from[idx] < 0) & cc]
                second_from[sec] = min(gap, nl - 1)
                share = rng.random(len(sec))
                z_second[sec] = np.maximum(1, np.round(share * dz[np.searchsorted(idx, sec)])).astype(int)
                zc[idx] = zc[idx] - dz
            if plane is not None:
                z_tof[:, plane] = zc
        if gap < nl:
            z_layer[:, gap] = zc
    return _Passage(z_layer, frag_layer, z_tof, debris, second_from, z_second)


def _track_points(rng, rig: np.ndarray, z0: np.ndarray, passage: _Passage, cfg: NucleiConfig) -> _Tracks:
    """Straight tracks through the layers (bending folded into the rigidity resolution) with multiple scattering,
    a transverse kick after the first interaction, and the per-side hit efficiencies (L1 and L9 separately)."""
    n, nl = len(z0), N_TRACKER_LAYERS
    x1 = rng.uniform(-45, 45, n)
    y1 = rng.uniform(-35, 35, n)
    tx = rng.uniform(-0.25, 0.25, n)
    ty = rng.uniform(-0.25, 0.25, n)
    dzl = _DEPTH_CM
    # multiple scattering: theta0 = 13.6 MeV / (beta p) * Z * sqrt(x/X0) = 0.0136 / R * sqrt(x/X0) (PDG), with
    # x/X0 ~ 1 % per layer + support; independent of Z at fixed rigidity
    ms_angle = 0.0136 / rig[:, None] * 0.1 * np.ones((1, nl))
    step = np.r_[0, np.diff(dzl)][None, :]
    xs = x1[:, None] + tx[:, None] * dzl + np.cumsum(rng.standard_normal((n, nl)) * ms_angle, axis=1) * step
    ys = y1[:, None] + ty[:, None] * dzl + np.cumsum(rng.standard_normal((n, nl)) * ms_angle, axis=1) * step
    # a fragment's transverse kick at the interaction: angle ~ pT / p with p = R Z (GeV/c)
    kick_angle = cfg.kink_pt_gv * rng.standard_normal((n, 2)) / (rig[:, None] * z0[:, None])
    frag_layer = passage.frag_layer
    after = (np.arange(nl)[None, :] > frag_layer[:, None]) & (frag_layer[:, None] >= 0)
    depth_after = np.where(after, dzl[None, :] - dzl[np.maximum(frag_layer, 0)][:, None], 0.0)
    xs = xs + kick_angle[:, :1] * depth_after
    ys = ys + kick_angle[:, 1:] * depth_after
    eff = np.array(cfg.layer_eff)
    hit_x = rng.random((n, nl)) < eff[0]
    hit_y = rng.random((n, nl)) < eff[1]
    l1_ok = rng.random(n) < cfg.l1_eff
    l9_ok = rng.random(n) < cfg.l9_eff
    hit_x[:, 0] &= l1_ok
    hit_y[:, 0] &= l1_ok
    hit_x[:, 8] &= l9_ok
    hit_y[:, 8] &= l9_ok
    alive = passage.z_layer > 0
    hit_x &= alive
    hit_y &= alive
    return _Tracks(xs, ys, kick_angle, hit_x, hit_y)


def _main_track_charges(rng, z_layer: np.ndarray, tracks: _Tracks, dom: NucleiDomain,
                        cfg: NucleiConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Main-track charge per layer (L1 with its own resolution; one side only is worse by sqrt(2)), the inner
    truncated mean (L2-L8) and the L1 charge."""
    present = tracks.present
    q = _layer_charge(rng, z_layer, cfg.gain_res[0], dom, cfg)
    q[:, 0] = _layer_charge(rng, z_layer[:, 0], cfg.gain_res[1], dom, cfg)
    one_side = present & ~(tracks.hit_x & tracks.hit_y)
    q = np.where(one_side, z_layer + (q - z_layer) * np.sqrt(2.0), q)
    q = np.where(present, np.maximum(q, 0.05), 0.0)
    q_inner = truncated_mean(q[:, 1:8], present[:, 1:8])
    q_l1 = np.where(present[:, 0], q[:, 0], 0.0)
    return q, q_inner, q_l1


def _second_track(rng, rig: np.ndarray, tracks: _Tracks, passage: _Passage, dom: NucleiDomain,
                  cfg: NucleiConfig) -> dict[str, np.ndarray]:
    """Second track (a fragment, or a spurious low-charge one): from its layer on, charge ``z_second``, diverging
    from the main track. ``has2``: a physical second track (before spurious ones are added)."""
    n, nl = len(rig), N_TRACKER_LAYERS
    dzl = _DEPTH_CM
    second_from, z_second = passage.second_from, passage.z_second
    has2 = second_from >= 0
    spurious = ~has2 & (rng.random(n) < cfg.p_spurious_second)
    second_from = np.where(spurious, rng.integers(1, nl, n), second_from)
    z_second = np.where(spurious, rng.integers(1, 3, n), z_second)
    on2 = (np.arange(nl)[None, :] >= second_from[:, None]) & (second_from[:, None] >= 0)
    on2 &= rng.random((n, nl)) < 0.9
    div = rng.normal(0, 1, (n, 2)) * (0.002 + 0.3 / rig[:, None])
    d2 = np.maximum(dzl[None, :] - dzl[np.clip(second_from, 0, nl - 1)][:, None], 0.0)
    x2 = tracks.xs + div[:, :1] * d2 + rng.normal(0, 0.02, (n, 1))
    y2 = tracks.ys + div[:, 1:] * d2 + rng.normal(0, 0.02, (n, 1))
    q2 = np.where(on2, _layer_charge(rng, np.where(on2, z_second[:, None], 0), cfg.gain_res[0], dom, cfg), 0.0)
    return {"has2": has2, "second_from": second_from, "on2": on2, "x2": x2, "y2": y2, "q2": q2}


def _tracker_branches(out: dict, rng, tracks: _Tracks, q: np.ndarray, second: dict, cfg: NucleiConfig) -> None:
    """Fill ``trk_hit``, ``trk_x``, ``trk_y``, ``trk_q`` of ``out`` (track 0 main, 1 second): measured positions
    smeared by the per-side resolution."""
    n, nl = tracks.xs.shape
    res = np.array(cfg.pos_res_cm)
    present, on2 = tracks.present, second["on2"]
    out["trk_hit"][:, 0] = (tracks.hit_x.astype(np.uint8) | (tracks.hit_y.astype(np.uint8) << 1))
    out["trk_hit"][:, 1] = np.where(on2, 3, 0).astype(np.uint8)
    out["trk_x"][:, 0] = np.where(present, tracks.xs + res[0] * rng.standard_normal((n, nl)), 0.0)
    out["trk_y"][:, 0] = np.where(present, tracks.ys + res[1] * rng.standard_normal((n, nl)), 0.0)
    out["trk_x"][:, 1] = np.where(on2, second["x2"], 0.0)
    out["trk_y"][:, 1] = np.where(on2, second["y2"], 0.0)
    out["trk_q"][:, 0] = q
    out["trk_q"][:, 1] = second["q2"]


def _cluster_counts(rng, passage: _Passage, tracks: _Tracks, second: dict, dom: NucleiDomain,
                    cfg: NucleiConfig) -> np.ndarray:
    """Clusters per layer and side: own hit + delta rays ~ Z^2 + second track + debris below interactions."""
    mu_delta = cfg.delta_ray_k * dom.delta_ray_scale * passage.z_layer.astype(float) ** 2
    side_scale = np.array([1.3, 1.0])  # x (n-side) strips pick up more delta rays [R]
    mu = (mu_delta[:, :, None] + passage.debris[:, :, None]) * side_scale[None, None, :] + 0.05
    ncl = rng.poisson(mu) + np.stack([tracks.hit_x, tracks.hit_y], axis=-1) + second["on2"][:, :, None]
    return np.minimum(ncl, 3000)


def _rigidities(rng, rig: np.ndarray, frag_layer: np.ndarray, tracks: _Tracks,
                cfg: NucleiConfig) -> tuple[np.ndarray, np.ndarray]:
    """Inner and inner+L1 rigidities: sigma_R/R = sqrt((R/MDR)^2 + ms^2); a kink between L1 and L2 spoils the L1
    point. 0 without at least 3 inner hits; inner+L1 falls back to inner without an L1 hit."""
    n = len(rig)
    present = tracks.present
    r_meas_inner = rig * (1 + rng.standard_normal(n) * np.hypot(rig / cfg.mdr_inner_gv, cfg.ms_term))
    r_inl1 = rig * (1 + rng.standard_normal(n) * np.hypot(rig / cfg.mdr_inl1_gv, cfg.ms_term * 0.8))
    # a kink between L1 and L2 biases the inner+L1 curvature: bending angle = 0.3 B L / R = 0.042 / R (B = 0.14 T,
    # L ~ 1 m, physics.md §5), so a kick d(theta) shifts 1/R by ~ d(theta) / 0.042 (half of it for the L1 lever arm)
    l1_kink = frag_layer == 0
    r_inl1 = np.where(l1_kink, 1.0 / (1.0 / r_inl1 + 0.5 * tracks.kick_angle[:, 1] / 0.042), r_inl1)
    # the inner fit assumes the inner charge; the magnetic rigidity of a fragment keeps ~A/Z, so it barely moves
    rig_inner = np.where(present[:, 1:8].sum(1) >= 3, r_meas_inner, 0.0).astype(np.float32)
    rig_inl1 = np.where(present[:, 0], r_inl1, rig_inner).astype(np.float32)
    return rig_inner, rig_inl1


def _tof(rng, rig: np.ndarray, z0: np.ndarray, passage: _Passage, second: dict, dom: NucleiDomain,
         cfg: NucleiConfig) -> dict[str, np.ndarray]:
    """TOF: beta, the charges of the two upper planes and the cluster counts (extra clusters after a change of
    charge above the plane or a second track from L1-L2)."""
    n = len(rig)
    z_tof, z_l1 = passage.z_tof, passage.z_layer[:, 0]
    out = {}
    mass = 0.9315 * mass_number(z0)
    p = rig * z0
    beta = p / np.sqrt(p**2 + mass**2)
    out["tof_beta"] = (beta + cfg.sigma_beta * beta**2 * rng.standard_normal(n)).astype(np.float32)
    plane_ok = rng.random((n, 2)) < 0.98
    qt = _tof_charge(rng, z_tof, dom, cfg)
    qt = np.where(plane_ok & (z_tof > 0), np.maximum(qt * dom.tof_charge_scale, 0.05), 0.0)
    out["tof_q_l1"] = qt[:, 0].astype(np.float32)
    out["tof_q_l2"] = qt[:, 1].astype(np.float32)
    n_ok = plane_ok.sum(1)
    out["tof_q_upper"] = np.where(n_ok > 0, qt.sum(1) / np.maximum(n_ok, 1), 0.0).astype(np.float32)
    out["tof_nclus_l1"] = (plane_ok[:, 0] + rng.poisson(0.08 + 0.4 * (z_tof[:, 0] != z_l1))).astype(np.int16)
    out["tof_nclus_l2"] = (plane_ok[:, 1] + rng.poisson(0.08 + 0.6 * (z_tof[:, 1] != z_l1)
                                                        + 0.3 * second["has2"] * (second["second_from"] <= 1))
                           ).astype(np.int16)
    lower_ok = rng.random((n, 2)) < 0.97
    out["tof_nclus_total"] = (plane_ok.sum(1) + lower_ok.sum(1)).astype(np.int16)
    return out


def _tof_charge(rng, z: np.ndarray, dom: NucleiDomain, cfg: NucleiConfig) -> np.ndarray:
    """Charge of a TOF plane: energy loss in 1 cm of scintillator (:func:`_energy_loss`), Birks-quenched light
    L = E / (1 + E / tof_birks_z2), photo-electron statistics (Poisson, Gaussian approximation) and a gain residual,
    inverted with the mean light response, square root."""
    e = _energy_loss(rng, z, cfg.tof_xi_rel, cfg.tof_tcut_rel, cfg.delta_dep_rel, dom.delta_ray_scale)
    light = e / (1.0 + e / cfg.tof_birks_z2)
    npe = cfg.tof_npe1 * np.maximum(light, 1e-6)
    light = light * (1.0 + dom.tof_res_scale * (rng.standard_normal(z.shape) / np.sqrt(npe)
                                                + cfg.tof_gain_res * rng.standard_normal(z.shape)))
    light = np.clip(light, 0.0, 0.995 * cfg.tof_birks_z2)
    e_rec = light / (1.0 - light / cfg.tof_birks_z2)
    return np.sqrt(np.maximum(e_rec, 0.0))


def tof_charge_sigma68(z: int, domain: str = "mc", n: int = 20000, seed: int = 0,
                       config: NucleiConfig | None = None) -> float:
    """Half-width of the central 68 % of one TOF plane's charge for charge ``z`` (docs/nuclei.md)."""
    cfg = config or DEFAULT_CONFIG
    q = _tof_charge(np.random.default_rng(seed), np.full(n, int(z)), get_domain(domain), cfg)
    lo, hi = np.quantile(q, [0.16, 0.84])
    return float((hi - lo) / 2)


def _truth(z0: np.ndarray, passage: _Passage, zs: tuple[int, ...], dom: NucleiDomain, n: int,
           weight_norm: float | None, run: int, first_event: int) -> dict[str, np.ndarray]:
    """MC truth and bookkeeping: charges at L1 and entering the inner tracker, fragmentation layer, domain, the
    abundance weight, run and event numbers."""
    z_l1, z_inner = passage.z_layer[:, 0], passage.z_layer[:, 1]
    norm = float(weight_norm or max(n, 1))
    return {"z_primary": z0.astype(np.int16), "z_l1": z_l1.astype(np.int16), "z_inner": z_inner.astype(np.int16),
            "survived_l1": (z_l1 == z0).astype(np.uint8), "frag_layer": passage.frag_layer.astype(np.int8),
            "domain": np.full(n, dom.code, np.int8),
            "weight": (np.array([ABUNDANCE[int(v)] for v in z0]) * len(zs) / norm).astype(np.float32)
            if n else np.zeros(0, np.float32),
            "run": np.full(n, run, np.int32), "event": np.arange(first_event, first_event + n, dtype=np.int64)}


# ------------------------------------------------------------------------------------------ files
def simulate_to_root(path: str | Path, n: int, z: Sequence[int] = (14, 15, 16), domain: str = "mc", seed: int = 0,
                     config: NucleiConfig = DEFAULT_CONFIG, chunk: int = 50_000, progress: bool = True) -> Path:
    """Simulate into a ROOT file in chunks (chunk k uses seed (seed, k)); written to ``.part`` and renamed when
    complete. It always simulates: deciding whether an existing file can be reused is :mod:`amsnb.provenance`'s job
    (:func:`amsnb.nuclei.samples.ensure_samples`)."""
    from tqdm.auto import tqdm

    from ..io import TreeWriter

    path = Path(path)
    zs = _check_z([z] if np.isscalar(z) else z)
    with TreeWriter(path, NUCLEI) as w, tqdm(total=n, desc=path.name, unit="ev", disable=not progress,
                                             leave=False) as bar:
        for k, start in enumerate(range(0, max(n, 1), chunk)):
            m = min(chunk, n - start)
            w.extend(simulate(m, zs, domain, seed=[int(seed), k], config=config, weight_norm=n,
                              first_event=start, run=int(seed)))
            bar.update(m)
    return path


def generator_digest() -> str:
    """Digest of this simulation's source: a sample is reused only if the same code made it."""
    import hashlib

    return hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:16]


def config_dict(config: NucleiConfig = DEFAULT_CONFIG) -> dict:
    return asdict(config)


def cli_main(argv: list[str] | None = None) -> int:
    """``amsnb simulate nuclei --n N --domain mc|data --seed S --out FILE.root [--z 14,15,16] [--x-l1l2 6]``."""
    from ..cliargs import ArgumentParser, nonnegative_int, positive_float, positive_int

    ap = ArgumentParser(prog="amsnb simulate nuclei", description="simulate heavy nuclei in the AMS tracker")
    ap.add_argument("--n", type=positive_int, default=10_000, help="events (species drawn uniformly from --z)")
    ap.add_argument("--domain", default="mc", choices=["mc", "data"], help="simulation (mc) or data-like detector")
    ap.add_argument("--seed", type=nonnegative_int, default=1, help="random seed")
    ap.add_argument("--out", required=True, help="output ROOT file")
    ap.add_argument("--z", default="14,15,16", help="comma-separated primary charges, 14..26")
    ap.add_argument("--x-l1l2", type=positive_float, default=DEFAULT_CONFIG.x_l1l2,
                    help="g/cm2 between L1 and L2 (5-7)")
    args = ap.parse_args(argv)
    try:
        zs = [int(v) for v in args.z.split(",") if v.strip()]
    except ValueError:
        ap.error(f"argument --z: '{args.z}': give comma-separated integers such as 14,15,16")
    if not zs:
        ap.error("argument --z: give at least one charge, e.g. 14,15,16")
    cfg = replace(DEFAULT_CONFIG, x_l1l2=args.x_l1l2)
    simulate_to_root(args.out, args.n, zs, args.domain, args.seed, cfg)
    print(args.out)
    return 0


__all__ = ["NucleiConfig", "NucleiDomain", "DOMAINS", "SPECIES", "ABUNDANCE", "GLOBAL_Z", "LAYER_Z_CM", "simulate",
           "simulate_to_root", "generator_digest", "interaction_length", "interaction_probability", "sihver_sigma_mb",
           "charge_changing_probability", "partial_cross_sections_mb", "layer_charge_sigma68", "tof_charge_sigma68",
           "truncated_mean", "mass_number", "cli_main"]
