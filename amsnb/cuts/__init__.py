"""Declarative cut sets: the event selection is data (a YAML file), not code in a notebook.

A cut set (``amsnb/cuts/default.yaml``, documented in ``docs/cuts.md``) lists named cuts ``min <= variable <= max``
on schema branches or on ``derived`` arithmetic expressions of branches, with optional per-set windows (the Table-1
energy ranges of seed 000). The same :class:`CutSet` evaluates on numpy arrays (in memory, chunk by chunk) and on
dask-awkward arrays (:mod:`amsnb.cuts.scaleout`), because it only uses numpy ufuncs and comparisons.

Errors are :class:`~amsnb.errors.ConfigError` (a bad file: the message names the cut, key or variable and lists
what is available) and :class:`~amsnb.errors.EmptySelectionError` (a cut emptied a set: the message names it).
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EmptySelectionError
from ..schema import ECAL, TreeSchema

CUTS_DIR = Path(__file__).resolve().parent
_FUNCTIONS = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "exp": np.exp, "minimum": np.minimum,
              "maximum": np.maximum}
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.operator,
            ast.unaryop)
_TOP_KEYS = {"name", "description", "derived", "cuts"}
_CUT_KEYS = {"name", "variable", "min", "max", "doc", "per_set"}


def _parse_expression(name: str, expr: str, source: str) -> ast.Expression:
    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"{source}: derived variable '{name}' = '{expr}' is not a valid expression ({exc.msg})") \
            from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED) or (isinstance(node, ast.Constant) and not isinstance(node.value,
                                                                                              (int, float))):
            raise ConfigError(f"{source}: derived variable '{name}' = '{expr}': {type(node).__name__} is not allowed; "
                              f"use branch names, numbers, + - * / ** and {', '.join(_FUNCTIONS)}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
            raise ConfigError(f"{source}: derived variable '{name}' = '{expr}': only the functions "
                              f"{', '.join(_FUNCTIONS)} are allowed")
    return tree


def _names(tree: ast.Expression) -> set[str]:
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - called


def _number(value, what: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{source}: {what} = {value!r} must be a number (or omitted)")
    return float(value)


@dataclass(frozen=True)
class Cut:
    """Keep events with ``min <= value <= max`` (a missing bound is open); ``per_set`` overrides the window."""

    name: str
    variable: str
    min: float | None = None
    max: float | None = None
    doc: str = ""
    per_set: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def window(self, set_name: str | None = None) -> tuple[float | None, float | None]:
        if set_name is not None and set_name in self.per_set:
            return tuple(self.per_set[set_name])
        return self.min, self.max

    def passes(self, values, set_name: str | None = None):
        """Boolean mask (numpy or dask-awkward, like ``values``)."""
        lo, hi = self.window(set_name)
        mask = None
        if lo is not None:
            mask = values >= lo
        if hi is not None:
            upper = values <= hi
            mask = upper if mask is None else mask & upper
        return values == values if mask is None else mask  # no bound: keep all (NaN fails, as for any cut)

    def describe(self, set_name: str | None = None) -> str:
        lo, hi = self.window(set_name)
        if lo is not None and hi is not None:
            return f"{lo:.4g} <= {self.variable} <= {hi:.4g}"
        if lo is not None:
            return f"{self.variable} >= {lo:.4g}"
        return f"{self.variable} <= {hi:.4g}" if hi is not None else f"{self.variable} (no bound)"


@dataclass(frozen=True)
class CutSet:
    """An ordered list of cuts plus the derived variables they use (validated against a schema)."""

    name: str
    cuts: tuple[Cut, ...]
    derived: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    source: str = "<dict>"
    schema: TreeSchema = ECAL

    def __post_init__(self):
        self._validate()

    # ---------------------------------------------------------------------------------- validation
    def _validate(self) -> None:
        scalars = sorted(b.name for b in self.schema.branches if not b.shape)
        trees = {}
        object.__setattr__(self, "_trees", trees)
        for dname, expr in self.derived.items():
            if dname in self.schema:
                raise ConfigError(f"{self.source}: derived variable '{dname}' shadows a schema branch; rename it")
            tree = _parse_expression(dname, expr, self.source)
            for ident in sorted(_names(tree)):
                if ident not in scalars:
                    raise ConfigError(self._unknown(ident, f"derived variable '{dname}'", scalars))
            trees[dname] = tree
        seen = set()
        available = scalars + sorted(self.derived)
        for cut in self.cuts:
            if cut.name in seen:
                raise ConfigError(f"{self.source}: two cuts are named '{cut.name}'; cut names must be unique")
            seen.add(cut.name)
            if cut.variable not in available:
                raise ConfigError(self._unknown(cut.variable, f"cut '{cut.name}'", available))
            for where, (lo, hi) in [("", (cut.min, cut.max))] + [(f" per_set {k}", v) for k, v in cut.per_set.items()]:
                if lo is not None and hi is not None and lo > hi:
                    raise ConfigError(f"{self.source}: cut '{cut.name}'{where}: min {lo} > max {hi}; "
                                      "swap them or remove one bound")

    def _unknown(self, name: str, who: str, available: list[str]) -> str:
        hint = difflib.get_close_matches(name, available, n=3)
        return (f"{self.source}: {who} uses '{name}', which is neither a scalar schema branch nor a derived variable"
                + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                + f". Available: {', '.join(available)}")

    # ---------------------------------------------------------------------------------- evaluation
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cuts]

    def __getitem__(self, name: str) -> Cut:
        for c in self.cuts:
            if c.name == name:
                return c
        hint = difflib.get_close_matches(name, self.names, n=3)
        raise ConfigError(f"cut set '{self.name}' has no cut '{name}'" + (f" (did you mean {', '.join(hint)}?)"
                                                                          if hint else "")
                          + f"; cuts: {', '.join(self.names)}")

    def branches(self) -> list[str]:
        """The schema branches the cuts read."""
        out = set()
        for cut in self.cuts:
            out |= _names(self._trees[cut.variable]) if cut.variable in self.derived else {cut.variable}
        return sorted(out)

    def values(self, arrays, variable: str):
        """Value of a cut variable (a branch or a derived expression) on numpy or dask-awkward arrays."""
        if variable not in self.derived:
            return arrays[variable]
        tree = self._trees[variable]
        scope = {**_FUNCTIONS, **{n: arrays[n] for n in _names(tree)}}
        return eval(compile(tree, f"<cut {variable}>", "eval"), {"__builtins__": {}}, scope)

    def masks(self, arrays, set_name: str | None = None) -> dict:
        """``{cut name: mask}`` of each cut on its own (not cumulative)."""
        try:
            return {c.name: c.passes(self.values(arrays, c.variable), set_name) for c in self.cuts}
        except KeyError as exc:
            have = sorted(arrays.keys()) if hasattr(arrays, "keys") else sorted(getattr(arrays, "fields", []))
            raise ConfigError(f"cut set '{self.name}': the events lack branch {exc}; they hold {', '.join(have)}. "
                              "Read them with the branches of CutSet.branches()") from None

    # ---------------------------------------------------------------------------------- editing, identity
    def with_window(self, cut_name: str, min: float | None = ..., max: float | None = ...,
                    set_name: str | None = None) -> CutSet:
        """A copy with one cut's window changed (for ``set_name``'s per-set window when it has one)."""
        cut = self[cut_name]
        lo, hi = cut.window(set_name)
        lo = lo if min is ... else min
        hi = hi if max is ... else max
        if set_name is not None and set_name in cut.per_set:
            new = replace(cut, per_set={**cut.per_set, set_name: (lo, hi)})
        else:
            new = replace(cut, min=lo, max=hi)
        return replace(self, cuts=tuple(new if c.name == cut_name else c for c in self.cuts))

    def text(self, set_name: str | None = None) -> str:
        """The cuts as a readable list (window for ``set_name``, and what each is for)."""
        lines = [f"cut set '{self.name}' ({self.source})" + (f", windows of set '{set_name}'" if set_name else "")]
        lines += [f"  {d} = {e}" for d, e in self.derived.items()]
        lines += [f"  {i + 1}. {c.name:<15} {c.describe(set_name):<32} {c.doc}" for i, c in enumerate(self.cuts)]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        cuts = []
        for c in self.cuts:
            d = {"name": c.name, "variable": c.variable, "min": c.min, "max": c.max, "doc": c.doc}
            if c.per_set:
                d["per_set"] = {k: list(v) for k, v in c.per_set.items()}
            cuts.append(d)
        return {"name": self.name, "description": self.description, "derived": dict(self.derived), "cuts": cuts}

    def digest(self) -> str:
        """Hash of what the cuts do (names, variables, windows, expressions; not the prose)."""
        d = self.to_dict()
        d.pop("description")
        for c in d["cuts"]:
            c.pop("doc")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def from_dict(data: Mapping, source: str = "<dict>", schema: TreeSchema = ECAL) -> CutSet:
    """Build and validate a cut set from parsed YAML."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a cut set is a mapping with keys {sorted(_TOP_KEYS)}, got {type(data).__name__}")
    extra = set(data) - _TOP_KEYS
    if extra:
        raise ConfigError(f"{source}: unknown keys {sorted(extra)}; allowed: {sorted(_TOP_KEYS)}")
    raw_cuts = data.get("cuts")
    if not isinstance(raw_cuts, list) or not raw_cuts:
        raise ConfigError(f"{source}: 'cuts' must be a non-empty list of cuts (name, variable, min/max)")
    derived = data.get("derived") or {}
    if not isinstance(derived, Mapping):
        raise ConfigError(f"{source}: 'derived' must map names to expressions")
    cuts = []
    for i, rc in enumerate(raw_cuts):
        if not isinstance(rc, Mapping):
            raise ConfigError(f"{source}: cut #{i + 1} must be a mapping with keys {sorted(_CUT_KEYS)}")
        label = rc.get("name", f"#{i + 1}")
        bad = set(rc) - _CUT_KEYS
        if bad:
            raise ConfigError(f"{source}: cut '{label}' has unknown keys {sorted(bad)}; allowed: {sorted(_CUT_KEYS)}")
        for key in ("name", "variable"):
            if not isinstance(rc.get(key), str) or not rc.get(key):
                raise ConfigError(f"{source}: cut '{label}' needs a '{key}' (a string)")
        lo = _number(rc.get("min"), f"cut '{label}' min", source)
        hi = _number(rc.get("max"), f"cut '{label}' max", source)
        per_set = {}
        for set_name, win in (rc.get("per_set") or {}).items():
            if not isinstance(win, (list, tuple)) or len(win) != 2:
                raise ConfigError(f"{source}: cut '{label}' per_set '{set_name}' must be [min, max] "
                                  "(null for an open side)")
            per_set[str(set_name)] = (_number(win[0], f"cut '{label}' per_set {set_name} min", source),
                                      _number(win[1], f"cut '{label}' per_set {set_name} max", source))
        if lo is None and hi is None and not per_set:
            raise ConfigError(f"{source}: cut '{label}' has neither min nor max; give at least one bound")
        cuts.append(Cut(rc["name"], rc["variable"], lo, hi, str(rc.get("doc", "")).strip(), per_set))
    return CutSet(str(data.get("name", Path(source).stem)), tuple(cuts), {str(k): str(v) for k, v in derived.items()},
                  str(data.get("description", "")).strip(), source, schema)


def available() -> list[str]:
    """Names of the cut sets shipped with amsnb (``amsnb/cuts/*.yaml``)."""
    return sorted(p.stem for p in CUTS_DIR.glob("*.yaml"))


def load(cuts: str | os.PathLike | Mapping | CutSet = "default", schema: TreeSchema = ECAL) -> CutSet:
    """A cut set from a shipped name ("default"), a YAML path, a parsed mapping, or a CutSet (returned as is)."""
    import yaml

    if isinstance(cuts, CutSet):
        return cuts
    if isinstance(cuts, Mapping):
        return from_dict(cuts, schema=schema)
    text = str(cuts)
    path = CUTS_DIR / f"{text}.yaml" if text in available() else Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"cut set '{text}': no such file, and not a shipped cut set ({', '.join(available())}). "
                          "Pass a YAML path (see docs/cuts.md)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return from_dict(data, str(path), schema)


def select(arrays: Mapping[str, np.ndarray], cutset: CutSet | str = "default", set_name: str | None = None,
           what: str = "events") -> dict[str, np.ndarray]:
    """The events with finite values passing every cut; raises :class:`EmptySelectionError` naming the cut (or
    the "finite" step) that emptied them."""
    cutset = load(cutset)
    n0 = len(next(iter(arrays.values()))) if arrays else 0
    where = f"{what}" + (f" of set '{set_name}'" if set_name else "")
    if n0 == 0:
        raise EmptySelectionError(f"{where}: no events before any cut; check the input files")
    keep, nonfinite = finite_mask(arrays)
    if not keep.any():
        raise EmptySelectionError(f"{where}: no event has all its values finite (NaN/inf events per branch: "
                                  f"{nonfinite}); check the input files")
    for name, mask in cutset.masks(arrays, set_name).items():
        keep &= np.asarray(mask)
        if not keep.any():
            cut = cutset[name]
            raise EmptySelectionError(f"{where}: cut '{name}' ({cut.describe(set_name)}) left no events "
                                      f"({n0} before the cuts). Loosen it in the cut set '{cutset.source}'")
    return {k: v[keep] for k, v in arrays.items()}


from .flow import FINITE, CutFlow, NMinusOne, cut_flow, cut_flow_files, finite_mask, n_minus_one  # noqa: E402

__all__ = ["Cut", "CutSet", "CutFlow", "NMinusOne", "load", "from_dict", "available", "select", "cut_flow",
           "cut_flow_files", "n_minus_one", "finite_mask", "FINITE", "CUTS_DIR"]
