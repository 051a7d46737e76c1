"""Schema branches amsnb computes itself when a file has them neither mapped nor present.

Flat AMS ntuples carry the ECAL cells but few of amsnb's shower-shape variables; amsnb knows how to compute them
(the code the simulation uses). A study wing registers, per schema tree, its :class:`Derivation` s: which branches
it computes from which others. A reader asks :func:`plan` which wanted branches the file lacks but can be derived
(from branches the file has, or that are themselves derived), reads the inputs, and applies the steps in order;
``amsnb check`` lists those branches as "derived by amsnb". Branches the file has always come from the file.

The core knows only this registry. The application layer (``amsnb/__init__.py``) names, per tree, the module that
fills it, imported on first use, so reading a file never imports a wing it does not need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module

import numpy as np


@dataclass(frozen=True)
class Derivation:
    """``compute(arrays)`` returns (at least) ``outputs`` from ``arrays`` holding (at least) ``inputs``."""
    by: str  # who computes it, as the user reads it: "amsnb.ecal.reco.reconstruct (the simulation's code)"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    compute: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


_PROVIDERS: dict[str, str] = {}
_REGISTRY: dict[str, list[Derivation]] = {}


def provide(tree: str, module: str) -> None:
    """Name the module whose import registers the derivations of schema tree ``tree`` (app layer)."""
    _PROVIDERS[tree] = module


def register(tree: str, derivation: Derivation) -> None:
    """Add a derivation for ``tree`` (called by a wing module at import)."""
    if derivation not in _REGISTRY.setdefault(tree, []):
        _REGISTRY[tree].append(derivation)


def derivations(tree: str) -> list[Derivation]:
    module = _PROVIDERS.pop(tree, None)
    if module is not None:
        import_module(module)
    return list(_REGISTRY.get(tree, []))


@dataclass
class Plan:
    """How to produce the wanted branches: ``read`` from the file, then ``steps`` in order, giving ``derived``."""
    read: list[str] = field(default_factory=list)
    steps: list[tuple[Derivation, list[str]]] = field(default_factory=list)  # (derivation, the outputs it gives)
    derived: dict[str, Derivation] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # wanted, not in the file, not derivable

    def apply(self, arrays: dict[str, np.ndarray], dtypes: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
        """Add the derived branches to ``arrays`` (a chunk holding ``read``), cast to the schema's dtypes."""
        for d, names in self.steps:
            out = d.compute(arrays)
            for name in names:
                arrays[name] = np.asarray(out[name]).astype(dtypes[name], copy=False)
        return arrays


def plan(tree: str, wanted: Iterable[str], available: Callable[[str], bool]) -> Plan:
    """Plan reading ``wanted``: a branch ``available`` in the file is read; one that is not but that a registered
    derivation can compute (recursively) is derived; the rest are listed in ``missing``."""
    by_output: dict[str, Derivation] = {}
    for d in derivations(tree):
        for name in d.outputs:
            by_output.setdefault(name, d)
    p = Plan()
    order: list[Derivation] = []
    gives: dict[Derivation, list[str]] = {}

    def can_make(name: str, seen: frozenset) -> bool:
        if name in p.read or name in p.derived:
            return True
        if available(name):
            p.read.append(name)
            return True
        d = by_output.get(name)
        if d is None or name in seen or not all(can_make(i, seen | {name}) for i in d.inputs):
            return False
        if d not in gives:
            gives[d] = []
            order.append(d)
        gives[d].append(name)
        p.derived[name] = d
        return True

    for name in wanted:
        if not can_make(name, frozenset()):
            p.missing.append(name)
    p.steps = [(d, gives[d]) for d in order]
    return p
