"""Tables of the evaluation: the numbers of :mod:`amsnb.metrics` as fixed-width text, HTML and the flat rows of a
notebook's ``metrics.json``.

:mod:`amsnb.metrics` computes (rejection, intervals, AUC, the rows of :func:`~amsnb.metrics.comparison_table` and
:func:`~amsnb.metrics.threshold_transfer`); this module only renders and reshapes what it computed:
:func:`format_table` / :func:`table_html` (the comparison table), :func:`format_transfer_table`,
:func:`key_figures` (the flat form the regression references compare), :func:`energy_table` (rejection versus
energy as rows), :func:`seed_summary` / :func:`format_seed_summary` (mean and spread of repeated trainings) and
:func:`format_number`, the one number format of every table (and of
:meth:`amsnb.metrics.RejectionPoint.rejection_text`).
"""

from __future__ import annotations

import math

from .metrics import TABLE_EFFICIENCIES, EnergyCurve


def format_number(x: float) -> str:
    """A rejection (or any positive figure) as tables show it: 4 significant digits, exponent form from 1e5,
    ``inf`` for an unbounded interval end."""
    if not math.isfinite(x):
        return "inf"
    return f"{x:.4g}" if x < 1e5 else f"{x:.3e}"


def rejection_cell(value: float, lo: float, hi: float, is_limit: bool, html: bool = False) -> str:
    """``"1234 [1100, 1390]"``, or ``">2300"`` for a lower limit (``&gt;`` in HTML)."""
    if is_limit:
        return f"&gt; {format_number(value)}" if html else f">{format_number(value)}"
    return f"{format_number(value)} [{format_number(lo)}, {format_number(hi)}]"


def _keys(efficiencies) -> list[str]:
    return [f"{round(100 * e)}" for e in efficiencies]


def _text(head: list[str], body: list[list]) -> str:
    """Fixed-width columns, a dashed rule under the header (pandas is not a dependency)."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _comparison_cells(r: dict, keys: list[str], html: bool) -> list[str]:
    rej = [rejection_cell(r[f"rej{k}"], r[f"rej{k}_lo"], r[f"rej{k}_hi"], r[f"rej{k}_is_limit"], html) for k in keys]
    return [r["model"], f"{r['auc']:.5f}"] + rej + [str(r[f"mis{k}"]) for k in keys]


def _comparison_head(keys: list[str]) -> list[str]:
    return ["model", "AUC"] + [f"R@{k}% [interval]" for k in keys] + [f"mis@{k}%" for k in keys]


def format_table(rows: list[dict], efficiencies=TABLE_EFFICIENCIES) -> str:
    """The comparison table (:func:`amsnb.metrics.comparison_table` rows) as fixed-width text."""
    keys = _keys(efficiencies)
    return _text(_comparison_head(keys), [_comparison_cells(r, keys, html=False) for r in rows])


def table_html(rows: list[dict], efficiencies=TABLE_EFFICIENCIES) -> str:
    """The comparison table as an HTML table (for ``IPython.display.HTML``)."""
    keys = _keys(efficiencies)
    out = ["<table class='amsnb-comparison'><tr>" + "".join(f"<th>{h}</th>" for h in _comparison_head(keys))
           + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in _comparison_cells(r, keys, html=True)) + "</tr>")
    return "\n".join(out + ["</table>"])


def key_figures(rows: list[dict], eval_set: str, efficiencies=TABLE_EFFICIENCIES) -> dict:
    """Flat ``{"<model>_<set>_<figure>": value}`` of a comparison table (AUC, misidentified protons, rejection and
    its limit flag), the form the regression references (tests/reference/NN.json) compare."""
    out = {}
    for r in rows:
        pre = f"{r['model']}_{eval_set}"
        out[f"{pre}_auc"], out[f"{pre}_n_sig"], out[f"{pre}_n_bkg"] = r["auc"], r["n_sig"], r["n_bkg"]
        for k in _keys(efficiencies):
            out[f"{pre}_mis{k}"], out[f"{pre}_rej{k}"] = r[f"mis{k}"], r[f"rej{k}"]
            out[f"{pre}_rej{k}_is_limit"] = r[f"rej{k}_is_limit"]
    return out


def format_transfer_table(rows: list[dict]) -> str:
    """Fixed-width text of :func:`amsnb.metrics.threshold_transfer` rows."""
    head = ["model", "threshold from", "applied to", "e-eff reached [68%]", "rejection (passing p)",
            "own-threshold rejection (passing p)"]
    body = [[r["model"], r["source"], r["target"],
             f"{r['efficiency']:.3f} [{r['efficiency_lo']:.3f}, {r['efficiency_hi']:.3f}]",
             f"{r['rejection']} ({r['n_bkg_pass']} of {r['n_bkg']})",
             f"{r['own_threshold_rejection']} ({r['own_n_bkg_pass']})"] for r in rows]
    return _text(head, body)


def energy_table(curves: dict[str, EnergyCurve]) -> list[dict]:
    """Rows (model, bin, rejection, interval, limit flag, efficiency, threshold, protons passing) of
    :func:`amsnb.metrics.rejection_vs_energy_models` curves, for metrics.json."""
    rows = []
    for m, c in curves.items():
        for (lo, hi), p in zip(zip(c.edges[:-1], c.edges[1:]), c.points):
            if p is not None:
                rows.append({"model": m, "mode": c.mode, "e_lo": float(lo), "e_hi": float(hi),
                             "rejection": p.rejection, "rejection_lo": p.rejection_lo,
                             "rejection_hi": p.rejection_hi, "is_lower_limit": p.is_lower_limit,
                             "efficiency": p.efficiency, "threshold": p.threshold, "n_bkg_pass": p.n_bkg_pass,
                             "n_bkg": p.n_bkg})
    return rows


def seed_summary(rows: list[dict], figures, key: str = "method") -> list[dict]:
    """Repeated trainings (one row per run, e.g. per alignment method and seed) as one row per ``key`` value, in the
    order of first appearance (source-only first when it was run first): ``n_seeds`` and, per figure, the mean and
    the sample standard deviation over the runs (NaN with one run); a figure a run lacks (None, NaN, absent) is left
    out of that value's mean."""
    import numpy as np

    out = []
    for value in dict.fromkeys(r[key] for r in rows):
        mine = [r for r in rows if r[key] == value]
        row = {key: value, "n_seeds": len(mine)}
        for f in figures:
            v = np.array([r[f] for r in mine if r.get(f) is not None], float)
            v = v[np.isfinite(v)]
            row[f"{f}_mean"] = float(v.mean()) if len(v) else float("nan")
            row[f"{f}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        out.append(row)
    return out


def format_seed_summary(summary: list[dict], figures, key: str = "method") -> str:
    """:func:`seed_summary` as fixed-width text: one line per ``key`` value, ``mean +- std`` per figure."""
    head = [key, "seeds", *figures]
    body = [[str(r[key]), str(r["n_seeds"]), *(f"{r[f'{f}_mean']:.4g} +- {r[f'{f}_std']:.2g}" for f in figures)]
            for r in summary]
    return _text(head, body)
