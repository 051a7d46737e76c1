"""Si/P/S selections of seed 004, the seed's training composition, global-MC pooling, efficiencies vs rigidity.

Signal = primary Z equal to the selected Z (MC truth); background = any other primary passing the same charge
windows, mostly Z+1 nuclei that fragment between L1 and L2 ("below L1": the primary reached L1 intact) or above L1.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, EmptySelectionError
from ..metrics import Efficiency, passes


# ----------------------------------------------------------------------------------------- selections
@dataclass(frozen=True)
class Selection:
    """Charge windows of a species selection. The seed's exact windows are not public ([NF]); these are +-0.45 in
    the inner-tracker charge (about 3 sigma of the ~0.16 inner resolution) and an L1 window of +-0.5."""
    z: int
    inner: tuple[float, float]
    l1: tuple[float, float]
    min_inner_hits: int = 5

    @property
    def name(self) -> str:
        from .sim import SPECIES

        return SPECIES[self.z][0]


def selection(z: int, inner_halfwidth: float = 0.45, l1_window: tuple[float, float] = (-0.5, 0.5)) -> Selection:
    from .sim import SPECIES

    if int(z) not in SPECIES:
        raise ConfigError(f"selection z={z}: choose a charge in {min(SPECIES)}..{max(SPECIES)} (Si=14, P=15, S=16)")
    z = int(z)
    return Selection(z, (z - inner_halfwidth, z + inner_halfwidth), (z + l1_window[0], z + l1_window[1]))


SELECTIONS = {z: selection(z) for z in (14, 15, 16)}

#: The seed's training composition per selection (slides "Samples"): fractions of the MC set by primary Z.
TRAINING_COMPOSITION = {
    15: {15: 0.50, 14: 0.011, 16: 0.489},
    14: {14: 0.50, 15: 0.405, 16: 0.095},
    16: {16: 0.50, 15: 0.0136, 17: 0.4864},
}


def _sel(sel: Selection | int) -> Selection:
    return sel if isinstance(sel, Selection) else SELECTIONS.get(int(sel)) or selection(int(sel))


def select_mask(arrays: Mapping[str, np.ndarray], sel: Selection | int, l1_cut: bool = True) -> np.ndarray:
    """Events passing the selection: enough inner hits, inner charge in window, L1 hit and (optionally) L1 window."""
    sel = _sel(sel)
    n_inner = ((arrays["trk_hit"][:, 0, 1:8] & 3) > 0).sum(axis=1)
    m = (n_inner >= sel.min_inner_hits) & (arrays["q_inner"] >= sel.inner[0]) & (arrays["q_inner"] < sel.inner[1])
    m &= arrays["q_l1"] > 0
    if l1_cut:
        m &= (arrays["q_l1"] >= sel.l1[0]) & (arrays["q_l1"] < sel.l1[1])
    return m


def take(arrays: Mapping[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in arrays.items()}


def concat(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if len(next(iter(p.values())))]
    if not parts:
        raise EmptySelectionError("no events to concatenate: every input sample was empty after selection")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def labels(arrays: Mapping[str, np.ndarray], sel: Selection | int) -> np.ndarray:
    """1 signal (primary Z = selected Z, MC truth), 0 background."""
    return (arrays["z_primary"] == _sel(sel).z).astype(np.int8)


def category(arrays: Mapping[str, np.ndarray], sel: Selection | int) -> np.ndarray:
    """Per event: 'signal'; 'below_l1' (a heavier primary that reached L1 intact, so it fragmented below L1);
    'above_l1' (a heavier primary that fragmented above L1: L1 already shows the fragment); 'lighter' (a lighter
    primary leaking into the window through the charge resolution: charge mis-identification, not fragmentation).
    """
    z = _sel(sel).z
    zp = arrays["z_primary"]
    heavier = zp > z
    intact = arrays["survived_l1"] == 1
    return np.where(zp == z, "signal", np.where(heavier & intact, "below_l1",
                                                 np.where(heavier, "above_l1", "lighter")))


def _selected(arrays, sel, l1_cut, where):
    m = select_mask(arrays, sel, l1_cut)
    if not m.any():
        raise EmptySelectionError(f"{where}: no event passes the {_sel(sel).name} selection "
                                  f"(inner {_sel(sel).inner}, L1 {_sel(sel).l1}); simulate more events or check "
                                  "the charge scale of the sample")
    return take(arrays, m)


def training_set(samples: Mapping[int, Mapping[str, np.ndarray]], sel: Selection | int, n: int, seed: int = 0,
                 composition: Mapping[int, float] | None = None, l1_cut: bool = True,
                 strict: bool = True) -> dict[str, np.ndarray]:
    """Up to ``n`` selected MC events resampled to the seed's composition (``TRAINING_COMPOSITION``).

    ``samples`` maps primary Z -> arrays (one MC file per species). A species with fewer selected events than its
    share is drawn with replacement (see :func:`unique_counts`); one with none raises :class:`EmptySelectionError`,
    or with ``strict=False`` is left out with a warning (never the signal species).
    """
    sel = _sel(sel)
    comp = dict(composition or TRAINING_COMPOSITION.get(sel.z) or {})
    if not comp:
        raise ConfigError(f"no training composition for Z={sel.z}; pass composition={{Z: fraction}}")
    rng = np.random.default_rng([seed, sel.z])
    chosen = {}
    for z in comp:
        if z not in samples:
            raise EmptySelectionError(f"training set {sel.name}: species Z={z} is needed (composition {comp}) but "
                                      f"absent from the samples (have Z={sorted(samples)})")
        try:
            chosen[z] = _selected(samples[z], sel, l1_cut, f"training set {sel.name}, species Z={z}")
        except EmptySelectionError as exc:
            if strict or z == sel.z:
                raise
            warnings.warn(f"{exc}; species Z={z} (share {comp[z]}) is left out of the training set", stacklevel=2)
    comp = {z: f for z, f in comp.items() if z in chosen}
    # the set has n events; a species whose selected pool is smaller than its share is drawn with replacement
    # (a rare leak such as Si into the P window); ``info`` in the returned dict's attrs says how many were unique
    # n shrinks to what the main species (share >= 5 %) hold, so only rare ones are duplicated
    n = min([int(n)] + [int(len(chosen[z]["q_inner"]) / f) for z, f in comp.items() if f >= 0.05])
    parts = []
    for z, f in comp.items():
        k = max(1, int(round(n * f)))
        avail = len(chosen[z]["q_inner"])
        parts.append(take(chosen[z], rng.choice(avail, size=k, replace=k > avail)))
    out = concat(parts)
    return take(out, rng.permutation(len(out["q_inner"])))


def unique_counts(arrays: Mapping[str, np.ndarray]) -> dict[int, tuple[int, int]]:
    """{primary Z: (events, distinct events)}: shows how much of a training set is duplicated."""
    out = {}
    for z in np.unique(arrays["z_primary"]):
        m = arrays["z_primary"] == z
        keys = arrays["run"][m].astype(np.int64) * 10**10 + arrays["event"][m]
        out[int(z)] = (int(m.sum()), len(np.unique(keys)))
    return out


def pooled_set(samples: Mapping[int, Mapping[str, np.ndarray]], sel: Selection | int, l1_cut: bool = True,
               survived_above: bool = False) -> dict[str, np.ndarray]:
    """Every species' selected events together ("global MC", or a data-like sample): the weights carry the physical
    abundance (``amsnb.nuclei.sim.ABUNDANCE``), so weighted histograms show the physical composition.

    ``survived_above``: for species heavier than the selected Z keep only nuclei that reached L1 intact (the seed's
    "below-L1" plots).
    """
    sel = _sel(sel)
    parts = []
    for z, arr in samples.items():
        m = select_mask(arr, sel, l1_cut)
        if survived_above and z > sel.z:
            m &= arr["survived_l1"] == 1
        parts.append(take(arr, m))
    try:
        return concat(parts)
    except EmptySelectionError:
        raise EmptySelectionError(f"pooled {sel.name} sample: no event of Z={sorted(samples)} passes the selection; "
                                  "simulate more events") from None


def physical_subsample(arrays: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Unweighted events with the physical composition: keep each event with probability weight / max(weight)."""
    w = arrays["weight"].astype(float)
    keep = np.random.default_rng(seed).random(len(w)) < w / w.max()
    out = take(arrays, keep)
    out["weight"] = np.ones(keep.sum(), np.float32)
    return out


# ----------------------------------------------------------------------------------------- efficiencies
def efficiency_vs_rigidity(arrays: Mapping[str, np.ndarray], score: np.ndarray, sel: Selection | int,
                           threshold: float = 0.5, edges=None, cl: float = 0.68) -> dict:
    """Signal efficiency and residual background efficiency per rigidity bin and per background Z (the seed's plots).

    An event passes when ``score >= threshold`` (:func:`amsnb.metrics.passes`, the one rule of amsnb).
    Weighted by ``weight`` (physical abundance); intervals are Clopper-Pearson on the effective counts of each bin
    (:func:`amsnb.metrics.binned_efficiency`). Returns ``{"edges", "signal", "background", "per_z": {Z: ...}}``,
    each an :class:`amsnb.metrics.Efficiency` of arrays (``value``, ``lo``, ``hi``, ``err``, ``yerr``; NaN in
    empty bins).
    """
    from ..metrics import binned_efficiency

    sel = _sel(sel)
    edges = np.geomspace(60, 2000, 9) if edges is None else np.asarray(edges)
    r = np.abs(arrays["rig_inl1"])
    w = arrays["weight"].astype(float)
    passed = passes(score, threshold)
    zp = arrays["z_primary"]

    def eff(m):
        return binned_efficiency(r[m], passed[m], edges, w[m], cl)

    out = {"edges": edges, "signal": eff(zp == sel.z), "background": eff(zp != sel.z), "per_z": {}}
    for z in np.unique(zp[zp != sel.z]):
        out["per_z"][int(z)] = eff(zp == z)
    return out


@dataclass(frozen=True)
class CutEfficiency:
    """Signal efficiency and background (residual) efficiency of a cut on the score, each an
    :class:`amsnb.metrics.Efficiency` (Clopper-Pearson interval on effective counts)."""
    threshold: float
    signal: Efficiency
    background: Efficiency

    def as_dict(self) -> dict[str, float]:
        """``sig_eff``, ``sig_eff_lo``, ``sig_eff_hi``, ``sig_eff_err`` (half-width of the interval) and the same
        for ``bkg_eff``: the columns of the notebooks' tables and of the efficiency-vs-threshold plot."""
        out = {}
        for key, e in (("sig_eff", self.signal), ("bkg_eff", self.background)):
            out.update({key: e.value, f"{key}_lo": e.lo, f"{key}_hi": e.hi, f"{key}_err": e.err})
        return out

    def table(self, digits: int = 4) -> dict[str, float]:
        """Values and half-widths, rounded (what a notebook shows)."""
        return {k: round(v, digits) for k, v in self.as_dict().items() if not k.endswith(("_lo", "_hi"))}


def cut_efficiency(score: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None, threshold: float = 0.5,
                   cl: float = 0.68) -> CutEfficiency:
    """Signal (label 1) and background (label 0) efficiency of the cut ``score >= threshold``
    (:func:`amsnb.metrics.passes`), weighted, with Clopper-Pearson intervals (:func:`amsnb.metrics.efficiency`)."""
    from ..metrics import efficiency

    w = np.ones(len(label)) if weight is None else np.asarray(weight, float)
    passed = passes(score, threshold)
    sig, bkg = label == 1, label == 0
    if not sig.any() or not bkg.any():
        raise EmptySelectionError("cut_efficiency: the set needs both signal and background events")
    return CutEfficiency(float(threshold), efficiency(passed[sig], w[sig], cl), efficiency(passed[bkg], w[bkg], cl))
