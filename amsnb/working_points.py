"""Working points: the fast threshold / target-efficiency engine of the threshold tuner, and working-point files.

:class:`WorkingPointEngine` answers threshold and target-efficiency queries on one score sample in O(log n) per
energy bin (``amsnb.widgets.threshold_tuner``, ``benchmarks/bench_widgets.py``; also the sort behind
:func:`amsnb.metrics.rejection_curve`). It counts with the one pass rule of :func:`amsnb.metrics.passes`
(``score >= threshold``) on sorted scores and computes every point with :func:`amsnb.metrics.point_from_sums`, so
its results equal :func:`~amsnb.metrics.rejection_at_threshold` / :func:`~amsnb.metrics.rejection_at_efficiency`
on the events of the selected bins.

:func:`save_working_point` / :func:`load_working_point` write and read the chosen working point (a JSON
:class:`WorkingPoint`: model, set, threshold, energy range, efficiency, rejection with its interval, counts, CL,
date, amsnb version) for downstream notebooks.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError, EmptySelectionError, InputFileError
from .metrics import (
    RejectionCurve,
    RejectionPoint,
    bin_edges,
    check_efficiency,
    default_efficiencies,
    point_from_sums,
    prepare_scores,
)


# ------------------------------------------------------------------------------------------------ fast engine
class WorkingPointEngine:
    """Threshold / target-efficiency queries on one score sample in O(B log n) (B energy bins).

    Scores of each class are sorted once per energy bin with cumulative weight sums; a query for a threshold is a
    ``searchsorted`` per bin; a target efficiency is found by bisection over the sorted electron scores (about
    log2(n) threshold queries). Energy ranges snap to the bin ``edges`` (an event with edges[i] <= E < edges[i+1]
    belongs to bin i; a range snaps outward to the bins it touches, see :meth:`snap`). Results equal
    :func:`~amsnb.metrics.rejection_at_threshold` / :func:`~amsnb.metrics.rejection_at_efficiency` on the events of
    the selected bins."""

    def __init__(self, score, label, weight=None, energy=None, edges=None, name: str = "scores"):
        score, label, weight, *rest = prepare_scores(score, label, weight, energy, name=name)
        self.name = name
        if energy is None:
            energy = np.zeros_like(score)
            self.edges = np.array([-np.inf, np.inf])
        else:
            energy = rest[0]
            self.edges = np.asarray(edges, float) if edges is not None else bin_edges(energy, None, 20)
        ibin = np.clip(np.searchsorted(self.edges, energy, side="right") - 1, -1, len(self.edges) - 1)
        self.n_sig, self.n_bkg = int((label == 1).sum()), int((label == 0).sum())
        self._bins = []  # per bin: {cls: (sorted scores, suffix count, suffix w, suffix w2)}
        for b in range(len(self.edges) - 1):
            m = ibin == b
            self._bins.append({c: _Sorted(score[m & (label == c)], weight[m & (label == c)]) for c in (0, 1)})
        sig = label == 1
        self._all_sig = np.sort(score[sig])

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    def _bin_range(self, energy_range) -> range:
        if energy_range is None:
            return range(self.n_bins)
        lo, hi = energy_range
        i0 = int(np.clip(np.searchsorted(self.edges, lo, side="right") - 1, 0, self.n_bins))
        i1 = int(np.clip(np.searchsorted(self.edges, hi, side="left"), 0, self.n_bins))
        return range(i0, max(i1, i0))

    def snap(self, energy_range) -> tuple[float, float]:
        """The energy range actually used for ``energy_range`` (outward to bin edges)."""
        bins = self._bin_range(energy_range)
        if len(bins) == 0:
            return (float("nan"), float("nan"))
        return float(self.edges[bins[0]]), float(self.edges[bins[-1] + 1])

    def _sums(self, threshold, bins, cls):
        n = w = w2 = 0.0
        for b in bins:
            dn, dw, dw2 = self._bins[b][cls].above(threshold)
            n, w, w2 = n + dn, w + dw, w2 + dw2
        return n, w, w2

    def at_threshold(self, threshold: float, energy_range=None, cl: float = 0.68) -> RejectionPoint:
        bins = self._bin_range(energy_range)
        ns, ws, ws2 = self._sums(-np.inf, bins, 1)
        nsp, wsp, _ = self._sums(threshold, bins, 1)
        nb, wb, wb2 = self._sums(-np.inf, bins, 0)
        nbp, wbp, _ = self._sums(threshold, bins, 0)
        return point_from_sums(threshold, int(ns), int(nsp), ws, ws2, wsp, int(nb), int(nbp), wb, wb2, wbp, cl)

    def threshold_for(self, efficiency: float, energy_range=None) -> float:
        """Largest threshold with electron efficiency >= ``efficiency`` in the energy range."""
        check_efficiency(efficiency)
        bins = self._bin_range(energy_range)
        _, ws, _ = self._sums(-np.inf, bins, 1)
        if ws <= 0:
            raise EmptySelectionError(f"{self.name}: no electrons in the energy range {energy_range}; widen it")
        target = efficiency * ws * (1 - 1e-12)
        s = self._all_sig
        lo, hi = 0, len(s) - 1  # invariant: eff(s[lo]) >= target (s[0] passes everything)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._sums(s[mid], bins, 1)[1] >= target:
                lo = mid
            else:
                hi = mid - 1
        return float(s[lo])

    def at_efficiency(self, efficiency: float, energy_range=None, cl: float = 0.68) -> RejectionPoint:
        return self.at_threshold(self.threshold_for(efficiency, energy_range), energy_range, cl)

    def curve(self, efficiencies=None, energy_range=None, cl: float = 0.68) -> RejectionCurve:
        effs = default_efficiencies() if efficiencies is None else efficiencies
        return RejectionCurve([self.at_efficiency(e, energy_range, cl) for e in effs], name=self.name)

    def scores_in(self, cls: int, energy_range=None) -> np.ndarray:
        """Scores of one class (1 electrons, 0 protons) in the energy range (for histograms)."""
        bins = self._bin_range(energy_range)
        parts = [self._bins[b][cls].score for b in bins]
        return np.concatenate(parts) if parts else np.zeros(0)

    def weights_in(self, cls: int, energy_range=None) -> np.ndarray:
        bins = self._bin_range(energy_range)
        parts = [self._bins[b][cls].weight for b in bins]
        return np.concatenate(parts) if parts else np.zeros(0)


class _Sorted:
    """Ascending scores with suffix sums, so counts/weights above a threshold are one searchsorted."""

    __slots__ = ("score", "weight", "_cn", "_cw", "_cw2")

    def __init__(self, score, weight):
        order = np.argsort(score, kind="stable")
        self.score, self.weight = score[order], weight[order]
        z = np.zeros(1)
        self._cw = np.concatenate([z, np.cumsum(self.weight[::-1])])[::-1]  # _cw[i] = sum of weight[i:]
        self._cw2 = np.concatenate([z, np.cumsum(self.weight[::-1] ** 2)])[::-1]
        self._cn = len(score)

    def above(self, threshold) -> tuple[int, float, float]:
        """Count, summed weights and squared weights of the events that pass ``threshold``: the rule of
        :func:`amsnb.metrics.passes` (``score >= threshold``) on ascending scores is every index from the first
        score not below it (``side="left"``), so a tie with the threshold passes, as it does there."""
        i = int(np.searchsorted(self.score, threshold, side="left"))
        return self._cn - i, float(self._cw[i]), float(self._cw2[i])


# ------------------------------------------------------------------------------------------------ working point
@dataclass
class WorkingPoint:
    """A saved working point: enough to apply the cut downstream and to know where it came from."""

    model: str
    eval_set: str
    threshold: float
    energy_range: tuple[float, float]
    efficiency: float
    rejection: float
    rejection_lo: float
    rejection_hi: float
    is_lower_limit: bool
    n_bkg_pass: int
    n_sig_lost: int
    cl: float
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    amsnb_version: str = ""


_WP_KEYS = ("model", "eval_set", "threshold", "energy_range", "efficiency", "rejection", "rejection_lo",
            "rejection_hi", "is_lower_limit", "n_bkg_pass", "n_sig_lost", "cl", "date", "amsnb_version")


def save_working_point(path: str | os.PathLike, point: RejectionPoint, *, model: str, eval_set: str,
                       energy_range=(0.0, math.inf)) -> Path:
    """Write a working point JSON (read back with :func:`load_working_point`)."""
    from . import __version__

    wp = WorkingPoint(model=model, eval_set=eval_set, threshold=point.threshold,
                      energy_range=(float(energy_range[0]), float(energy_range[1])), efficiency=point.efficiency,
                      rejection=point.rejection, rejection_lo=point.rejection_lo, rejection_hi=point.rejection_hi,
                      is_lower_limit=point.is_lower_limit, n_bkg_pass=point.n_bkg_pass, n_sig_lost=point.n_sig_lost,
                      cl=point.cl, amsnb_version=__version__)
    d = asdict(wp)
    d["energy_range"] = [_json_float(x) for x in d["energy_range"]]
    d["rejection_hi"] = _json_float(d["rejection_hi"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d, indent=2))
    return path


def _json_float(x: float):
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def load_working_point(path: str | os.PathLike) -> WorkingPoint:
    """Read a working point JSON written by :func:`save_working_point` (or the threshold tuner)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: working point file not found; save one with the threshold tuner first")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); re-save the working point") from None
    missing = [k for k in _WP_KEYS if k not in d]
    if missing:
        raise ConfigError(f"{path}: working point lacks {', '.join(missing)}; re-save it with amsnb")
    d = {k: d[k] for k in _WP_KEYS}
    d["energy_range"] = tuple(float(x) for x in d["energy_range"])
    d["rejection_hi"] = float(d["rejection_hi"])
    return WorkingPoint(**d)
