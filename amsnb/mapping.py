"""Branch mappings: read a user's AMS ntuple, whose branch names differ, through the amsnb schema.

A mapping is a small YAML file (documented example: ``amsnb/data/example_mapping.yaml``)::

    tree: amstree                 # tree name in the user's file (default: the schema's own)
    branches:                     # schema name: branch name, or an expression of branches
      energy: EcalEnergyD
      e_over_r: EcalEnergyD / abs(TrRigidity)
    units:                        # optional multiplicative factors to the schema's units
      energy: 0.001               # file in MeV, schema in GeV

An image branch (``ecal_edep``) can instead be built from sparse hits, jagged branches sharing one counter::

    branches:
      ecal_edep: {hits: {layer: EcalHit_Plane, cell: EcalHit_Cell, edep: EcalHit_Edep, layer_base: 0, cell_base: 0}}

Flight data has no truth branches: a ``tag`` labels its events by a selection, an expression per class over
schema (mapped or derived) variables; the flight events it leaves untagged stay unlabeled (label -1)::

    tag:
      electron: rigidity < 0 and trd_llr < 0.45
      proton: rigidity > 0 and trd_llr > 0.62
      events: domain == 1           # which events the tag labels (default: flight, domain == 1)

Unmapped schema branches are looked up under their own name. The mapping is validated once, when
loaded, against the schema it is used with.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .schema import TreeSchema

_FUNCTIONS = {"abs", "sqrt", "log", "exp", "where", "minimum", "maximum", "np", "numpy"}


def _identifiers(expr: str) -> set[str]:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"mapping expression '{expr}' is not valid: {exc.msg}") from None
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - called - _FUNCTIONS


_NUMPY = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "exp": np.exp, "where": np.where,
          "minimum": np.minimum, "maximum": np.maximum}
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.Compare,
                  ast.operator, ast.unaryop, ast.cmpop, ast.Subscript, ast.Slice, ast.Tuple, ast.BoolOp, ast.boolop)


class _ElementWise(ast.NodeTransformer):
    """``a and b`` / ``a or b`` / ``not a`` as element-wise numpy logic (Python's would ask one truth value)."""

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        fn = "logical_and" if isinstance(node.op, ast.And) else "logical_or"
        out = node.values[0]
        for v in node.values[1:]:
            out = ast.Call(ast.Name(fn, ast.Load()), [out, v], [])
        return out

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.Call(ast.Name("logical_not", ast.Load()), [node.operand], [])
        return node


def _evaluate(expr: str, raw: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate an arithmetic expression of branches with numpy (no attribute access, no builtins)."""
    tree = ast.parse(expr, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ConfigError(f"mapping expression '{expr}': {type(node).__name__} is not allowed "
                              f"(use branch names, numbers, + - * / **, and {', '.join(_NUMPY)})")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _NUMPY):
            raise ConfigError(f"mapping expression '{expr}': only the functions {', '.join(_NUMPY)} are allowed")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or
                                               not isinstance(node.value, (int, float))):
            raise ConfigError(f"mapping expression '{expr}': only numbers are allowed as constants")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and not (
                isinstance(node.right, ast.Constant) and abs(node.right.value) <= 16):
            raise ConfigError(f"mapping expression '{expr}': exponents must be numbers with |p| <= 16")
    tree = ast.fix_missing_locations(_ElementWise().visit(tree))
    logic = {"logical_and": np.logical_and, "logical_or": np.logical_or, "logical_not": np.logical_not}
    with np.errstate(invalid="ignore"):  # NaN compares False: an event with a NaN value is not tagged
        return np.asarray(eval(compile(tree, "<mapping>", "eval"), {"__builtins__": {}}, {**_NUMPY, **logic, **raw}))


@dataclass(frozen=True)
class HitSpec:
    """Sparse hits that build a dense (layers, cells) image: three jagged branches sharing one counter."""
    layer: str
    cell: str
    edep: str
    layer_base: int = 0
    cell_base: int = 0

    @property
    def names(self) -> list[str]:
        return [self.layer, self.cell, self.edep]


def _hit_spec(source: str, name: str, spec) -> HitSpec:
    inner = spec.get("hits") if isinstance(spec, Mapping) else None
    if not isinstance(inner, Mapping) or set(spec) != {"hits"}:
        raise ConfigError(f"mapping {source}: branch '{name}' must map to a branch name, an expression, or "
                          "{hits: {layer: BRANCH, cell: BRANCH, edep: BRANCH}}")
    unknown = set(inner) - {"layer", "cell", "edep", "layer_base", "cell_base"}
    missing = {"layer", "cell", "edep"} - set(inner)
    if unknown or missing:
        raise ConfigError(f"mapping {source}: hits of '{name}': "
                          + (f"unknown keys {sorted(unknown)}; " if unknown else "")
                          + (f"missing keys {sorted(missing)}; " if missing else "")
                          + "allowed: layer, cell, edep, layer_base, cell_base")
    for key in ("layer", "cell", "edep"):
        if not isinstance(inner[key], str) or not inner[key].strip():
            raise ConfigError(f"mapping {source}: hits of '{name}': '{key}' must be a branch name")
    bases = {}
    for key in ("layer_base", "cell_base"):
        v = inner.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"mapping {source}: hits of '{name}': '{key}' must be an integer (0 or 1)")
        bases[key] = v
    return HitSpec(inner["layer"].strip(), inner["cell"].strip(), inner["edep"].strip(), **bases)


def resolve_branch(name: str, available: Iterable[str]) -> str | None:
    """The file key for a branch name: exact, the last part of a nested path, or dotted (``EcalHit.Plane``
    for ``EcalHit/Plane`` or ``EcalHit/EcalHit.Plane``)."""
    available = list(available)
    if name in available:
        return name
    for key in available:
        if key.split("/")[-1] == name or key.replace("/", ".") == name:
            return key
    return None


#: Tag classes and the label each gives (the schema's: 1 electron, 0 proton).
TAG_CLASSES = {"electron": 1, "proton": 0}
_TAG_COUNTS = ("tagged", "wrong_sign", "truth", "truth_tagged")


@dataclass(frozen=True)
class Tag:
    """Labels for events without truth (flight data) from a selection: an expression per class over schema
    variables (mapped, or derived by amsnb); the events of ``events`` that no class (or both) selects stay
    unlabeled (-1), the DANN target."""
    electron: str
    proton: str
    events: str = "domain == 1"

    def variables(self) -> list[str]:
        out: list[str] = []
        for expr in (self.events, self.electron, self.proton):
            out += [v for v in sorted(_identifiers(expr)) if v not in out]
        return out

    def apply(self, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict]:
        """(labels, counts): the file's labels with the tagged events' replaced; ``counts`` for :func:`tag_summary`
        (per class: tagged, wrong_sign (same selection, rigidity sign flipped), and, where the events carry a truth
        label (simulation), truth and truth_tagged)."""
        label = np.asarray(arrays["label"])
        n = len(label)
        on = np.broadcast_to(_evaluate(self.events, arrays), (n,)).astype(bool)
        truth = np.where(on, label, -1)
        sel = {c: on & np.broadcast_to(_evaluate(getattr(self, c), arrays), (n,)).astype(bool) for c in TAG_CLASSES}
        both = sel["electron"] & sel["proton"]
        out = label.copy()
        out[on] = -1
        counts = {"events": int(on.sum()), "both": int(both.sum()), "with_truth": int((truth >= 0).sum())}
        flipped = {**arrays, "rigidity": -np.asarray(arrays["rigidity"])} if "rigidity" in arrays else None
        for c, code in TAG_CLASSES.items():
            s = sel[c] & ~both
            out[s] = code
            expr = getattr(self, c)
            wrong = None
            if flipped is not None and "rigidity" in _identifiers(expr):
                wrong = int((on & np.broadcast_to(_evaluate(expr, flipped), (n,)).astype(bool) & ~sel[c]).sum())
            counts[c] = {"tagged": int(s.sum()), "wrong_sign": wrong, "truth": int((truth == code).sum()),
                         "truth_tagged": int((s & (truth == code)).sum())}
        return out.astype(label.dtype, copy=False), counts


def add_tag_counts(total: dict, counts: dict) -> dict:
    """Sum two :meth:`Tag.apply` count dicts (``total`` may be empty)."""
    if not total:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in counts.items()}
    for k, v in counts.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                total[k][kk] = None if vv is None or total[k][kk] is None else total[k][kk] + vv
        else:
            total[k] += v
    return total


def tag_summary(counts: dict) -> dict:
    """Per class: tagged events, the tagged fraction of the tag's events, a purity estimate and, where the events
    carry truth (simulation), the true efficiency and purity.

    Purity estimate ("wrong sign"): the events passing the same selection with the rigidity sign flipped stand for
    the tag's background: for electrons (R < 0) the protons that pass the electron criteria, of which only the
    charge-confused ones have R < 0; for protons, the electrons passing the proton criteria. The estimate
    1 - wrong_sign / tagged is a lower bound on the purity while charge confusion stays below 50 % (positrons and
    antiprotons neglected)."""
    n = counts.get("events", 0)
    out = {"events": n, "ambiguous": counts.get("both", 0), "untagged": n - counts.get("both", 0)}
    for c in TAG_CLASSES:
        k = counts.get(c, {})
        tagged, wrong = k.get("tagged", 0), k.get("wrong_sign")
        out["untagged"] -= tagged
        row = {"tagged": tagged, "fraction": tagged / n if n else float("nan"), "wrong_sign": wrong,
               "purity_wrong_sign": (max(0.0, 1.0 - wrong / tagged) if wrong is not None and tagged
                                     else float("nan"))}
        if counts.get("with_truth") == n and n:
            row["efficiency_truth"] = k["truth_tagged"] / k["truth"] if k["truth"] else float("nan")
            row["purity_truth"] = k["truth_tagged"] / tagged if tagged else float("nan")
        out[c] = row
    return out


def tag_text(summary: dict, where: str = "") -> str:
    """The tag's lines for a cut-flow printout (:func:`tag_summary`)."""
    n = summary["events"]
    if not n:
        return f"tag{' on ' + where if where else ''}: applies to no event (no flight events here)"
    lines = [f"tag{' on ' + where if where else ''}: {n} events the tag applies to; {summary['untagged']} untagged "
             f"(-> iss_target), {summary['ambiguous']} selected by both classes (left untagged)"]
    for c in TAG_CLASSES:
        r = summary[c]
        line = f"  {c}s: {r['tagged']} tagged ({100 * r['fraction']:.2f} % of the events)"
        if r["wrong_sign"] is not None:
            line += (f"; wrong-sign estimate: {r['wrong_sign']} events pass with the rigidity sign flipped -> purity "
                     f">= {100 * r['purity_wrong_sign']:.1f} %")
        if "purity_truth" in r:
            line += (f"; truth in the files (simulation): efficiency {100 * r['efficiency_truth']:.1f} %, "
                     f"purity {100 * r['purity_truth']:.1f} %")
        lines.append(line)
    return "\n".join(lines)


def _tag(source: str, spec, schema: TreeSchema) -> Tag:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"mapping {source}: 'tag' must map electron, proton (and optionally events) to expressions")
    unknown = set(spec) - {*TAG_CLASSES, "events"}
    missing = set(TAG_CLASSES) - set(spec)
    if unknown or missing:
        raise ConfigError(f"mapping {source}: tag: " + (f"unknown keys {sorted(unknown)}; " if unknown else "")
                          + (f"missing keys {sorted(missing)}; " if missing else "")
                          + "give electron: EXPR, proton: EXPR and optionally events: EXPR (default domain == 1)")
    exprs = {k: str(spec.get(k, "domain == 1")).strip() for k in (*TAG_CLASSES, "events")}
    for key, expr in exprs.items():
        names = _identifiers(expr)
        bad = sorted(n for n in names if n not in schema or n == "label")
        if bad:
            raise ConfigError(f"mapping {source}: tag {key}: '{expr}' uses {', '.join(bad)}, which "
                              + ("is the label the tag makes" if bad == ["label"] else
                                 f"are not '{schema.tree}' schema variables") + "; use schema names such as "
                              "rigidity, trd_llr, e_over_r, energy (mapped or derived by amsnb)")
        for node in ast.walk(ast.parse(expr, mode="eval")):
            if not isinstance(node, _ALLOWED_NODES):
                raise ConfigError(f"mapping {source}: tag {key}: '{expr}': {type(node).__name__} is not allowed")
    return Tag(**exprs)


@dataclass
class BranchMapping:
    """Schema branch name -> expression in the user's file, plus tree name and unit factors."""
    tree: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)
    source: str = "identity"
    hits: dict[str, HitSpec] = field(default_factory=dict)
    tag: Tag | None = None

    def expression(self, name: str) -> str:
        return self.branches.get(name, name)

    def missing_sources(self, name: str, available: Iterable[str]) -> list[str]:
        """The file branches a *mapped* schema branch names that the file lacks (empty if it is complete)."""
        available = list(available)
        if name in self.hits:
            return [b for b in self.hits[name].names if resolve_branch(b, available) is None]
        expr = self.expression(name)
        if expr == name or expr in available:
            return []
        return sorted(_identifiers(expr) - set(available))

    def is_available(self, name: str, available: Iterable[str]) -> bool:
        if name in self.hits:
            return not self.missing_sources(name, available)
        available = set(available)
        expr = self.expression(name)
        if expr in available:
            return True
        return expr != name and _identifiers(expr) <= available

    def source_branches(self, exprs: Mapping[str, str], available: Iterable[str]) -> list[str]:
        """The file branches needed to compute ``exprs`` (schema name -> expression)."""
        available = set(available)
        needed: list[str] = []
        for expr in exprs.values():
            for b in ([expr] if expr in available else sorted(_identifiers(expr))):
                if b not in needed:
                    needed.append(b)
        return needed

    def evaluate(self, exprs: Mapping[str, str], raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Schema arrays from the file's branches: plain renames, or numpy evaluation of expressions."""
        out = {}
        for name, expr in exprs.items():
            out[name] = raw[expr] if expr in raw else _evaluate(expr, raw)
        return out

    def apply_units(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, factor in self.units.items():
            if name in arrays:
                arrays[name] = (arrays[name] * factor).astype(arrays[name].dtype, copy=False)
        return arrays


def load_mapping(mapping: str | os.PathLike | BranchMapping | Mapping | None, schema: TreeSchema) -> BranchMapping:
    """Load and validate a mapping (path to YAML, dict, BranchMapping or None for identity)."""
    if mapping is None or mapping == "":
        return BranchMapping()
    if isinstance(mapping, BranchMapping):
        spec = {"tree": mapping.tree, "units": mapping.units,
                "branches": {**mapping.branches, **{k: {"hits": vars(h)} for k, h in mapping.hits.items()}},
                "tag": vars(mapping.tag) if mapping.tag else None}
        source = mapping.source
    elif isinstance(mapping, Mapping):
        spec, source = dict(mapping), "dict"
    else:
        import yaml

        path = Path(mapping)
        if not path.exists():
            raise ConfigError(f"mapping file {path} not found (parameter 'mapping'); see docs/mapping.md")
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"mapping file {path} is not valid YAML: {exc}") from None
        source = str(path)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"mapping {source}: expected a YAML mapping with keys tree, branches, units")
    unknown_keys = set(spec) - {"tree", "branches", "units", "description", "tag"}
    if unknown_keys:
        raise ConfigError(f"mapping {source}: unknown keys {sorted(unknown_keys)}; allowed: tree, branches, units, "
                          "tag")
    branches = dict(spec.get("branches") or {})
    units = {k: float(v) for k, v in (spec.get("units") or {}).items()}
    for name in list(branches) + list(units):
        if name not in schema:
            raise ConfigError(f"mapping {source}: '{name}' is not a branch of the '{schema.tree}' schema; "
                              f"branches: {', '.join(schema.names)}")
    hits = {}
    for name, expr in list(branches.items()):
        if isinstance(expr, Mapping):
            if len(schema[name].shape) != 2:
                raise ConfigError(f"mapping {source}: '{name}' is not an image branch; only image branches "
                                  "(e.g. ecal_edep) can be built from hits")
            hits[name] = _hit_spec(source, name, expr)
            del branches[name]
            continue
        if not isinstance(expr, str) or not expr.strip():
            raise ConfigError(f"mapping {source}: branch '{name}' must map to a branch name or expression")
        _identifiers(expr)
    tree = spec.get("tree")
    tag = _tag(source, spec["tag"], schema) if spec.get("tag") else None
    return BranchMapping(tree=str(tree) if tree else None, branches=branches, units=units, source=source,
                         hits=hits, tag=tag)
