"""pyproject.toml, environment.yml and binder/ list the same packages with the same pins.

No conda runs here, so this parse-and-compare is the check that a conda or Binder user gets the environment
the tests ran in. conda-forge names differ for two packages (pytorch, pytorch_geometric).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch_geometric": "torch-geometric"}
NOT_PACKAGES = {"python", "pip"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pypi_spec(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(==\s*[^;\s]+)?", req)
    return _norm(m.group(1)), (m.group(2) or "").replace("==", "").strip()


def _conda_spec(dep: str) -> tuple[str, str]:
    name, _, rest = dep.partition("=")
    version = rest.split("=")[0] if rest else ""
    return _norm(CONDA_TO_PYPI.get(name.strip(), name.strip())), version.strip()


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(_pypi_spec(r) for r in data["project"]["dependencies"])


def _conda_env(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    assert env.get("channels") == ["conda-forge"], f"{path}: use conda-forge only"
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    out = dict(_conda_spec(d) for d in deps)
    return {k: v for k, v in out.items() if k not in NOT_PACKAGES}


def test_environment_yml_matches_pyproject():
    assert _conda_env(ROOT / "environment.yml") == _pyproject()


def test_binder_matches_pyproject():
    assert _conda_env(ROOT / "binder" / "environment.yml") == _pyproject()
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install" in post and "amsnb" in post and "--profile binder" in post


def test_torch_pinned_to_local_builds():
    deps = _pyproject()
    assert deps["torch"] == "2.14.1" and deps["torchvision"] == "0.29.1"


def test_required_packages_present():
    deps = _pyproject()
    for pkg in ("jupyterlab", "ipywidgets", "torch", "timm", "torch-geometric", "uproot", "awkward", "hist",
                "mplhep", "papermill"):
        assert pkg in deps, pkg


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert blocks, "README must open with a code block holding the two setup commands"
    first = [line.strip() for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]
    assert first == ["make demo", "make test"], first
    assert re.search(r"^\s*(time\s+)?make test\s*$", ci, re.M), ".ci/run must call the README's test command"
