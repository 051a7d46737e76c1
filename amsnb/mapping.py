"""Branch mappings: read a user's AMS ntuple, whose branch names differ, through the amsnb schema.

A mapping is a small YAML file (documented example: ``amsnb/data/example_mapping.yaml``)::

    tree: amstree                 # tree name in the user's file (default: the schema's own)
    branches:                     # schema name: branch name, or an expression of branches
      energy: EcalEnergyD
      e_over_r: EcalEnergyD / abs(TrRigidity)
    units:                        # optional multiplicative factors to the schema's units
      energy: 0.001               # file in MeV, schema in GeV

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
                  ast.operator, ast.unaryop, ast.cmpop, ast.Subscript, ast.Slice, ast.Tuple)


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
    return np.asarray(eval(compile(tree, "<mapping>", "eval"), {"__builtins__": {}}, {**_NUMPY, **raw}))


@dataclass
class BranchMapping:
    """Schema branch name -> expression in the user's file, plus tree name and unit factors."""
    tree: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)
    source: str = "identity"

    def expression(self, name: str) -> str:
        return self.branches.get(name, name)

    def is_available(self, name: str, available: Iterable[str]) -> bool:
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
        spec, source = {"tree": mapping.tree, "branches": mapping.branches, "units": mapping.units}, mapping.source
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
    unknown_keys = set(spec) - {"tree", "branches", "units", "description"}
    if unknown_keys:
        raise ConfigError(f"mapping {source}: unknown keys {sorted(unknown_keys)}; allowed: tree, branches, units")
    branches = dict(spec.get("branches") or {})
    units = {k: float(v) for k, v in (spec.get("units") or {}).items()}
    for name in list(branches) + list(units):
        if name not in schema:
            raise ConfigError(f"mapping {source}: '{name}' is not a branch of the '{schema.tree}' schema; "
                              f"branches: {', '.join(schema.names)}")
    for name, expr in branches.items():
        if not isinstance(expr, str) or not expr.strip():
            raise ConfigError(f"mapping {source}: branch '{name}' must map to a branch name or expression")
        _identifiers(expr)
    tree = spec.get("tree")
    return BranchMapping(tree=str(tree) if tree else None, branches=branches, units=units, source=source)
