"""Shower reconstruction from ECAL cell images: energy, shower axis and the standard shower-shape variables.

Everything works on any stack of ``(n, 18, 72)`` cell images in MeV (layer-major, layer 0 on top, the view of
each layer in :data:`amsnb.schema.LAYER_VIEW`), so a user's own images are reconstructed exactly like the
simulation's. Cell moments are matrix products, the longitudinal fit is a template grid search (one matrix
product); the argmax over the template grid and the per-layer cell look-ups (core, E1/E3, E3/E5, hit and saturated
cells) are numba kernels (``amsnb.ecal._kernels``: one pass per event in cache, bit for bit the NumPy fallback, which
runs without numba or with ``AMSNB_NO_NUMBA=1``), so ~10^5 showers reconstruct in well under a second.

Geometry and the correction forms follow ``docs/physics.md`` §1 (AMS ``AMSEcalShower``): the rear-leak
correction ``E = k E_raw / (1 - c f_last)`` and the high-energy ADC-overflow correction. Their constants are
calibrated on amsnb's own electron simulation (see ``docs/simulation.md``), as AMS calibrates them on its MC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammainc

from ..errors import SchemaError
from ..schema import CELL_PITCH_CM, LAYER_VIEW, N_CELLS, N_LAYERS
from ._kernels import cell_ratios, template_search

#: Depth of one readout layer (half a 1.85 cm superlayer, physics.md §1), and the composite X0 (physics.md §1 [D]).
LAYER_THICKNESS_CM = 16.65 / N_LAYERS
X0_CM = 0.96
LAYER_X0 = LAYER_THICKNESS_CM / X0_CM
#: Cell centres in cm across the 64.8 cm face (cell 0 at the -x/-y edge).
CELL_CENTRES = (np.arange(N_CELLS) + 0.5) * CELL_PITCH_CM - N_CELLS * CELL_PITCH_CM / 2
#: Depth of each layer's centre below the front face, cm.
LAYER_Z = (np.arange(N_LAYERS) + 0.5) * LAYER_THICKNESS_CM
IS_X = np.array([v == "x" for v in LAYER_VIEW])


@dataclass(frozen=True)
class EnergyCalibration:
    """Constants of the energy reconstruction (physics.md §1 "Rear-leak correction", "TeV saturation").

    ``E = w_rear * E_rear + (1 - w_rear) * E_fit``: ``E_rear = k E_raw / (1 - c f_last)`` (AMS SimpleRearLeak form,
    ``k`` converts MeV to GeV with the lateral-leak scale) and ``E_fit`` = E_raw / (Gamma-fit containment). ``k`` and
    ``c`` were fitted on amsnb MC electrons 20 GeV-2 TeV away from the edges (docs/simulation.md); the AMS MC/flight
    values are c = 3.1/3.6, i.e. the same physics.
    """

    k: float = 0.983e-3
    k_low: float = 0.983e-3
    c: float = 3.5
    f_last_min: float = 0.015
    w_rear: float = 0.5
    overflow_threshold_gev: float = 1650.0
    overflow_factor: float = 0.225


CALIBRATION = EnergyCalibration()

#: Template grid of the longitudinal Gamma fit: depth of maximum T (X0) and shape a.
_T_GRID = np.arange(0.5, 22.0, 0.5)
_A_GRID = np.exp(np.linspace(np.log(1.2), np.log(14.0), 24))


def _templates() -> np.ndarray:
    """Fraction of a Gamma(a, b=(a-1)/T) profile in each layer (vertical incidence), shape (18, nT*nA)."""
    edges = np.arange(N_LAYERS + 1) * LAYER_X0
    t, a = np.meshgrid(_T_GRID, _A_GRID, indexing="ij")
    t, a = t.ravel(), a.ravel()
    b = (a - 1.0) / t
    cdf = gammainc(a[None, :], b[None, :] * edges[:, None])
    return np.diff(cdf, axis=0)


_TEMPL = _templates()
_TEMPL_F32 = _TEMPL.astype(np.float32)
_INV_NORM2_F32 = (1.0 / (_TEMPL**2).sum(axis=0)).astype(np.float32)


def check_images(images: np.ndarray, where: str = "ecal_edep") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == N_LAYERS * N_CELLS:
        images = images.reshape(-1, N_LAYERS, N_CELLS)
    if images.ndim != 3 or images.shape[1:] != (N_LAYERS, N_CELLS):
        raise SchemaError(f"{where}: ECAL images must have shape (n, {N_LAYERS}, {N_CELLS}) in MeV, got "
                          f"{images.shape}; reshape layer-major (layer 0 on top) before reconstructing")
    return images.astype(np.float32, copy=False)


def shower_axis(images: np.ndarray, layer_sum: np.ndarray, m1: np.ndarray) -> dict[str, np.ndarray]:
    """Straight-line fit of the per-layer centre of gravity in each view (energy-weighted least squares)."""
    cog = np.divide(m1, layer_sum, out=np.zeros_like(m1), where=layer_sum > 0)
    out = {}
    for view, sel in (("x", IS_X), ("y", ~IS_X)):
        w = np.sqrt(np.clip(layer_sum[:, sel], 0, None))  # sqrt(E): cog error ~ 1/sqrt(E)
        z = LAYER_Z[sel][None, :]
        c = cog[:, sel]
        sw = w.sum(1)
        sw_safe = np.where(sw > 0, sw, 1.0)
        zm = (w * z).sum(1) / sw_safe
        cm = (w * c).sum(1) / sw_safe
        szz = (w * (z - zm[:, None]) ** 2).sum(1)
        szc = (w * (z - zm[:, None]) * (c - cm[:, None])).sum(1)
        n_used = (w > 0).sum(1)
        slope = np.where((szz > 0) & (n_used >= 3), szc / np.where(szz > 0, szz, 1.0), 0.0)
        out[f"d{view}dz"] = slope.astype(np.float32)
        out[f"entry_{view}"] = (cm - slope * zm).astype(np.float32)
    return out


def fit_longitudinal(layer_frac: np.ndarray, sec_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth of maximum (X0 along the axis) and Gamma shape a, from a least-squares template grid search.

    The template fractions are not renormalised over the 18 layers, so leaked showers fit their true depth.
    With a free normalisation, chi2 = |p|^2 - (p.g)^2/|g|^2, so the best template maximises (p.g)^2/|g|^2; a
    parabola through the neighbouring T values refines the depth below the 0.5 X0 grid step. The third output
    is the fitted normalisation (total / observed energy): the inverse longitudinal containment.
    """
    nt, na = len(_T_GRID), len(_A_GRID)
    # best template and its neighbours' scores: a fused numba kernel, or the (n, grid) NumPy matrix product
    best, v = template_search(layer_frac, _TEMPL_F32, _INV_NORM2_F32, na)
    it, ia = np.divmod(best, na)
    c, lft, rgt = v[:, 0], v[:, 1], v[:, 2]
    den = lft - 2 * c + rgt
    shift = np.where((it > 0) & (it < nt - 1) & (den < 0), 0.5 * (lft - rgt) / np.where(den < 0, den, -1), 0.0)
    tmax = (_T_GRID[it] + np.clip(shift, -0.5, 0.5) * (_T_GRID[1] - _T_GRID[0])) * sec_theta
    lft, rgt = v[:, 3], v[:, 4]
    den = lft - 2 * c + rgt
    sa = np.where((ia > 0) & (ia < na - 1) & (den < 0), 0.5 * (lft - rgt) / np.where(den < 0, den, -1), 0.0)
    log_step = np.log(_A_GRID[1] / _A_GRID[0])
    alpha = _A_GRID[ia] * np.exp(np.clip(sa, -0.5, 0.5) * log_step)  # the a grid is log-spaced
    norm = v[:, 5] * _INV_NORM2_F32[best]
    return tmax.astype(np.float32), alpha.astype(np.float32), norm.astype(np.float64)


def _energy(total_mev, f_last, fit_norm, cal: EnergyCalibration) -> np.ndarray:
    """Mean of the AMS rear-leak form (physics.md §1 SimpleRearLeak) and the Gamma-fit containment correction:
    their leakage errors are only partly correlated, so the mean resolves better than either."""
    e_leak = np.where(f_last > cal.f_last_min, cal.k * total_mev / np.clip(1 - cal.c * f_last, 0.2, None),
                      cal.k_low * total_mev)
    e_fit = 1e-3 * total_mev * np.clip(fit_norm, 1.0, 3.0)
    return cal.w_rear * e_leak + (1 - cal.w_rear) * e_fit


def energy_from_layers(layer_sum_mev: np.ndarray, sec_theta: np.ndarray,
                       calibration: EnergyCalibration = CALIBRATION) -> np.ndarray:
    """Reconstructed energy (GeV) from the 18 layer sums alone (it needs nothing else: homogeneous of degree 1)."""
    total = layer_sum_mev.sum(1)
    frac = layer_sum_mev / np.where(total > 0, total, 1.0)[:, None]
    _, _, fit_norm = fit_longitudinal(frac, sec_theta)
    return _energy(total, frac[:, -1], fit_norm, calibration)


def reconstruct(images: np.ndarray, calibration: EnergyCalibration = CALIBRATION,
                saturation_mev: float | None = None) -> dict[str, np.ndarray]:
    """All reconstructed ECAL branches of the schema that come from the cell image.

    Returns energy, energy_raw, entry_x/y, dxdz/dydz, shower_max, shower_alpha, lateral_rms, layer_frac, layer_rms,
    f_front, f_rear, f_core, s1_s3, s3_s5, n_hit_cells, n_saturated (cells within 0.1 % of ``saturation_mev``).
    """
    img = check_images(images)
    n = len(img)
    flat = img.reshape(n * N_LAYERS, N_CELLS)
    basis = np.stack([np.ones(N_CELLS), CELL_CENTRES, CELL_CENTRES**2], axis=1).astype(np.float32)
    mom = (flat @ basis).astype(np.float64).reshape(n, N_LAYERS, 3)
    s0, s1, s2 = mom[..., 0], mom[..., 1], mom[..., 2]
    total = s0.sum(1)
    tot_safe = np.where(total > 0, total, 1.0)
    out = shower_axis(img, s0, s1)
    # axis position in each layer, in that layer's view
    ax_x = out["entry_x"][:, None] + out["dxdz"][:, None] * LAYER_Z[None, :]
    ax_y = out["entry_y"][:, None] + out["dydz"][:, None] * LAYER_Z[None, :]
    axis = np.where(IS_X[None, :], ax_x, ax_y)
    var = s2 - 2 * axis * s1 + axis**2 * s0  # sum E (x - axis)^2 per layer
    var = np.clip(var, 0, None)
    layer_rms = np.sqrt(np.divide(var, s0, out=np.zeros_like(var), where=s0 > 0))
    lateral_rms = np.sqrt(var.sum(1) / tot_safe)
    layer_frac = s0 / tot_safe[:, None]
    sec = np.sqrt(1 + out["dxdz"].astype(np.float64) ** 2 + out["dydz"].astype(np.float64) ** 2)
    tmax, alpha, fit_norm = fit_longitudinal(layer_frac, sec)
    # core fraction (3 cells centred on the axis cell of each layer), max-cell ratios per layer (energy-weighted over
    # layers below) and the hit and saturated cell counts: one pass over the images (amsnb.ecal._kernels.cell_ratios)
    axis_cell = np.floor((axis - CELL_CENTRES[0]) / CELL_PITCH_CM + 0.5).astype(np.int64)
    if saturation_mev is not None:
        thr = 0.999 * saturation_mev
        thr = float(np.result_type(img.dtype, thr).type(thr))  # the precision NumPy's ``img >= thr`` compares in
    else:
        thr = np.inf
    core, r13, r35, n_hit, n_sat = cell_ratios(img, axis_cell, thr)
    e_raw = total * 1e-3
    e_cor = _energy(total, layer_frac[:, -1], fit_norm, calibration)
    cal = calibration
    if saturation_mev is None:
        n_sat = np.zeros(n, dtype=np.int64)
    x = cal.overflow_factor * e_cor / cal.overflow_threshold_gev
    over = (n_sat > 0) & (e_cor > cal.overflow_threshold_gev)
    e_cor = np.where(over, e_cor * (1 - cal.overflow_factor) / np.clip(1 - x, 0.05, None), e_cor)
    out.update(
        energy=e_cor.astype(np.float32),
        energy_raw=e_raw.astype(np.float32),
        shower_max=tmax,
        shower_alpha=alpha,
        lateral_rms=lateral_rms.astype(np.float32),
        layer_frac=layer_frac.astype(np.float32),
        layer_rms=layer_rms.astype(np.float32),
        f_front=layer_frac[:, :2].sum(1).astype(np.float32),
        f_rear=layer_frac[:, -2:].sum(1).astype(np.float32),
        f_core=(core.sum(1) / tot_safe).astype(np.float32),
        s1_s3=((r13 * s0).sum(1) / tot_safe).astype(np.float32),
        s3_s5=((r35 * s0).sum(1) / tot_safe).astype(np.float32),
        n_hit_cells=n_hit.astype(np.int32),
        n_saturated=n_sat.astype(np.int32),
    )
    return out


#: Branch names :func:`reconstruct` fills.
RECO_BRANCHES = ("energy", "energy_raw", "entry_x", "entry_y", "dxdz", "dydz", "shower_max", "shower_alpha",
                 "lateral_rms", "layer_frac", "layer_rms", "f_front", "f_rear", "f_core", "s1_s3", "s3_s5",
                 "n_hit_cells", "n_saturated")


def axis_in_layers(reco: dict[str, np.ndarray]) -> np.ndarray:
    """Shower-axis coordinate (cm) in each layer's own view, (n, 18), from entry_x/y and dxdz/dydz."""
    ax_x = reco["entry_x"][:, None] + reco["dxdz"][:, None] * LAYER_Z[None, :]
    ax_y = reco["entry_y"][:, None] + reco["dydz"][:, None] * LAYER_Z[None, :]
    return np.where(IS_X[None, :], ax_x, ax_y)


def lateral_profile(images: np.ndarray, reco: dict[str, np.ndarray], edges_cm: np.ndarray):
    """Mean fraction of the shower energy vs |cell centre - axis| (cm), each event normalised to its total.

    Returns (bin centres, mean fraction per bin); the profile of notebook 01 and the shower browser.
    """
    img = check_images(images)
    dist = np.abs(CELL_CENTRES[None, None, :] - axis_in_layers(reco)[:, :, None])
    total = img.sum(axis=(1, 2))
    w = img / np.where(total > 0, total, 1.0)[:, None, None]
    h, _ = np.histogram(dist.ravel(), bins=edges_cm, weights=w.ravel())
    return 0.5 * (edges_cm[1:] + edges_cm[:-1]), h / max(len(img), 1)


def align_to_axis(images: np.ndarray, reco: dict[str, np.ndarray], half_width: int = 20) -> np.ndarray:
    """Images shifted so the axis cell of every layer sits at the centre: (n, 18, 2*half_width+1), for mean showers."""
    img = check_images(images)
    axis_cell = np.floor((axis_in_layers(reco) - CELL_CENTRES[0]) / CELL_PITCH_CM + 0.5).astype(np.int64)
    offs = np.arange(-half_width, half_width + 1)
    idx = axis_cell[:, :, None] + offs[None, None, :]
    inside = (idx >= 0) & (idx < N_CELLS)
    return np.take_along_axis(img, np.clip(idx, 0, N_CELLS - 1), axis=2) * inside
