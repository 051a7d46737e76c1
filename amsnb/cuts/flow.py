"""Cut flows and N-1 distributions of a cut set.

A cut flow counts, per class (electron, proton, unlabeled), the events and the sums of weights and squared weights
before any cut and after each cut in order; efficiencies (step by step and cumulative) get central Clopper-Pearson
intervals (:func:`amsnb.metrics.clopper_pearson`), on effective counts n_eff = (sum w)^2 / sum w^2 when weighted
(:func:`amsnb.metrics.effective_counts`). Counts add up, so flows of chunks or of dask partitions merge exactly.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

CLASSES = {"electron": 1, "proton": 0, "unlabeled": -1}
#: The first step after "all": events whose branches are all finite. Real files carry a few events with NaN/inf
#: reconstructed values; they fail here, counted per branch, instead of stopping the analysis or vanishing unseen.
FINITE = "finite"


def finite_mask(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
    """``(finite, counts)``: events with every floating value finite, and the events with a NaN/inf per branch."""
    from ..io import nonfinite_events

    bad, counts = nonfinite_events(arrays)
    return ~bad, counts


def _steps(cutset, set_name) -> tuple[list[str], list[str]]:
    return (["all", FINITE, *cutset.names],
            ["all events", "finite values", *(c.describe(set_name) for c in cutset.cuts)])


@dataclass
class CutFlow:
    """Counts after each step: ``steps[0] == "all"``, then the cuts in order. Arrays are (n_steps,) per class."""

    set_name: str
    steps: list[str]
    counts: dict[str, np.ndarray]
    sumw: dict[str, np.ndarray]
    sumw2: dict[str, np.ndarray]
    descriptions: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)  # events with a NaN/inf, per branch (the "finite" step)

    @classmethod
    def zeros(cls, set_name: str, steps: list[str], descriptions=None) -> CutFlow:
        z = {c: np.zeros(len(steps), np.int64) for c in CLASSES}
        zf = {c: np.zeros(len(steps), np.float64) for c in CLASSES}
        return cls(set_name, list(steps), z, zf, {c: v.copy() for c, v in zf.items()}, list(descriptions or []))

    def __iadd__(self, other: CutFlow) -> CutFlow:
        if other.steps != self.steps:
            raise ValueError(f"cannot merge cut flows with different steps {other.steps} != {self.steps}")
        for c in CLASSES:
            self.counts[c] = self.counts[c] + other.counts[c]
            self.sumw[c] = self.sumw[c] + other.sumw[c]
            self.sumw2[c] = self.sumw2[c] + other.sumw2[c]
        for name, k in other.nonfinite.items():
            self.nonfinite[name] = self.nonfinite.get(name, 0) + k
        return self

    def description(self, i: int) -> str:
        """What step ``i`` requires; the "finite" step names the branches with NaN/inf and their event counts."""
        text = self.descriptions[i] if i < len(self.descriptions) else self.steps[i]
        if self.steps[i] == FINITE and self.nonfinite:
            text += " (NaN/inf in " + ", ".join(f"{k}: {v}" for k, v in sorted(self.nonfinite.items())) + ")"
        return text

    @property
    def classes(self) -> list[str]:
        """Classes with events in this set."""
        return [c for c in CLASSES if self.counts[c][0] > 0]

    def n(self, cls: str, weighted: bool = False) -> np.ndarray:
        return self.sumw[cls] if weighted else self.counts[cls]

    def efficiency(self, cls: str, weighted: bool = False, cumulative: bool = True, cl: float = 0.68):
        """(efficiency, low, high) per step, relative to "all" (cumulative) or to the previous step."""
        from ..metrics import clopper_pearson, effective_counts

        k = self.n(cls, weighted).astype(float)
        ref_idx = np.zeros(len(k), int) if cumulative else np.maximum(np.arange(len(k)) - 1, 0)
        eff, lo, hi = (np.full(len(k), np.nan) for _ in range(3))
        for i, r in enumerate(ref_idx):
            n_ref = k[r]
            if n_ref <= 0:
                continue
            eff[i] = k[i] / n_ref
            if weighted:
                kk, nn = effective_counts(self.sumw[cls][r], self.sumw2[cls][r], self.sumw[cls][i])
            else:
                kk, nn = k[i], n_ref
            lo[i], hi[i] = clopper_pearson(kk, nn, cl) if nn > 0 else (np.nan, np.nan)
        return eff, lo, hi

    def rows(self, weighted: bool = False) -> list[dict]:
        """One dict per step: counts, step and cumulative efficiencies with their 68 % intervals, per class."""
        out = []
        effs = {c: (self.efficiency(c, weighted, True), self.efficiency(c, weighted, False)) for c in self.classes}
        for i, step in enumerate(self.steps):
            row = {"step": step, "cut": self.description(i)}
            for c in self.classes:
                (cum, clo, chi), (st, _, _) = effs[c]
                row[c] = float(self.n(c, weighted)[i]) if weighted else int(self.counts[c][i])
                row[f"{c}_eff"] = float(cum[i])
                row[f"{c}_eff_lo"] = float(clo[i])
                row[f"{c}_eff_hi"] = float(chi[i])
                row[f"{c}_step_eff"] = float(st[i])
            out.append(row)
        return out

    def text(self, weighted: bool = False) -> str:
        """A fixed-width table: counts and cumulative efficiency (68 % interval) per class."""
        rows = self.rows(weighted)
        head = f"{'step':<16}" + "".join(f"{c:>34}" for c in self.classes)
        lines = [f"cut flow of '{self.set_name}'" + (" (weighted)" if weighted else ""), head]
        for r in rows:
            cells = []
            for c in self.classes:
                n = f"{r[c]:.4g}" if weighted else str(r[c])
                cells.append(f"{n:>10} {100 * r[f'{c}_eff']:7.2f}% [{100 * r[f'{c}_eff_lo']:.1f},"
                             f"{100 * r[f'{c}_eff_hi']:.1f}]")
            lines.append(f"{r['step']:<16}" + "".join(f"{x:>34}" for x in cells))
        return "\n".join(lines)

    def html(self, weighted: bool = False) -> str:
        rows = self.rows(weighted)
        head = "".join(f"<th>{c}</th><th>{c} eff. [68% CL]</th><th>step eff.</th>" for c in self.classes)
        body = []
        for r in rows:
            cells = "".join(
                f"<td>{(f'{r[c]:.4g}' if weighted else r[c])}</td>"
                f"<td>{100 * r[f'{c}_eff']:.2f}% [{100 * r[f'{c}_eff_lo']:.2f}, {100 * r[f'{c}_eff_hi']:.2f}]</td>"
                f"<td>{100 * r[f'{c}_step_eff']:.1f}%</td>" for c in self.classes)
            body.append(f"<tr><td>{html.escape(r['step'])}</td><td><code>{html.escape(r['cut'])}</code></td>{cells}</tr>")
        title = f"Cut flow: {html.escape(self.set_name)}" + (" (weighted)" if weighted else "")
        return (f"<table><caption>{title}</caption><tr><th>step</th><th>cut</th>{head}</tr>"
                + "".join(body) + "</table>")

    def _repr_html_(self) -> str:
        return self.html()

    def to_dict(self) -> dict:
        return {"set": self.set_name, "steps": self.steps, "descriptions": self.descriptions,
                "counts": {c: self.counts[c].tolist() for c in self.classes},
                "sumw": {c: self.sumw[c].tolist() for c in self.classes},
                "sumw2": {c: self.sumw2[c].tolist() for c in self.classes}, "nonfinite": dict(self.nonfinite)}

    @classmethod
    def from_dict(cls, d: Mapping) -> CutFlow:
        """Inverse of :meth:`to_dict` (the cut flows stored in ``sets/manifest.json``)."""
        flow = cls.zeros(d["set"], d["steps"], d.get("descriptions"))
        for c in d["counts"]:
            flow.counts[c] = np.asarray(d["counts"][c], np.int64)
            flow.sumw[c] = np.asarray(d["sumw"][c], np.float64)
            flow.sumw2[c] = np.asarray(d.get("sumw2", d["sumw"])[c], np.float64)
        flow.nonfinite = {k: int(v) for k, v in d.get("nonfinite", {}).items()}
        return flow

    def same_as(self, other: CutFlow, rtol: float = 1e-9) -> bool:
        """Identical steps and counts (exactly) and weight sums (to ``rtol``: summation order may differ)."""
        return (self.steps == other.steps
                and all(np.array_equal(self.counts[c], other.counts[c]) for c in CLASSES)
                and all(np.allclose(self.sumw[c], other.sumw[c], rtol=rtol, atol=0) for c in CLASSES)
                and all(np.allclose(self.sumw2[c], other.sumw2[c], rtol=rtol, atol=0) for c in CLASSES))

    def final(self, cls: str) -> int:
        return int(self.counts[cls][-1])


def _label_weight(arrays: Mapping, n: int):
    label = np.asarray(arrays["label"]) if "label" in arrays else np.full(n, -1, np.int8)
    weight = np.asarray(arrays["weight"], np.float64) if "weight" in arrays else np.ones(n)
    return label, weight


def cut_flow(arrays: Mapping[str, np.ndarray], cutset="default", set_name: str | None = None) -> CutFlow:
    """Cut flow of in-memory arrays (needs the cut branches; ``label`` and ``weight`` are used when present)."""
    from . import load

    cutset = load(cutset)
    n = len(next(iter(arrays.values()))) if arrays else 0
    flow = CutFlow.zeros(set_name or "events", *_steps(cutset, set_name))
    if n == 0:
        return flow
    label, weight = _label_weight(arrays, n)
    keep = np.ones(n, bool)
    steps = [keep.copy()]
    keep, flow.nonfinite = finite_mask(arrays)
    steps.append(keep.copy())
    for mask in cutset.masks(arrays, set_name).values():
        keep &= np.asarray(mask)
        steps.append(keep.copy())
    for cls, code in CLASSES.items():
        is_c = label == code
        for i, k in enumerate(steps):
            sel = k & is_c
            flow.counts[cls][i] = int(sel.sum())
            w = weight[sel]
            flow.sumw[cls][i] = float(w.sum())
            flow.sumw2[cls][i] = float((w * w).sum())
    return flow


def cut_flow_files(files, cutset="default", set_name: str | None = None, mapping=None, step_size="100 MB",
                   progress: bool = True) -> CutFlow:
    """Cut flow of ROOT files read chunk by chunk with :func:`amsnb.io.iterate` (only the needed branches)."""
    from tqdm.auto import tqdm

    from .. import io
    from . import load

    cutset = load(cutset)
    flow = cut_flow({}, cutset, set_name)
    paths = io.expand_files(files)
    total = sum(io.num_entries(p) for p in paths) if mapping is None else None
    with tqdm(total=total, desc=f"cut flow {set_name or ''}", unit="ev", disable=not progress, leave=False) as bar:
        for chunk in io.iterate(paths, io.ECAL, sorted({*cutset.branches(), "label", "weight"}), mapping, step_size,
                                nan_policy="keep"):
            flow += cut_flow(chunk, cutset, set_name)
            bar.update(len(chunk["label"]))
    return flow


@dataclass
class NMinusOne:
    """Values of one cut's variable for the events passing all the *other* cuts, with the cut window."""

    cut: str
    variable: str
    values: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    window: tuple[float | None, float | None]
    passing: np.ndarray  # this cut passes too

    def efficiency(self, cls: str = "electron") -> float:
        """Fraction of the class (after the other cuts) that this cut keeps: its N-1 efficiency."""
        m = self.label == CLASSES[cls]
        return float(self.passing[m].mean()) if m.any() else float("nan")


def n_minus_one(arrays: Mapping[str, np.ndarray], cutset="default", set_name: str | None = None,
                cuts: list[str] | None = None) -> dict[str, NMinusOne]:
    """For every cut (or the ones named), its variable after all other cuts: the N-1 distributions."""
    from . import load

    cutset = load(cutset)
    n = len(next(iter(arrays.values())))
    label, weight = _label_weight(arrays, n)
    masks = {k: np.asarray(v) for k, v in cutset.masks(arrays, set_name).items()}
    finite, _ = finite_mask(arrays)
    out = {}
    for cut in cutset.cuts:
        if cuts is not None and cut.name not in cuts:
            continue
        others = finite.copy()
        for name, m in masks.items():
            if name != cut.name:
                others &= m
        values = np.asarray(cutset.values(arrays, cut.variable))[others]
        out[cut.name] = NMinusOne(cut.name, cut.variable, values, label[others], weight[others],
                                  cut.window(set_name), masks[cut.name][others])
    return out
