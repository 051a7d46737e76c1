"""The notebook series and the Voila apps are stored clean: no outputs, a `parameters` cell, a prose header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "widgets").glob("*.ipynb"))


def test_series_exists():
    names = [p.name[:2] for p in NOTEBOOKS if p.parent.name == "notebooks"]
    assert names == sorted(set(names)) and names[:1] == ["01"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    src = "".join(tagged[0]["source"])
    if path.parent.name == "notebooks":
        for name in ("profile", "workdir", "seed"):
            assert f"{name} =" in src, f"parameter '{name}' missing"
        first = nb["cells"][0]
        text = "".join(first["source"]).lower()
        assert first["cell_type"] == "markdown" and "input" in text and "output" in text, "prose header"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "amsnb"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parent.name == "notebooks"], ids=lambda p: p.name)
def test_no_function_definitions_in_notebooks(path):
    """Logic lives in amsnb: a notebook is a story of calls, plots and prose."""
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            src = "".join(c["source"])
            assert "\ndef " not in "\n" + src and "\nclass " not in "\n" + src, src[:200]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_paired_script_is_in_sync(path):
    """Every notebook has a jupytext ``py:percent`` twin beside it (reviewable diffs of the story, as in the IRIS-HEP
    AGC), with the same cells. After editing either one: ``jupytext --sync notebooks/*.ipynb widgets/*.ipynb``."""
    import jupytext

    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} missing: run jupytext --set-formats ipynb,py:percent {path}"
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("jupytext", {}).get("formats") == "ipynb,py:percent", "pairing metadata missing"
    twin = jupytext.read(script, fmt="py:percent")

    def cells(cs):
        return [(c["cell_type"], "".join(c["source"]).strip(), tuple(c.get("metadata", {}).get("tags", [])))
                for c in cs]

    got, want = cells(twin.cells), cells(nb["cells"])
    assert got == want, (f"{script.name} and {path.name} differ (first at cell "
                         f"{next(i for i, (a, b) in enumerate(zip(got + [None], want + [None])) if a != b)}): "
                         "run jupytext --sync on it")
