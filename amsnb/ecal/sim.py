"""Physics-based fast simulation of electrons and protons in the AMS-02 ECAL, written in the amsnb schema.

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
a classifier could learn). The ``window`` argument of :func:`simulate` still allows a narrower window for
experiments; noise outside it is then drawn sparsely (Poisson number, Gaussian-tail amplitudes). Work is done in
blocks of 2048 events (cache-sized temporaries) written into preallocated output arrays.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.special import gammainc, ndtri

from ..errors import ConfigError
from ..schema import CELL_PITCH_CM, DOMAIN_CODES, ECAL, N_CELLS, N_LAYERS
from ._kernels import add_em_component, component_layers, readout_cells
from .reco import IS_X, LAYER_X0, LAYER_Z, X0_CM, energy_from_layers, reconstruct

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
BLOCK = 2048
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
    # with 10 % a gradient-boosted classifier on the shower shapes passes 0 of 11650 1-2 TeV protons at 90 % (1 at
    # 95 %), i.e. rejection >~ 1e4, the upper end; raising it to 20 % changes little, since photon showers peak
    # ~1 X0 deeper than an electron's, counted from the pi0 production depth (PDG C_gamma - C_e). Re-measured after
    # the full-layer lateral and photon-depth fixes: 4 of 14630 pass at 90 % (3.7e3), docs/simulation.md. Two
    # collinear decay photons, flat energy share.
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


def _power_law(rng, n, lo, hi, index):
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


def _incidence(rng, n, width, max_tan=0.3, margin_cm=0.0) -> tuple[dict, _Event]:
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


def _readout(rng, expected: np.ndarray, ev: _Event, dom: EcalDomain, gain: np.ndarray,
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
def _electrons(rng, n, e_true, dom: EcalDomain, width):
    truth, ev = _incidence(rng, n, width)
    t, a = gflash_parameters(rng, e_true)
    t = t + dom.depth_shift_x0
    expected = _block_zeros((n, N_LAYERS, width))
    rows = np.arange(n)
    _add_em(expected, ev, rows, e_true, np.zeros(n), t, a, dom.lateral_scale)
    return expected, ev, truth, None, {"t_max_true": t, "alpha_true": a}


def _proton_latents(rng, n, dom: EcalDomain):
    pm = dom.proton
    lead = rng.random(n) < pm.p_leading_pi0
    k = np.where(lead, rng.beta(*pm.leading_inelasticity_beta, n), rng.beta(*pm.inelasticity_beta, n))
    u = np.where(lead, rng.beta(*pm.leading_share_beta, n), rng.beta(*pm.pi0_share_beta, n))
    d_int = rng.exponential(pm.lambda_i_cm, n)  # along the path (cm)
    g = rng.gamma(pm.had_visible_gamma[0], pm.had_visible_gamma[1], n) * np.where(lead, pm.leading_had_visible, 1.0)
    return dict(f_em=k * u, d_int=d_int, g=g, lead=lead)


def _visible_fraction(lat, sec, dom: EcalDomain) -> np.ndarray:
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


def _proton_draws(rng, lat, ev: _Event, pm: ProtonModel) -> dict:
    """The random numbers of the interacting protons' shower components, which do not depend on the primary energy,
    drawn in the order :func:`_protons` uses them: the energy search draws them once and replays the showers at its
    trial energies from them (the same numbers the replay of the random stream gave, without drawing them 3 times)."""
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


def _protons(rng, n, e_true, lat, dom: EcalDomain, width, ev=None, truth=None, layers_only=False, draws=None):
    """Expected proton deposits (n, 18, width) in MeV, or only their layer sums (n, 18) with ``layers_only``;
    ``draws``: the components' random numbers (:func:`_proton_draws`), drawn from ``rng`` if not given."""
    pm = dom.proton
    if ev is None:
        truth, ev = _incidence(rng, n, width)
    if draws is None:
        draws = _proton_draws(rng, lat, ev, pm)
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


def _layer_rho(rng, draws, e_gev, lat, dom, width, ev, truth) -> np.ndarray:
    """Expected reconstructed / primary energy of protons at ``e_gev``, replaying their showers from ``draws``."""
    lay = _protons(rng, len(e_gev), e_gev, lat, dom, width, ev, truth, layers_only=True, draws=draws)[0]
    return np.maximum(energy_from_layers(lay, ev.sec) / e_gev, 1e-5)


def _log_slope(e1, r1, e2, r2, default) -> np.ndarray:
    """d ln R / d ln E from two points (the default where they are too close), clipped to a sane range."""
    dl = np.log(e2 / e1)
    ok = np.abs(dl) > 0.02
    s = np.where(ok, np.log(r2 / r1) / np.where(ok, dl, 1.0), default)
    return np.clip(s, -0.6, 0.3)


# ------------------------------------------------------------------------------------------ tracker, TRD
def _tracker(rng, n, e_true, charge_sign, particle, dom: EcalDomain):
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


def _trd(rng, n, e_true, particle, dom: EcalDomain):
    """TRD likelihood proxy: electrons saturated; proton separation d(gamma) = 4.8/(1 + gamma/943) in units of the
    estimator width, reproducing the test-beam rejections 2000 (15 GeV) -> 140 (250 GeV) at 90 % e efficiency
    (physics.md §2; Gaussian latent score, mapped to the AMS-like -ln(L_e/(L_e+L_p)) range)."""
    s = rng.standard_normal(n)
    if particle == "proton":
        gamma = (e_true + 0.938) / 0.938
        s = s + 4.8 / (1.0 + gamma / 943.0)
    return 0.55 + dom.trd_shift + 0.07 * dom.trd_width * s


# ------------------------------------------------------------------------------------------ public API
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
    out = _new_output(n)
    ex = _simulate_into(out, n, particle, domain, seed, energy_range, spectral_index=spectral_index,
                        energy_mode=energy_mode, positron_fraction=positron_fraction, weight_norm=weight_norm,
                        first_event=first_event, run=run, window=window)
    if extras:
        out.update(ex)
    return out


def _new_output(n: int) -> dict[str, np.ndarray]:
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
        e_true, pdf = _power_law(rng, n, lo, hi, spectral_index)
        weight = flux(e_true, "electron") / (norm * pdf)
        expected, ev, truth, mip, ex = _electrons(rng, n, e_true, dom, width)
        sign = np.where(rng.random(n) < positron_fraction, 1.0, -1.0)
        pdg = np.where(sign > 0, -11, 11)
    else:
        truth, ev = _incidence(rng, n, width)
        if energy_mode == "true":
            e_true, pdf = _power_law(rng, n, lo, hi, spectral_index)
            lat = _proton_latents(rng, n, dom)
            weight = flux(e_true, "proton") / (norm * pdf)
        else:
            # draw latents, keeping each with probability a(v) = min(1, (v/V_REF)^(index-1)) (zero below V_MIN): at
            # fixed reconstructed energy the physical density of v is ~ v^(index-1), so the kept protons look like
            # the physical mixture and the weights stay near flat; P(keep) = E[a] enters the weight
            parts, drawn, got = [], 0, 0
            while got < n:
                m = max(4 * (n - got), 512)
                cand = _proton_latents(rng, m, dom)
                vc = _visible_fraction(cand, np.ones(m), dom)
                acc = np.where(vc > V_MIN, np.minimum(1.0, vc / V_REF) ** (PROTON_INDEX - 1), 0.0)
                ok = rng.random(m) < acc
                parts.append(({k: c[ok] for k, c in cand.items()}, vc[ok], acc[ok]))
                drawn += m
                got += int(ok.sum())
            lat = {k: np.concatenate([p[0][k] for p in parts])[:n] for k in parts[0][0]}
            v = np.concatenate([p[1] for p in parts])[:n]
            a_v = np.concatenate([p[2] for p in parts])[:n]
            p_acc = got / drawn
            e_t, pdf_t = _power_law(rng, n, lo, hi, spectral_index)
            e_p0 = e_t / v
        if energy_mode == "true":
            expected, ev, truth, mip, ex = _protons(rng, n, e_true, lat, dom, width, ev, truth)
        else:
            # Find the primary energy E whose expected *reconstructed* energy is E_t: E R(E) = E_t, with R from the
            # shower's layer sums (the data's reconstruction) and the same random numbers replayed at each trial
            # energy (two Newton steps from E0 = E_t / v). The shape is then drawn at E itself and the proposal
            # density of E is g(E_t) |dE_t/dE| h(latents) a(v) / P(keep), with dE_t/dE = R (1 + s), s = dlnR/dlnE.
            # (the components' random numbers are drawn once, then the stream goes on as after the final shower's)
            draws = _proton_draws(rng, lat, ev, dom.proton)
            e_lo, rho_lo = e_p0, _layer_rho(rng, draws, e_p0, lat, dom, width, ev, truth)
            e_hi = e_t / rho_lo
            rho_hi = _layer_rho(rng, draws, e_hi, lat, dom, width, ev, truth)
            slope = _log_slope(e_lo, rho_lo, e_hi, rho_hi, -0.1)
            e_true = np.exp(np.log(e_hi) - (np.log(e_hi * rho_hi / e_t)) / (1 + slope))
            expected, ev, truth, mip, ex = _protons(rng, n, e_true, lat, dom, width, ev, truth, draws=draws)
            rho = np.maximum(energy_from_layers(expected.sum(axis=2, dtype=np.float64), ev.sec) / e_true, 1e-5)
            slope = _log_slope(e_hi, rho_hi, e_true, rho, slope)
            weight = flux(e_true, "proton") * p_acc / (norm * pdf_t * rho * (1 + slope) * a_v)
        sign = np.ones(n)
        pdg = np.full(n, 2212)
    img = out["ecal_edep"]
    _readout(rng, expected, ev, dom, gain, mip, img)
    reco = reconstruct(img, saturation_mev=dom.saturation_mev)
    rig, chi2, q = _tracker(rng, n, e_true, sign, particle, dom)
    values = dict(
        reco,
        run=run,
        event=np.arange(first_event, first_event + n),
        rigidity=rig,
        e_over_r=reco["energy"] / np.abs(rig),
        tracker_charge=q,
        trd_llr=_trd(rng, n, e_true, particle, dom),
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


#: Events per chunk of :func:`simulate_to_root`, :func:`simulate_chunked` and ``amsnb simulate ecal``: chunk ``k``
#: is seeded by ``(seed, k)``, so the chunk size is part of a file's identity. 5k keeps 2 workers evenly busy on
#: 1e5 events (20 chunks; 20k gave 5, the last one simulated alone) and the writer starts after 5k events.
ROOT_CHUNK = 5_000


def simulate_to_root(path: str | Path, n: int, particle: str = "electron", domain: str | EcalDomain = "mc",
                     seed: int = 0, energy_range: tuple[float, float] = (200.0, 2000.0), chunk: int = ROOT_CHUNK,
                     progress: bool = True, workers: int | None = 1, **kwargs) -> Path:
    """Simulate ``n`` events in chunks of ``chunk`` straight into a ROOT file (bounded memory, ``.part`` until done).

    Chunk ``k`` uses the seed ``(seed, k)``, so a file is reproducible and independent of the chunk it is read in,
    and of ``workers``: chunks are simulated by that many processes (``None`` or 0: one per core) and written in
    order, so the file holds the same events whatever the number of workers.
    """
    tasks = _root_tasks(n, particle, domain, seed, energy_range, chunk, kwargs)
    return _chunks_to_root(Path(path), _root_chunk, tasks, int(n), progress, workers)


def simulate_chunked(n: int, particle: str = "electron", domain: str | EcalDomain = "mc", seed: int = 0,
                     energy_range: tuple[float, float] = (200.0, 2000.0), chunk: int = ROOT_CHUNK,
                     workers: int | None = 1, **kwargs) -> dict[str, np.ndarray]:
    """The events :func:`simulate_to_root` writes for the same arguments, as arrays, simulated by ``workers``
    processes (``None``/0: one per core). Chunk ``k`` is seeded by ``(seed, k)``, so the events do not depend on
    ``workers``. Forked workers write straight into one shared output buffer (nothing is pickled back); ``kwargs``
    are those of :func:`simulate` (``extras=True`` adds the ``truth_*`` arrays)."""
    import multiprocessing as mp

    extras = bool(kwargs.pop("extras", False))
    tasks = _root_tasks(n, particle, domain, seed, energy_range, chunk, kwargs)
    n = int(n)
    nw = n_workers(workers, len(tasks))
    fork = "fork" in mp.get_all_start_methods()
    out = _shared_output(n) if nw > 1 and fork else _new_output(n)
    starts = [t[6] for t in tasks]
    if nw == 1:
        parts = [_root_chunk(*t, out={k: v[a:a + t[0]] for k, v in out.items()}) for a, t in zip(starts, tasks)]
    elif fork:
        key = id(out)
        _SHARED[key] = out
        try:
            parts = list(_pool_map(nw, _chunk_into, [(key, t) for t in tasks]))
        finally:
            del _SHARED[key]
    else:  # spawn (no fork): results come back pickled
        parts = []
        pickled = [(*t[:8], {**t[8], "extras": extras}) for t in tasks]
        for a, arr in zip(starts, _pool_map(nw, _root_chunk, pickled)):
            for k, v in out.items():
                v[a:a + len(arr["event"])] = arr[k]
            parts.append({k: v for k, v in arr.items() if k not in out})
    if extras:
        out.update({k: np.concatenate([p[k] for p in parts]) for k in (parts[0] if parts else {})})
    return out


def _root_tasks(n, particle, domain, seed, energy_range, chunk, kwargs) -> list:
    _check_args(n, particle, energy_range, kwargs.get("energy_mode", "reco"))
    n, chunk = int(n), int(chunk)
    if chunk < 1:
        raise ConfigError(f"chunk={chunk}: events per chunk must be >= 1")
    return [(min(chunk, n - start), particle, domain, [int(seed), k], energy_range, n, start, int(seed), kwargs)
            for k, start in enumerate(range(0, max(n, 1), chunk))]


def _root_chunk(m, particle, domain, seed, energy_range, n, start, run, kwargs, out=None) -> dict:
    """One chunk of :func:`simulate_to_root`: returns its arrays, or with ``out`` (views of m rows) fills them
    and returns only the MC-truth extras."""
    if out is None:
        return simulate(m, particle, domain, seed=seed, energy_range=energy_range, weight_norm=n, first_event=start,
                        run=run, **kwargs)
    kw = {k: v for k, v in kwargs.items() if k != "extras"}
    return _simulate_into(out, m, particle, domain, seed, energy_range, weight_norm=n, first_event=start, run=run,
                          **kw)


#: Output buffers that forked worker processes write into, by key (set in the parent before the workers fork).
_SHARED: dict[int, dict[str, np.ndarray]] = {}


def _shared_output(n: int, slots: int | None = None) -> dict[str, np.ndarray]:
    """ECAL branch arrays (n, ...) -- or (slots, n, ...) -- in one anonymous shared mapping: what a forked worker
    writes there, the parent sees without a copy (zero-filled; the arrays keep the mapping alive)."""
    import mmap

    lead = (n,) if slots is None else (slots, n)
    layout, size = [], 0
    for b in ECAL.branches:
        shape = lead + tuple(b.shape)
        size = -(-size // 64) * 64  # 64-byte aligned arrays
        layout.append((b.name, shape, size))
        size += int(np.prod(shape)) * np.dtype(b.np_dtype).itemsize
    buf = mmap.mmap(-1, max(size, 1))
    dtypes = {b.name: np.dtype(b.np_dtype) for b in ECAL.branches}
    return {name: np.frombuffer(buf, dtypes[name], int(np.prod(shape)), off).reshape(shape)
            for name, shape, off in layout}


def _chunk_into(key, task) -> dict:
    """Worker: simulate a :func:`simulate_to_root` chunk into its rows of the shared output ``_SHARED[key]``."""
    m, start = task[0], task[6]
    return _root_chunk(*task, out={k: v[start:start + m] for k, v in _SHARED[key].items()})


def _chunk_to_slot(key, slot, fn, task) -> tuple[int, dict]:
    """Worker: ``fn(*task)`` copied into slot ``slot`` of the shared buffers ``_SHARED[key]``; returns the number of
    events and the arrays that are not ECAL branches (pickled back). A :func:`simulate_to_root` chunk is simulated
    straight into the slot (the same events: :func:`_simulate_into` writes every branch), which saves its copy and a
    fresh chunk-sized output (26 MB per 5k events, whose pages fault in on first touch)."""
    buf = _SHARED[key]
    if fn is _root_chunk:
        m, kwargs = int(task[0]), task[-1]  # _root_chunk's first and last arguments: events, simulate's keywords
        ex = _root_chunk(*task, out={k: v[slot, :m] for k, v in buf.items()})
        return m, (ex if kwargs.get("extras") else {})
    arr = fn(*task)
    m = len(arr["event"])
    for k, v in buf.items():
        v[slot, :m] = arr[k]
    return m, {k: v for k, v in arr.items() if k not in buf}


def _pool_map(nw: int, fn, args: list):
    """``fn(*a)`` for each ``a`` in order from ``nw`` worker processes (forked on POSIX, so nothing is re-imported),
    at most 2 tasks per worker in flight (bounded memory); yields the results in order."""
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(nw, mp_context=ctx, initializer=_worker_malloc) as pool:
        todo, running = iter(args), deque()
        for a in todo:
            running.append(pool.submit(fn, *a))
            if len(running) >= 2 * nw:
                break
        while running:
            res = running.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                running.append(pool.submit(fn, *nxt))
            yield res


def _worker_malloc() -> None:
    """In a worker process: keep freed memory in the heap instead of returning it to the kernel (glibc ``mallopt``).
    A block's (events, 18, 72) temporaries are megabytes, which glibc maps and unmaps (or trims) on every allocation
    by default, and touching fresh pages costs up to 2 ms/MB on a VM: ~3-10 us of system time per proton. Speed
    only (no number changes); the workers are ours, so the user's process keeps its allocator settings."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum: blocks of < 32 MB come from the heap
    mallopt(m_trim_threshold, 512 << 20)
    mallopt(m_top_pad, 64 << 20)


def n_workers(workers: int | None, n_tasks: int) -> int:
    """Processes to use: ``workers`` (``None``/0: the cores this process may use), at most one per task."""
    import os

    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(int(workers), n_tasks))


def _chunks_to_root(path: Path, fn, tasks: list, total: int, progress: bool, workers: int | None) -> Path:
    """Write ``fn(*task)`` for each task, in task order, to one ROOT file; tasks run in ``workers`` processes. Forked
    workers copy each chunk into one of 2 x workers + 1 reusable slots of a shared buffer and the parent writes
    from there (no pickling of the images); a slot is reused only after the parent wrote it."""
    import multiprocessing as mp

    from ..io import TreeWriter

    nw = n_workers(workers, len(tasks))
    with TreeWriter(path) as w, _bar(total, path.name, progress) as bar:
        if nw == 1:
            for t in tasks:
                _extend(w, fn(*t), bar)
            return path
        if "fork" not in mp.get_all_start_methods():
            for arr in _pool_map(nw, fn, tasks):
                _extend(w, arr, bar)
            return path
        n_slots = min(2 * nw + 1, len(tasks))  # in flight: at most 2 x nw, plus the one being written
        cap = max(_chunk_events(fn, t) for t in tasks)
        buf = _shared_output(cap, slots=n_slots)
        key = id(buf)
        _SHARED[key] = buf
        try:
            jobs = [(key, i % n_slots, fn, t) for i, t in enumerate(tasks)]
            for i, (m, rest) in enumerate(_pool_map(nw, _chunk_to_slot, jobs)):
                _extend(w, {**{k: v[i % n_slots, :m] for k, v in buf.items()}, **rest}, bar)
        finally:
            del _SHARED[key]
    return path


def _chunk_events(fn, task) -> int:
    """Events a chunk task of ``fn`` returns (the size of a shared slot)."""
    if fn is _set_chunk:
        _, n_e, n_p, _, _, k, n_chunks = task
        return (n_e * (k + 1) // n_chunks - n_e * k // n_chunks) + (n_p * (k + 1) // n_chunks - n_p * k // n_chunks)
    return int(task[0])


#: Events per ROOT basket written by the simulation: an (18, 72) float32 image basket of 3000 events is 15.6 MB,
#: under the 2^24-byte block of ROOT compression; uproot splits a larger basket by re-slicing the remaining bytes
#: (quadratic copying), so 20k-event baskets wrote 24k showers/s and 3000-event ones 100k/s (same file content).
WRITE_BASKET = 3000


def _extend(w, arr: dict, bar) -> None:
    n = len(arr["event"])
    for s in range(0, max(n, 1), WRITE_BASKET):
        w.extend({k: v[s:s + WRITE_BASKET] for k, v in arr.items()})
    bar.update(n)


def _bar(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ev", disable=not enabled, leave=False)


# ------------------------------------------------------------------------------------------ Table 1
@dataclass(frozen=True)
class SetSpec:
    """One raw Table-1 sample (seed 000): events per class at scale 1, domain, reconstructed-energy range."""

    name: str
    domain: str
    n_electron: float
    n_proton: float
    energy_range: tuple[float, float]
    labeled: bool = True
    iss_sized: bool = False


#: Seed 000 Table 1, generated ~5-10 % wider than the final ranges (the cuts of notebook 02 select). The labeled
#: ISS-like sets are sized by ``iss_scale`` (1e6 protons and 1e5 electrons at iss_scale = 1) instead of the seed's
#: ~800 p / ~10 e, so rejections of 1e3-1e4 can be measured; the unlabeled target has 20 % electrons by count and,
#: like flight data, no truth (label/pdg -1, true_energy 0) and unit weights.
TABLE1 = (
    SetSpec("mc_low", "mc", 3.5e6, 2.0e6, (180.0, 1100.0)),
    SetSpec("mc_high", "mc", 1.2e6, 2.6e6, (900.0, 2200.0)),
    SetSpec("iss_val", "iss", 1e5, 1e6, (900.0, 2200.0), iss_sized=True),
    SetSpec("iss_test", "iss", 1e5, 1e6, (900.0, 2200.0), iss_sized=True),
    SetSpec("iss_target", "iss", 0.4e5, 1.6e5, (180.0, 2200.0), labeled=False),
)


def _shuffle_merge(a: dict, b: dict, rng) -> dict:
    out = {k: np.concatenate([a[k], b[k]]) for k in a}
    perm = rng.permutation(len(out["event"]))
    return {k: v[perm] for k, v in out.items()}


def generator_digest() -> str:
    """A digest of the simulation and reconstruction code: a raw file is reused only if the same code made it
    (a changed domain knob, proton model or reconstruction regenerates the samples instead of reusing stale ones)."""
    import hashlib

    from . import _kernels
    from . import reco as ecalreco

    h = hashlib.sha1()
    for source in (Path(__file__), Path(_kernels.__file__), Path(ecalreco.__file__)):
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


def write_set(path: str | Path, spec: SetSpec, n_e: int, n_p: int, seed: int, set_index: int,
              chunk: int = 20_000, progress: bool = True, workers: int | None = 1) -> Path:
    """Write one set: electrons and protons interleaved chunk by chunk (each chunk seeded by (seed, set, k)), the
    chunks simulated by ``workers`` processes (the file is the same whatever their number)."""
    total = n_e + n_p
    n_chunks = max(1, math.ceil(total / chunk))
    tasks = [(spec, n_e, n_p, seed, set_index, k, n_chunks) for k in range(n_chunks)]
    return _chunks_to_root(Path(path), _set_chunk, tasks, total, progress, workers)


def _set_chunk(spec: SetSpec, n_e: int, n_p: int, seed: int, set_index: int, k: int, n_chunks: int) -> dict:
    ke = n_e * (k + 1) // n_chunks - n_e * k // n_chunks
    kp = n_p * (k + 1) // n_chunks - n_p * k // n_chunks
    first = n_e * k // n_chunks + n_p * k // n_chunks
    common = dict(domain=spec.domain, energy_range=spec.energy_range, run=seed * 10 + set_index)
    e = simulate(ke, "electron", seed=[seed, set_index, k, 0], weight_norm=max(n_e, 1), first_event=first, **common)
    p = simulate(kp, "proton", seed=[seed, set_index, k, 1], weight_norm=max(n_p, 1), first_event=first + ke,
                 **common)
    arr = _shuffle_merge(e, p, np.random.default_rng([seed, set_index, k, 2]))
    if not spec.labeled:  # like flight data: no truth, and no flux weight (it would reveal the class)
        arr["label"][:] = -1
        arr["pdg"][:] = -1
        arr["true_energy"][:] = 0
        arr["weight"][:] = 1
    return arr


#: The MC test set as a raw sample of its own (1-2 TeV like mc_high, a new seed stream), made when ``test_protons``
#: is given; otherwise notebook 02 splits mc_test off mc_high (amsnb.ecal.datasets).
TEST_SAMPLE = SetSpec("mc_test", "mc", 0, 0, (900.0, 2200.0))
#: Electrons per proton in the enlarged test samples: protons set the rejection's statistics; 1 electron in 10 still
#: fixes the 90 % threshold to a few per mille.
TEST_ELECTRON_FRACTION = 0.1


def table1_sizes(scale: float, iss_scale: float, test_protons: int | None = None,
                 target_events: int | None = None) -> dict[str, tuple[int, int]]:
    """Events (electrons, protons) per raw sample for the given scale factors; with ``test_protons`` the test
    samples ``mc_test`` (its own) and ``iss_test`` hold that many protons and a tenth as many electrons, so the
    1-2 TeV rejections of the best classifiers are measured from passing protons rather than bounded.
    ``target_events``: the unlabeled ``iss_target`` holds that many raw events (Table 1's electron share), e.g. the
    seed's 2e5 at any ``scale``: the DANN target costs simulation only, and a small one is cycled many times per
    epoch."""
    sizes = {}
    for s in TABLE1:
        f = iss_scale if s.iss_sized else scale
        sizes[s.name] = (max(1, round(s.n_electron * f)), max(1, round(s.n_proton * f)))
    if test_protons:
        n = (max(1, round(test_protons * TEST_ELECTRON_FRACTION)), int(test_protons))
        sizes["iss_test"] = n
        sizes[TEST_SAMPLE.name] = n
    if target_events:
        spec = next(s for s in TABLE1 if s.name == "iss_target")
        n_e = round(int(target_events) * spec.n_electron / (spec.n_electron + spec.n_proton))
        sizes["iss_target"] = (max(1, n_e), max(1, int(target_events) - n_e))
    return sizes


def generate_table1(outdir: str | Path, scale: float = 1.0, seed: int = 1, iss_scale: float = 1.0,
                    progress: bool = True, chunk: int = 20_000, fresh: bool = False,
                    workers: int | None = None, test_protons: int | None = None,
                    target_events: int | None = None) -> dict[str, Path]:
    """The five raw samples of seed 000 Table 1 as ROOT files in ``outdir`` (``<set>.root``); resumable per set.

    ``test_protons``: also a raw ``mc_test`` sample, and ``iss_test`` resized, with that many protons each;
    ``target_events``: the raw size of ``iss_target`` (:func:`table1_sizes`).

    Each file is an artefact of :mod:`amsnb.provenance`: reused only if the same generator code made it with the
    same sizes, seed and chunking; an interrupted or different one is simulated again (one line says why).
    ``workers`` processes simulate the chunks (``None``/0: one per core); the files do not depend on it.
    A ``table1.json`` beside them describes the sizes, seed and domains.
    """
    import json

    from .. import provenance

    if scale <= 0 or iss_scale <= 0:
        raise ConfigError(f"scale={scale}, iss_scale={iss_scale}: both must be > 0 (1.0 = the seed's Table 1)")
    outdir = Path(outdir)
    if test_protons is not None and test_protons <= 0:
        raise ConfigError(f"test_protons={test_protons}: give a positive number of protons, or None to split "
                          "mc_test off mc_high")
    if target_events is not None and target_events <= 0:
        raise ConfigError(f"target_events={target_events}: give a positive number of raw iss_target events, or "
                          "None for Table 1's size at this scale")
    sizes = table1_sizes(scale, iss_scale, test_protons, target_events)
    specs = TABLE1 + ((TEST_SAMPLE,) if test_protons else ())
    out = {}
    for i, spec in enumerate(specs):
        path = outdir / f"{spec.name}.root"
        n_e, n_p = sizes[spec.name]
        stamp = provenance.Stamp("amsnb.ecal.sim.table1", generator_digest(),
                                 {"set": spec.name, "seed": seed, "set_index": i, "electrons": n_e, "protons": n_p,
                                  "chunk": chunk})
        provenance.ensure(path, stamp, lambda p, spec=spec, n_e=n_e, n_p=n_p, i=i:
                          write_set(p, spec, n_e, n_p, seed, i, chunk, progress, workers),
                          fresh=fresh, label=f"data/ecal/{path.name}", verb="simulating")
        out[spec.name] = path
    meta = {"seed": seed, "scale": scale, "iss_scale": iss_scale, "test_protons": test_protons,
            "target_events": target_events,
            "sets": {s.name: {"electrons": sizes[s.name][0], "protons": sizes[s.name][1], "domain": s.domain,
                              "energy_range_gev": list(s.energy_range), "labeled": s.labeled} for s in specs},
            "domains": {k: {kk: vv for kk, vv in asdict(v).items() if kk != "proton"} for k, v in DOMAINS.items()}}
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "table1.json").write_text(json.dumps(meta, indent=2))
    return out


# ------------------------------------------------------------------------------------------ CLI
def cli_main(argv: list[str] | None = None) -> int:
    """``amsnb simulate ecal --preset table1|electrons|protons|mixed --n N --domain mc|iss --seed S --out FILE``."""
    from ..cliargs import ArgumentParser, nonnegative_int, positive_float, positive_int

    ap = ArgumentParser(prog="amsnb simulate ecal", description="simulate AMS-02 ECAL showers to ROOT")
    ap.add_argument("--preset", default="mixed", choices=["table1", "electrons", "protons", "mixed"],
                    help="what to simulate (table1: the five raw sets of seed 000's Table 1)")
    ap.add_argument("--n", type=positive_int, default=10_000, help="events (mixed: half electrons, half protons)")
    ap.add_argument("--domain", default="mc", choices=["mc", "iss"], help="simulation (mc) or ISS-like detector")
    ap.add_argument("--seed", type=nonnegative_int, default=1, help="random seed")
    ap.add_argument("--out", required=True, help="output ROOT file (table1: output folder)")
    ap.add_argument("--scale", type=positive_float, default=0.001, help="table1: fraction of the seed's Table 1 sizes")
    ap.add_argument("--iss-scale", type=positive_float, default=None, help="table1: ISS-set scale (default = --scale)")
    ap.add_argument("--emin", type=positive_float, default=200.0, help="reconstructed energy range low edge, GeV")
    ap.add_argument("--emax", type=positive_float, default=2000.0, help="reconstructed energy range high edge, GeV")
    ap.add_argument("--workers", type=nonnegative_int, default=0,
                    help="processes simulating chunks (0: one per core); the output does not depend on it")
    args = ap.parse_args(argv)
    if args.emin >= args.emax:
        ap.error(f"--emin {args.emin:g} must be below --emax {args.emax:g}")
    if args.preset == "table1":
        paths = generate_table1(args.out, args.scale, args.seed, args.iss_scale or args.scale,
                                workers=args.workers)
        for name, p in paths.items():
            print(f"{name}: {p}")
        return 0
    rng_range = (args.emin, args.emax)
    if args.preset in ("electrons", "protons"):
        simulate_to_root(args.out, args.n, args.preset[:-1], args.domain, args.seed, rng_range,
                         workers=args.workers)
    else:
        spec = SetSpec("mixed", args.domain, 0, 0, rng_range)
        write_set(args.out, spec, args.n // 2, args.n - args.n // 2, args.seed, 0, chunk=ROOT_CHUNK,
                  workers=args.workers)
    print(args.out)
    return 0


__all__ = ["EcalDomain", "ProtonModel", "DOMAINS", "simulate", "simulate_to_root", "simulate_chunked",
           "generate_table1", "cli_main", "flux", "p_over_e", "radial_containment", "gflash_parameters", "table1_sizes",
           "replace"]
