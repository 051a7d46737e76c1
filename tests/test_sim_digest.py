"""``generator_digest`` (the code version stamped on every simulated Table-1 file) covers exactly the source that
determines the events (``amsnb/ecal/sim/digest.py``): an edit of the parallel engine, the file writing or the CLI
keeps the cached samples, an edit of the physics, the event loop and chunk seeding, the Table-1 preset, the numba
kernels, the reconstruction or the ECAL schema regenerates them. No real file is edited: the digest's one file
reader (``digest._read_source``) is wrapped to return an edited text."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from amsnb import schema
from amsnb.ecal.sim import digest

PKG = digest.PACKAGE_DIR

#: What determines the events (this test's own list, so a file dropped from ``DIGEST_FILES`` fails here).
DETERMINE_EVENTS = (
    "ecal/sim/physics.py",  # constants, domains, proton model, showers, readout, tracker, TRD
    "ecal/sim/events.py",  # simulate(): stream, blocks, weights, schema arrays; the seed of chunk k
    "ecal/sim/table1.py",  # set specs (domain, range, labeled), a set's chunk seeds, shuffle, truth blanking
    "ecal/_kernels.py",  # numba kernels of showers, readout, reconstruction
    "ecal/reco.py",  # the reconstructed branches written with the cells
)
#: Modules of the simulation that change speed, plumbing or bookkeeping, never an event.
NO_EVENTS = (
    "ecal/sim/engine.py",  # worker pool, shared memory, malloc tuning, ROOT baskets, progress bars
    "ecal/sim/artefacts.py",  # sizes, write_set, generate_table1 (their choices are in each file's request)
    "ecal/sim/digest.py",
    "ecal/sim/cli.py",
    "ecal/sim/__init__.py",
)
#: Modules of amsnb that a covered file may import without being covered itself: the schema is covered by its
#: values (``digest._schema_text``), the errors only carry messages.
UNCOVERED_IMPORTS_ALLOWED = {"amsnb.schema", "amsnb.errors"}


def _module_name(rel: str) -> str:
    parts = ["amsnb", *Path(rel).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _edit(monkeypatch, target: str | None) -> list[str]:
    """Make the digest read every real source, with one comment line appended to ``target``'s; returns the list
    of files it reads."""
    real, seen = digest._read_source, []

    def read(rel: str) -> bytes:
        seen.append(rel)
        text = real(rel)
        return text + b"\n# an edit\n" if rel == target else text

    monkeypatch.setattr(digest, "_read_source", read)
    return seen


def test_covered_files_exist_and_the_engine_is_not_among_them():
    assert set(digest.DIGEST_FILES) == set(DETERMINE_EVENTS)
    assert "ecal/sim/engine.py" not in digest.DIGEST_FILES
    for rel in digest.DIGEST_FILES:
        assert (PKG / rel).is_file(), rel
    # every module of the simulation package is classified, so a new one is a decision, not an accident
    sim_modules = {p.relative_to(PKG).as_posix() for p in (PKG / "ecal" / "sim").glob("*.py")}
    assert sim_modules == {r for r in DETERMINE_EVENTS + NO_EVENTS if r.startswith("ecal/sim/")}
    d = digest.generator_digest()
    assert len(d) == 16 and int(d, 16) >= 0 and d == digest.generator_digest()


@pytest.mark.parametrize("rel", NO_EVENTS)
def test_an_engine_edit_keeps_the_digest(monkeypatch, rel):
    base = digest.generator_digest()
    seen = _edit(monkeypatch, rel)
    assert digest.generator_digest() == base
    assert set(DETERMINE_EVENTS) <= set(seen)  # the edited reader was the one used


@pytest.mark.parametrize("rel", DETERMINE_EVENTS)
def test_an_edit_of_what_makes_the_events_changes_the_digest(monkeypatch, rel):
    base = digest.generator_digest()
    _edit(monkeypatch, rel)
    assert digest.generator_digest() != base


def test_the_ecal_schema_is_covered_and_the_other_trees_are_not(monkeypatch):
    base = digest.generator_digest()
    other = dataclasses.replace(schema.NUCLEI, branches=schema.NUCLEI.branches[:-1])
    monkeypatch.setattr(schema, "NUCLEI", other)
    assert digest.generator_digest() == base
    docs = tuple(dataclasses.replace(b, doc="reworded") for b in schema.ECAL.branches)
    monkeypatch.setattr(schema, "ECAL", dataclasses.replace(schema.ECAL, branches=docs))
    assert digest.generator_digest() == base  # a branch's documentation changes no event
    wider = tuple(dataclasses.replace(b, dtype="float64") if b.name == "energy" else b for b in docs)
    monkeypatch.setattr(schema, "ECAL", dataclasses.replace(schema.ECAL, branches=wider))
    assert digest.generator_digest() != base
    monkeypatch.setattr(schema, "ECAL", dataclasses.replace(schema.ECAL, branches=docs))
    monkeypatch.setattr(schema, "LAYER_VIEW", tuple({"x": "y", "y": "x"}[v] for v in schema.LAYER_VIEW))
    assert digest.generator_digest() != base


def _amsnb_imports(rel: str) -> set[str]:
    """The amsnb modules ``amsnb/<rel>`` imports (relative imports resolved; ``from . import x`` gives the module
    ``x`` when it is one)."""
    pkg = _module_name(rel).rsplit(".", 1)[0] if not rel.endswith("__init__.py") else _module_name(rel)
    out = set()
    for node in ast.walk(ast.parse((PKG / rel).read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("amsnb")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            if not root.startswith("amsnb"):
                continue
            subs = {f"{root}.{a.name}" for a in node.names}
            subs = {s for s in subs if _is_module(s)}
            out |= subs or {root}
    return out


def _is_module(name: str) -> bool:
    path = PKG.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_covered_code_imports_only_covered_code():
    """What the covered files call is covered too: none of them reaches into the engine (or any other uncovered
    module), which could otherwise change events unseen."""
    covered = {_module_name(r) for r in digest.DIGEST_FILES}
    for rel in digest.DIGEST_FILES:
        uncovered = _amsnb_imports(rel) - covered - UNCOVERED_IMPORTS_ALLOWED
        assert not uncovered, f"{rel} imports {uncovered}, which the digest does not cover"
    # the checker sees imports (so the assertion above can fail)
    assert "amsnb.ecal.sim.engine" in _amsnb_imports("ecal/sim/artefacts.py")
    assert {"amsnb.ecal.sim.physics", "amsnb.ecal.reco", "amsnb.errors"} <= _amsnb_imports("ecal/sim/events.py")
