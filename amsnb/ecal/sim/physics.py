"""The physics of the ECAL fast simulation: detector constants with their sources, the ``mc``/``iss`` domains, the
proton model, fluxes, GFLASH showers, the readout, tracker and TRD. Everything here determines the events, so this
file is part of :data:`amsnb.ecal.sim.digest.DIGEST_FILES`.

AMS flight data and MC are not public, so every notebook runs on showers made here. The model is built from
published parametrisations, fixed before any classifier is trained (constants cite ``docs/physics.md``):

* geometry: 18 layers x 72 cells of 0.9 cm, 16.65 cm of Pb/fibre composite = 17.3 X0 = 0.64 lambda_I (§1);
* electrons: GFLASH sampling-calorimeter longitudinal Gamma profile with correlated event-by-event fluctuations of
  ln T and ln alpha, and the GFLASH core+tail radial profile with tau computed from the event's own T (§3);
* protons: Landau (Moyal) MIP deposits until an inelastic interaction at a depth drawn from lambda_I = 25.9 cm;
  then pi0 photons (EM sub-showers starting after a conversion length, displaced by p_T/E) carrying a fluctuating
  EM fraction, plus a broad, lumpy hadronic component (§4);
* readout: sampling + photostatistics fluctuation per cell, per-cell noise, 3 sigma zero suppression, low-gain
  ADC saturation (§1), per-domain gain miscalibration and dead cells;
* tracker (MDR 2 TV, §5), tracker charge with a Landau tail, and a TRD likelihood proxy whose separation falls as
  protons reach the transition-radiation regime (§2);
* two domains, ``mc`` and ``iss``, differing by the documented knobs of :class:`EcalDomain` (docs/simulation.md).

Every component's radial profile is integrated analytically over all 72 cells of each layer (the projected CDF
of the GFLASH/Lorentzian-like profile), so the broad hadronic tails reach the edge of the detector instead of
stopping at a window edge (a 36-cell window cut them off at the 10-100 MeV/cell level in TeV proton showers, an edge
a classifier could learn). The ``window`` argument of :func:`amsnb.ecal.sim.simulate` still allows a narrower
window for experiments; noise outside it is then drawn sparsely (Poisson number, Gaussian-tail amplitudes).
:mod:`amsnb.ecal.sim.events` runs these pieces block by block into the schema arrays.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammainc, ndtri

from ...errors import ConfigError
from ...schema import CELL_PITCH_CM, DOMAIN_CODES, N_CELLS, N_LAYERS
from .._kernels import add_em_component, component_layers, readout_cells
from ..reco import IS_X, LAYER_X0, LAYER_Z, X0_CM, energy_from_layers

# ------------------------------------------------------------------------------------------ constants
#: Composite material (physics.md §1 [D]): Moliere radius, critical energy (GeV), effective Z, lambda_I (cm).
MOLIERE_CM = 2.45
E_CRIT_GEV = 8.3e-3
Z_EFF = 77.0
LAMBDA_I_CM = 25.9
DEPTH_CM = 16.65
DEPTH_X0 = DEPTH_CM / X0_CM
#: GFLASH sampling terms for this ECAL (physics.md §3 "Applied to the AMS ECAL"): F_s and e-hat.
F_S = 5.2
E_HAT = 0.65
#: Stochastic resolution term 10.4 %/sqrt(E) (physics.md §1, AMS PRL 110 141102), applied per cell as a variance
#: proportional to the cell energy: it is the sum of the sampling and the photostatistics (0.8/sqrt(N_pe),
#: 930 p.e./GeV, §1) terms.
STOCHASTIC = 0.104
#: Nominal per-cell low-gain saturation on the measured-energy scale (physics.md §1: 4095 x 36 / 0.873 MeV).
SATURATION_MEV = 4095 * 36 / 0.873
#: Most probable MIP deposit per 0.9 cm cell and layer (physics.md §1: ~10 HG counts at 0.873 count/MeV).
MIP_MPV_MEV = 10.0 / 0.873
MIP_WIDTH = 0.18  # Moyal scale / MPV: thin-sampling Landau width (assumption, docs/simulation.md)
#: Tracker maximum detectable rigidity for Z=1 (physics.md §5, ~1.8-2 TV) and multiple-scattering term.
MDR_GV = 2000.0
MS_TERM = 0.08
#: Flux model (physics.md §7): protons E^-2.7, p/(e+ + e-) at equal kinetic energy, log-log interpolated.
PROTON_INDEX = 2.7
_P_OVER_E = np.array([[430.0, 490.0], [590.0, 580.0], [830.0, 680.0], [1180.0, 1030.0], [1670.0, 1600.0]])
#: Protons whose predicted visible fraction is below this cannot reach a reconstructed-energy range.
V_MIN = 0.01
#: Cells per layer (centred on the axis) that receive shower energy and per-cell fluctuations: the whole layer
#: (the hadronic lumps are ~3x wider than an EM shower, with Lorentzian-like 1/r^3 tails, physics.md §3-§4).
WINDOW = N_CELLS
#: Mean free path of a photon for pair production, 9/7 X0 (PDG), and the depth of maximum of a photon shower
#: relative to an electron shower of the same energy, both from their origin: t_max = ln y + C with
#: C_gamma - C_e = +0.5 - (-0.5) = +1 X0 (physics.md §3, PDG). The conversion point is drawn from Exp(9/7 X0);
#: the shower after it is an e+e- pair sharing the photon energy, which peaks 9/7 - 1 = 2/7 X0 earlier than a
#: single electron of the full energy, so the mean photon maximum is 1 X0 deeper than the electron's.
PHOTON_CONV_X0 = 9.0 / 7.0
PHOTON_DT_MAX_X0 = 1.0
#: Layer energies (MeV) of one shower component below which its lateral spread is not computed: 1/60 of the
#: per-cell noise sigma for the whole layer, invisible after the 3 sigma zero suppression (physics.md §1).
MIN_LAYER_MEV = 0.01
#: Mean distance (X0) from the interaction to the start of the visible hadronic lumps (slow fragments and
#: secondary pions deposit promptly; sets the 'late interaction looks MIP-like' rate, physics.md §4: 1.4-3.6 %).
HAD_START_X0 = 0.3
V_REF = 0.6
FACE_HALF_CM = N_CELLS * CELL_PITCH_CM / 2
_CELL_EDGES = np.arange(N_CELLS + 1) * CELL_PITCH_CM - FACE_HALF_CM
_LAYER_EDGES_X0 = np.arange(N_LAYERS + 1) * LAYER_X0
_LAYER_MID_X0 = (np.arange(N_LAYERS) + 0.5) * LAYER_X0
_WINDOW_EDGES = (np.arange(N_CELLS + 1) * CELL_PITCH_CM).astype(np.float32)


@dataclass(frozen=True)
class ProtonModel:
    """Hadronic-interaction knobs (physics.md §4; the per-event probabilities are [NF] there, so these are
    documented assumptions, fixed before any classifier was trained)."""

    lambda_i_cm: float = LAMBDA_I_CM
    inelasticity_beta: tuple[float, float] = (2.5, 2.5)  # K ~ Beta: leading baryon keeps ~half the energy
    pi0_share_beta: tuple[float, float] = (2.0, 4.0)  # pi0 share of produced energy, mean 1/3 (isospin)
    # Leading-pi0 channel (physics.md §4 "how protons fake electrons"): a highly inelastic interaction in which one
    # pi0/eta takes most of the energy and the baryonic remainder leaves with little visible deposit. Its rate is
    # [NF]; physics.md says to calibrate this tail to the AMS ECAL rejection (~1e3-1e4 at 90 % e efficiency, [R]):
    # with 10 % a gradient-boosted classifier on the shower shapes passes 4 of 14630 1-2 TeV protons at 90 %
    # (rejection 3.7e3, inside that range; measured after the full-layer lateral and photon-depth fixes,
    # docs/simulation.md). Two collinear decay photons, flat energy share.
    p_leading_pi0: float = 0.10
    leading_inelasticity_beta: tuple[float, float] = (6.0, 1.5)
    leading_share_beta: tuple[float, float] = (8.0, 1.0)
    leading_had_visible: float = 0.15  # hadronic visible fraction relative to the ordinary channel
    had_visible_gamma: tuple[float, float] = (2.0, 0.12)  # Gamma(shape, scale) visible fraction of hadronic part
    pt_gev: float = 0.35  # mean transverse momentum of secondaries
    had_lateral_scale: float = 3.0  # hadronic blobs: lateral width in units of the EM one
    had_slope_sigma: float = 0.15  # angular spread of the hadronic blobs (rad)


@dataclass(frozen=True)
class EcalDomain:
    """Physical knobs that differ between the AMS MC (``mc``) and flight data (``iss``); docs/simulation.md
    gives each value and why. Defaults are the MC (nominal) detector."""

    name: str = "mc"
    lateral_scale: float = 1.0  # Moliere-radius scale of the lateral profile
    depth_shift_x0: float = 0.0  # shift of the longitudinal depth of maximum
    gain_spread: float = 0.0  # per-cell relative gain miscalibration (Gaussian sigma)
    n_dead_cells: int = 0  # dead readout cells (fixed map)
    noise_mev: float = 0.63  # per-cell noise sigma: 0.55 ADC counts / 0.873 count/MeV (physics.md §1)
    threshold_sigma: float = 3.0  # zero suppression (physics.md §1)
    trd_width: float = 1.0  # width of the TRD estimator distributions (gas gain, ageing)
    trd_shift: float = 0.0  # shift of the TRD estimator (calibration)
    response_spread: float = 0.009  # per-event response non-uniformity (fibre attenuation / PMT position residual)
    hadron_scale: float = 1.0  # visible hadronic response (QGSP vs FTFP differ by 13-28 %, physics.md §4)
    saturation_mev: float = SATURATION_MEV
    map_seed: int = 20110519  # seed of the fixed gain / dead-cell maps (the AMS launch date)
    proton: ProtonModel = field(default_factory=ProtonModel)

    @property
    def code(self) -> int:
        return DOMAIN_CODES["iss" if self.name in ("iss", "data") else "mc"]

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """The fixed per-cell gain map (18, 72) and dead-cell mask of this detector."""
        rng = np.random.default_rng(self.map_seed)
        gain = (1.0 + self.gain_spread * rng.standard_normal((N_LAYERS, N_CELLS))).astype(np.float32)
        dead = np.zeros((N_LAYERS, N_CELLS), bool)
        if self.n_dead_cells:
            idx = rng.choice(N_LAYERS * N_CELLS, self.n_dead_cells, replace=False)
            dead.flat[idx] = True
        gain[dead] = 0.0
        return gain, dead


DOMAINS = {
    "mc": EcalDomain("mc"),
    # Flight-like detector: showers ~5 % wider and 0.3 X0 deeper than the MC (the AMS MC is not tuned to ISS
    # showers, seed 000); MIP-equalisation precision 2.4 % (physics.md §1); a few dead channels; noisier
    # pedestals; a broader TRD estimator; a 10 % lower hadronic visible response (physics-list spread, §4).
    "iss": EcalDomain("iss", lateral_scale=1.05, depth_shift_x0=0.3, gain_spread=0.024, n_dead_cells=8,
                      noise_mev=0.8, response_spread=0.012, trd_width=1.15, trd_shift=0.03, hadron_scale=0.9),
}


def get_domain(domain: str | EcalDomain) -> EcalDomain:
    if isinstance(domain, EcalDomain):
        return domain
    key = "iss" if domain == "data" else domain
    if key not in DOMAINS:
        raise ConfigError(f"domain='{domain}' is not one of {list(DOMAINS)}; or pass an EcalDomain(...)")
    return DOMAINS[key]


# ------------------------------------------------------------------------------------------ fluxes
def p_over_e(energy_gev) -> np.ndarray:
    """p/(e+ + e-) flux ratio at equal kinetic energy (physics.md §7), log-log interpolated and extrapolated."""
    le = np.log(_P_OVER_E[:, 0])
    lr = np.log(_P_OVER_E[:, 1])
    x = np.log(np.asarray(energy_gev, dtype=np.float64))
    slope_lo = (lr[1] - lr[0]) / (le[1] - le[0])
    slope_hi = (lr[-1] - lr[-2]) / (le[-1] - le[-2])
    y = np.interp(x, le, lr)
    y = np.where(x < le[0], lr[0] + slope_lo * (x - le[0]), y)
    y = np.where(x > le[-1], lr[-1] + slope_hi * (x - le[-1]), y)
    return np.exp(y)


def flux(energy_gev, particle: str) -> np.ndarray:
    """Relative differential flux (protons E^-2.7 normalised at 1 TeV; electrons = protons / p_over_e)."""
    e = np.asarray(energy_gev, dtype=np.float64)
    fp = (e / 1000.0) ** -PROTON_INDEX
    return fp if particle == "proton" else fp / p_over_e(e)


def power_law(rng, n, lo, hi, index):
    """Draw from E^-index on [lo, hi]; returns (E, pdf(E))."""
    u = rng.random(n)
    if abs(index - 1.0) < 1e-9:
        e = lo * (hi / lo) ** u
        pdf = 1.0 / (e * math.log(hi / lo))
    else:
        g = 1.0 - index
        a, b = lo**g, hi**g
        e = (a + u * (b - a)) ** (1.0 / g)
        pdf = g * e**-index / (b - a)
    return e, pdf


# ------------------------------------------------------------------------------------------ EM showers
def gflash_parameters(rng, e_gev: np.ndarray, fluctuate: bool = True,
                      normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth of maximum T (X0) and shape alpha of GFLASH sampling-calorimeter showers (physics.md §3).

    ``normals`` (2, n): the two standard-normal draws, if given (else drawn from ``rng``)."""
    ln_y = np.log(np.maximum(e_gev, 0.05) / E_CRIT_GEV)
    ln_y = np.maximum(ln_y, 2.6)  # the fluctuation formulas need ln y > 2 (E > 60 MeV)
    t_hom = ln_y - 0.812
    a_hom = 0.81 + (0.458 + 2.26 / Z_EFF) * ln_y
    t_sam = t_hom - 0.55 / F_S - 0.69 * (1 - E_HAT)
    a_sam = a_hom - 0.476 / F_S
    if not fluctuate:
        return t_sam, a_sam
    s_t = 1.0 / (-2.5 + 1.25 * ln_y)
    s_a = 1.0 / (-0.82 + 0.79 * ln_y)
    rho = 0.784 - 0.023 * ln_y
    z1, z2 = normals if normals is not None else rng.standard_normal((2, len(e_gev)))
    c1, c2 = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
    t = np.exp(np.log(t_sam) + s_t * (c1 * z1 + c2 * z2))
    a = np.exp(np.log(a_sam) + s_a * (c1 * z1 - c2 * z2))
    return t, np.maximum(a, 1.05)


def radial_parameters(e_gev: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GFLASH core radius, tail radius (units of R_M) and core probability at tau = t/T (physics.md §3).

    Homogeneous-medium parametrisation with the sampling corrections of the Geant4 tuning header.
    """
    le = np.log(np.maximum(e_gev, 0.05))[..., None]
    z = Z_EFF
    r_c = 0.0251 + 0.00319 * le + (0.1162 - 0.000381 * z) * tau
    k4 = 0.3585 + 0.0412 * le
    with np.errstate(over="ignore"):  # tau > ~1000 (a tiny sub-shower, far past its maximum): inf, clipped at 50
        r_t = (0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
    p1, p2, p3 = 2.632 - 0.00094 * z, 0.401 + 0.00187 * z, 1.313 - 0.0686 * le
    p3 = np.maximum(p3, 0.2)
    p = p1 * np.exp((p2 - tau) / p3 - np.exp((p2 - tau) / p3))
    ef = np.exp(-tau) / F_S
    r_c = r_c - 0.0203 * (1 - E_HAT) + 0.0397 * ef
    r_t = r_t - 0.14 * (1 - E_HAT) - 0.495 * ef
    p = p + (1 - E_HAT) * (0.348 - 0.642 / F_S * np.exp(-((tau - 1) ** 2)))
    return np.clip(r_c, 0.02, 50.0), np.clip(r_t, 0.1, 50.0), np.clip(p, 0.0, 1.0)


def radial_containment(e_gev: float, r_cm: float, lateral_scale: float = 1.0) -> float:
    """Fraction of an (average) shower's energy within a cylinder of radius ``r_cm`` around its axis.

    Integrates the same GFLASH radial profile the simulation uses over the mean longitudinal profile,
    in an infinitely deep medium (the PDG "90 % within 1 R_M" statement refers to full showers).
    """
    t, a = gflash_parameters(None, np.array([e_gev]), fluctuate=False)
    tt = np.linspace(0.05, 40, 800)
    b = (a - 1) / t
    w = np.diff(gammainc(a, b * np.concatenate([[0.0], tt])))
    rc, rt, p = radial_parameters(np.array([e_gev]), tt[None, :] / t[:, None])
    rm = MOLIERE_CM * lateral_scale
    x = r_cm / rm
    frac = p * x**2 / (x**2 + rc**2) + (1 - p) * x**2 / (x**2 + rt**2)
    return float((w * frac[0]).sum() / w.sum())


@dataclass
class _Event:
    """Per-event incidence: axis position in each layer's view (cm) and window start cell per layer."""

    axis: np.ndarray  # (n, 18)
    start: np.ndarray  # (n, 18) int
    sec: np.ndarray  # (n,)
    width: int


def incidence(rng, n, width, max_tan=0.3, margin_cm=0.0) -> tuple[dict, _Event]:
    """Impact point uniform over the face; direction with dN/dcos(theta) ~ cos(theta), tan(theta) <= max_tan."""
    half = FACE_HALF_CM - margin_cm
    x0 = rng.uniform(-half, half, n)
    y0 = rng.uniform(-half, half, n)
    cmin = 1.0 / math.sqrt(1.0 + max_tan**2)
    cos_t = np.sqrt(cmin**2 + rng.random(n) * (1 - cmin**2))  # cos^2 uniform <=> dN/dcos ~ cos
    tan_t = np.sqrt(1.0 - cos_t**2) / cos_t
    phi = rng.uniform(0, 2 * np.pi, n)
    dxdz, dydz = tan_t * np.cos(phi), tan_t * np.sin(phi)
    ax = np.where(IS_X[None, :], x0[:, None] + dxdz[:, None] * LAYER_Z[None, :],
                  y0[:, None] + dydz[:, None] * LAYER_Z[None, :])
    cell = np.floor((ax + FACE_HALF_CM) / CELL_PITCH_CM).astype(np.int64)
    start = np.clip(cell - width // 2, 0, N_CELLS - width)
    truth = dict(entry_x=x0, entry_y=y0, dxdz=dxdz, dydz=dydz)
    return truth, _Event(ax, start, 1.0 / cos_t, width)


def _add_em(expected: np.ndarray, ev: _Event, rows: np.ndarray, e_gev: np.ndarray, t_start: np.ndarray,
            t: np.ndarray, a: np.ndarray, lateral_scale: np.ndarray | float, off_slope: np.ndarray | None = None,
            z_start: np.ndarray | None = None) -> np.ndarray:
    """Add the expected deposit (MeV) of one EM-like component per event in ``rows`` to ``expected`` (n, 18, W).

    ``t_start`` is the depth (X0 along the axis) where the component starts; ``off_slope`` (m, 2) its angle to
    the axis (x, y), so its centre moves away from the axis below ``z_start`` (cm). Returns the layer fractions.
    """
    if len(rows) == 0:
        return np.zeros((0, N_LAYERS))
    sec = ev.sec[rows][:, None]
    # (m, 18): diff of gammainc(a, b edges) at the layer edges, one kernel (amsnb.ecal._kernels.component_layers)
    if expected.ndim == 2:  # layer sums only (the energy search of reco-mode protons)
        return component_layers(a, t, t_start, sec[:, 0], _LAYER_EDGES_X0, expected, rows, e_gev)
    lfrac = component_layers(a, t, t_start, sec[:, 0], _LAYER_EDGES_X0)
    tau = np.clip(_LAYER_MID_X0[None, :] * sec - t_start[:, None], 0, None) / t[:, None]
    r_c, r_t, p = radial_parameters(e_gev, tau)
    # projected (1-D) CDF of the 2-D profile R^2/(pi (r^2+R^2)^2) is 1/2 + x / (2 sqrt(x^2 + R^2)), evaluated at
    # every cell edge of the window. Only (event, layer) pairs holding more than MIN_LAYER_MEV are computed (layers
    # above a deep sub-shower's start hold exactly 0): the cost is per cell, and a full layer has 72 cells. One
    # fused pass per (event, layer) (amsnb.ecal._kernels.add_em_component; the NumPy fallback does the same steps
    # on (m, 18) arrays): the radius scale, the centre moved by the slope, the layer energy, the float32 casts.
    add_em_component(expected, rows, ev.start, ev.axis, ev.sec[rows], e_gev, lfrac, r_c, r_t, p,
                     MOLIERE_CM * np.asarray(lateral_scale, dtype=np.float64), off_slope, z_start, _CELL_EDGES,
                     LAYER_Z, IS_X, 0.5 * MIN_LAYER_MEV, _WINDOW_EDGES[: ev.width + 1])
    return lfrac


_WORKSPACE = threading.local()


def _block_zeros(shape) -> np.ndarray:
    """A zeroed float32 array of ``shape`` (a block's expected cell deposits, ~10 MB) in a buffer reused by the
    blocks of this thread: a fresh ``np.zeros`` of that size is a new mapping whose pages fault in on first touch
    (up to 2 ms/MB on a VM, ~3 us per shower), a reused one is only cleared. Valid until the thread's next call."""
    size = math.prod(shape)
    buf = getattr(_WORKSPACE, "expected", None)
    if buf is None or buf.size < size:
        buf = _WORKSPACE.expected = np.zeros(size, np.float32)
    out = buf[:size].reshape(shape)
    out.fill(0)
    return out


def _moyal(rng, shape) -> np.ndarray:
    """Standard Moyal (Landau approximation, mode 0): X = -ln(Z^2), Z ~ N(0, 1)."""
    z = rng.standard_normal(shape, dtype=np.float32)
    return -np.log(np.maximum(z * z, 1e-12))


def cell_readout(rng, expected: np.ndarray, ev: _Event, dom: EcalDomain, gain: np.ndarray,
             mip: tuple[np.ndarray, np.ndarray] | None, img: np.ndarray) -> None:
    """Fluctuate the windowed expectation, add MIP deposits and noise, apply gains, threshold, saturation; write
    every cell of ``img`` (n, 18, 72)."""
    n, _, w = expected.shape
    full = w == N_CELLS  # the window is the whole layer: no index arithmetic needed
    resp = (1 + dom.response_spread * rng.standard_normal(n)).astype(np.float32)
    if full:  # one fused pass per cell (amsnb.ecal._kernels), the same random numbers in the same order
        amp, cell = mip if mip is not None else (None, None)
        readout_cells(rng, expected, resp, amp, cell, gain, bool(dom.gain_spread or dom.n_dead_cells),
                      STOCHASTIC**2 * 1e3, dom.noise_mev**2, dom.threshold_sigma * dom.noise_mev, dom.saturation_mev,
                      img)
        return
    if mip is not None:  # (amplitude, cell) per (event, layer) -> the dense (n, 18, W) deposit
        amp, cell = mip
        mip = np.zeros(expected.shape, np.float32)
        np.put_along_axis(mip, cell[:, :, None], amp[:, :, None], axis=2)
    expected *= resp[:, None, None]
    # in place (the expectation is not needed afterwards): sigma = sqrt(0.104^2 E + noise^2) per cell
    sig = (STOCHASTIC**2 * 1e3) * expected
    sig += np.float32(dom.noise_mev**2)
    np.sqrt(sig, out=sig)
    sig *= rng.standard_normal(expected.shape, dtype=np.float32)
    meas = expected
    meas += sig
    if mip is not None:
        meas += mip
    if dom.gain_spread or dom.n_dead_cells:
        meas *= gain[None] if full else gain[np.arange(N_LAYERS)[None, :, None],
                                             ev.start[:, :, None] + np.arange(w)[None, None, :]]
    thr = dom.threshold_sigma * dom.noise_mev
    meas[meas < thr] = 0.0
    np.minimum(meas, dom.saturation_mev, out=meas)
    if full:
        img[...] = meas
        return
    # the window of each (event, layer) is contiguous: one flat fancy assignment
    img[...] = 0
    base = (np.arange(n)[:, None] * N_LAYERS + np.arange(N_LAYERS)[None, :]) * N_CELLS + ev.start
    flat = img.reshape(-1)
    flat[(base[:, :, None] + np.arange(w)[None, None, :]).ravel()] = meas.ravel()
    # sparse noise hits outside the window: Poisson count, amplitude from the Gaussian tail above threshold
    p_tail = 0.5 * math.erfc(dom.threshold_sigma / math.sqrt(2))
    n_out = N_LAYERS * (N_CELLS - w)
    k = rng.poisson(n_out * p_tail, n)
    tot = int(k.sum())
    if tot:
        ev_i = np.repeat(np.arange(n), k)
        lay = rng.integers(0, N_LAYERS, tot)
        cell = rng.integers(0, N_CELLS, tot)
        amp = -dom.noise_mev * ndtri(rng.random(tot) * p_tail)
        empty = img[ev_i, lay, cell] == 0
        img[ev_i[empty], lay[empty], cell[empty]] = (amp[empty] * gain[lay[empty], cell[empty]]).astype(np.float32)


# ------------------------------------------------------------------------------------------ particles
def electron_showers(rng, n, e_true, dom: EcalDomain, width):
    truth, ev = incidence(rng, n, width)
    t, a = gflash_parameters(rng, e_true)
    t = t + dom.depth_shift_x0
    expected = _block_zeros((n, N_LAYERS, width))
    rows = np.arange(n)
    _add_em(expected, ev, rows, e_true, np.zeros(n), t, a, dom.lateral_scale)
    return expected, ev, truth, None, {"t_max_true": t, "alpha_true": a}


def proton_latents(rng, n, dom: EcalDomain):
    pm = dom.proton
    lead = rng.random(n) < pm.p_leading_pi0
    k = np.where(lead, rng.beta(*pm.leading_inelasticity_beta, n), rng.beta(*pm.inelasticity_beta, n))
    u = np.where(lead, rng.beta(*pm.leading_share_beta, n), rng.beta(*pm.pi0_share_beta, n))
    d_int = rng.exponential(pm.lambda_i_cm, n)  # along the path (cm)
    g = rng.gamma(pm.had_visible_gamma[0], pm.had_visible_gamma[1], n) * np.where(lead, pm.leading_had_visible, 1.0)
    return dict(f_em=k * u, d_int=d_int, g=g, lead=lead)


def visible_fraction(lat, sec, dom: EcalDomain) -> np.ndarray:
    """Predicted visible fraction of a proton from its latent variables (used to choose the primary energy)."""
    path = DEPTH_CM * sec
    inter = lat["d_int"] < path
    t_int = lat["d_int"] / X0_CM
    rem_x0 = np.clip(path / X0_CM - t_int, 0, None)
    c_em = gammainc(6.0, 0.5 * rem_x0)  # containment of a ~1 TeV EM shower (T ~ 10 X0, alpha ~ 6)
    p2 = 1 - np.exp(-np.clip(path - lat["d_int"], 0, None) / dom.proton.lambda_i_cm)
    had = (1 - lat["f_em"]) * np.minimum(1.0, 0.3 + p2) * lat["g"] * dom.hadron_scale
    had = had * gammainc(3.5, 0.5 * np.clip(rem_x0 - HAD_START_X0, 0, None))  # lumps: T ~ 5 X0, a ~ 3.5
    # coefficients from a least-squares fit of the simulated visible energy (sub-showers are softer than 1 TeV,
    # hence better contained); only the efficiency of filling a reconstructed-energy bin depends on them
    return np.where(inter, 1.4 * lat["f_em"] * c_em + 1.1 * had, 0.0)


def proton_draws(rng, lat, ev: _Event, pm: ProtonModel) -> dict:
    """The random numbers of the interacting protons' shower components, which do not depend on the primary energy,
    drawn in the order :func:`proton_showers` uses them: the energy search draws them once and replays the showers at
    its trial energies from them (the same numbers the replay of the random stream gave, without drawing them 3
    times)."""
    path = DEPTH_CM * ev.sec
    inter = lat["d_int"] < path
    rows = np.flatnonzero(inter)
    m = len(rows)
    shares = rng.dirichlet([0.8, 0.8, 0.8], m) if m else np.zeros((0, 3))
    # leading pi0/eta: its two collinear decay photons, energy share uniform in the lab (flat decay spectrum)
    lead = lat["lead"][rows] if "lead" in lat else np.zeros(m, bool)
    z = rng.random(m)
    shares[lead] = np.stack([z, 1 - z, np.zeros(m)], 1)[lead]
    # every random number is drawn for all m rows (fixed count), so a shower can be replayed at another energy
    conv = rng.exponential(PHOTON_CONV_X0, (3, m))
    zz = rng.standard_normal((3, 2, m))
    pt = np.where(lead, 0.0, rng.exponential(pm.pt_gev, (3, m)))  # the leading pi0's photons: collinear at TeV
    phi = rng.uniform(0, 2 * np.pi, (3, m))
    hshares = rng.dirichlet([1.0, 1.0], m) if m else np.zeros((0, 2))
    hstart = rng.exponential(HAD_START_X0, (2, m))
    hz = rng.standard_normal((2, 2, m))
    hslope = rng.normal(0, pm.had_slope_sigma, (2, m, 2))
    hscale = rng.uniform(0.6, 1.4, (2, m))
    return dict(path=path, inter=inter, rows=rows, shares=shares, conv=conv, zz=zz, pt=pt, phi=phi, hshares=hshares,
                hstart=hstart, hz=hz, hslope=hslope, hscale=hscale)


def proton_showers(rng, n, e_true, lat, dom: EcalDomain, width, ev=None, truth=None, layers_only=False, draws=None):
    """Expected proton deposits (n, 18, width) in MeV, or only their layer sums (n, 18) with ``layers_only``;
    ``draws``: the components' random numbers (:func:`proton_draws`), drawn from ``rng`` if not given."""
    pm = dom.proton
    if ev is None:
        truth, ev = incidence(rng, n, width)
    if draws is None:
        draws = proton_draws(rng, lat, ev, pm)
    path, inter, rows = draws["path"], draws["inter"], draws["rows"]
    z_int = np.where(inter, lat["d_int"] / ev.sec, DEPTH_CM + 1.0)  # vertical depth of the interaction
    t_int = lat["d_int"] / X0_CM  # X0 along the axis
    expected = np.zeros((n, N_LAYERS)) if layers_only else _block_zeros((n, N_LAYERS, width))
    # --- pi0 photons: 3 sub-showers with Dirichlet shares, each starting after a conversion length (9/7 X0)
    e_em = e_true[rows] * lat["f_em"][rows]
    shares, conv, zz, pt, phi = draws["shares"], draws["conv"], draws["zz"], draws["pt"], draws["phi"]
    for j in range(3):
        e_j = e_em * shares[:, j]
        keep = e_j > 0.05
        r = rows[keep]
        if not len(r):
            continue
        ej = e_j[keep]
        t, a = gflash_parameters(rng, ej, normals=zz[j][:, keep])
        # the direction only moves the cells (not needed for the layer sums of the energy search)
        slope = None if layers_only else (pt[j][keep] / ej)[:, None] * np.stack([np.cos(phi[j][keep]),
                                                                                   np.sin(phi[j][keep])], 1)
        # after conversion: the e+e- pair's shower, T shortened so that <t_max> = t_int + T_e(E_gamma) + 1 X0 (PDG)
        t_pair = np.maximum(t - (PHOTON_CONV_X0 - PHOTON_DT_MAX_X0), 0.5)
        _add_em(expected, ev, r, ej, t_int[r] + conv[j][keep], t_pair + dom.depth_shift_x0, a, dom.lateral_scale,
                slope, z_int[r])
    # --- hadronic component: 2 broad lumps starting deeper, visible fraction ~ Gamma, grows with remaining depth
    p2 = 1 - np.exp(-np.clip(path - lat["d_int"], 0, None)[rows] / pm.lambda_i_cm)
    e_had = e_true[rows] * (1 - lat["f_em"][rows]) * np.minimum(1.0, 0.3 + p2) * lat["g"][rows] * dom.hadron_scale
    hshares, hstart, hz, hslope, hscale = (draws[k] for k in ("hshares", "hstart", "hz", "hslope", "hscale"))
    for j in range(2):
        e_j = e_had * hshares[:, j]
        keep = e_j > 0.05
        r = rows[keep]
        if not len(r):
            continue
        ej = e_j[keep]
        t, a = gflash_parameters(rng, ej, normals=hz[j][:, keep])
        lat_scale = None if layers_only else dom.lateral_scale * pm.had_lateral_scale * hscale[j][keep]
        _add_em(expected, ev, r, ej, t_int[r] + hstart[j][keep], 0.7 * t + dom.depth_shift_x0,
                np.maximum(0.7 * a, 1.1), lat_scale, None if layers_only else hslope[j][keep], z_int[r])
    if layers_only:  # the random numbers after this point are not needed by the energy search
        return expected, ev, truth, None, {}
    # --- ionisation of the primary (and of the leading particle after the interaction): Moyal per layer
    mip_amp = MIP_MPV_MEV * ev.sec[:, None] * (1 + MIP_WIDTH * _moyal(rng, (n, N_LAYERS)))
    mip_amp = np.clip(mip_amp, 0, None)
    cell = np.floor((ev.axis + FACE_HALF_CM) / CELL_PITCH_CM).astype(np.int64)
    off = np.clip(cell - ev.start, 0, width - 1)
    inside = (cell >= 0) & (cell < N_CELLS)
    mip = ((mip_amp * inside).astype(np.float32), off)  # deposit and its cell (in the window) per (event, layer)
    extras = {"interacted": inter, "z_interaction": np.where(inter, z_int, np.nan), "f_em": lat["f_em"],
              "leading_pi0": lat["lead"], "d_int": lat["d_int"], "g": lat["g"]}
    return expected, ev, truth, mip, extras


def layer_rho(rng, draws, e_gev, lat, dom, width, ev, truth) -> np.ndarray:
    """Expected reconstructed / primary energy of protons at ``e_gev``, replaying their showers from ``draws``."""
    lay = proton_showers(rng, len(e_gev), e_gev, lat, dom, width, ev, truth, layers_only=True, draws=draws)[0]
    return np.maximum(energy_from_layers(lay, ev.sec) / e_gev, 1e-5)


def log_slope(e1, r1, e2, r2, default) -> np.ndarray:
    """d ln R / d ln E from two points (the default where they are too close), clipped to a sane range."""
    dl = np.log(e2 / e1)
    ok = np.abs(dl) > 0.02
    s = np.where(ok, np.log(r2 / r1) / np.where(ok, dl, 1.0), default)
    return np.clip(s, -0.6, 0.3)


# ------------------------------------------------------------------------------------------ tracker, TRD
def tracker_response(rng, n, e_true, charge_sign, particle, dom: EcalDomain):
    """Rigidity (MDR 2 TV + multiple scattering, physics.md §5), charge with a Landau tail, chi2 with a tail."""
    mass = 0.938 if particle == "proton" else 0.000511
    r_true = np.sqrt(e_true * (e_true + 2 * mass))
    bad = rng.random(n) < 0.02  # badly fitted tracks: wider errors and large chi2 (quality-cut tail)
    sig = np.sqrt((1.0 / MDR_GV) ** 2 + (MS_TERM / r_true) ** 2) * np.where(bad, 4.0, 1.0)
    inv = charge_sign / r_true + sig * rng.standard_normal(n)
    inv = np.where(np.abs(inv) < 1e-7, 1e-7, inv)
    rig = 1.0 / inv
    chi2 = rng.chisquare(10, n) / 10 * np.where(bad, rng.uniform(3, 20, n), 1.0)
    # inner-tracker truncated-mean charge: narrow Landau core; ~1.5 % with a large tail (delta rays, overlaps)
    q = 1.0 + 0.04 * (_moyal(rng, n).astype(np.float64) - 1.27)
    tail = rng.random(n) < 0.015
    q = np.where(tail, rng.uniform(1.3, 2.6, n), q)
    return rig, chi2, q


def trd_response(rng, n, e_true, particle, dom: EcalDomain):
    """TRD likelihood proxy: electrons saturated; proton separation d(gamma) = 4.8/(1 + gamma/943) in units of the
    estimator width, reproducing the test-beam rejections 2000 (15 GeV) -> 140 (250 GeV) at 90 % e efficiency
    (physics.md §2; Gaussian latent score, mapped to the AMS-like -ln(L_e/(L_e+L_p)) range)."""
    s = rng.standard_normal(n)
    if particle == "proton":
        gamma = (e_true + 0.938) / 0.938
        s = s + 4.8 / (1.0 + gamma / 943.0)
    return 0.55 + dom.trd_shift + 0.07 * dom.trd_width * s
