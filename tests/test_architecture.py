"""The layout of docs/architecture.md holds: the core imports neither study wing, and the wings do not import each
other (statically, and by module name handed to importlib). ``amsnb/cli.py`` is the application layer above both
(it dispatches ``amsnb simulate ecal|nuclei`` and ``amsnb train``), so it is the one module allowed to name them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "amsnb"
WINGS = ("ecal", "nuclei")
APP_LAYER = {"cli.py", "__init__.py"}
MODULE_NAME = re.compile(r"^amsnb\.(ecal|nuclei)(\.\w+)*$")


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module imported by ``path`` (relative imports resolved), plus module-name strings."""
    tree = ast.parse(path.read_text())
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            out.add(root)
            out |= {f"{root}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            out.add(node.value)
    return out


def _wing_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "amsnb" and parts[1] in WINGS else None


def _modules():
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_core_knows_no_wing_and_wings_do_not_know_each_other(path):
    own = _wing_of(_module(path))
    if own is None and path.relative_to(PKG).as_posix() in APP_LAYER:
        return
    named = {w for w in map(_wing_of, _imports(path)) if w}
    if own is None:
        assert not named, f"core module {path.relative_to(PKG)} imports the {named} wing"
    else:
        assert named <= {own}, f"{path.relative_to(PKG)} (wing {own}) imports the {named - {own}} wing"


def test_the_check_sees_imports():
    """The checker itself finds a wing import (so the test above can fail)."""
    names = _imports(PKG / "ecal" / "experiment.py")
    assert any(n.startswith("amsnb.ecal") for n in names) and any(n.startswith("amsnb.train") for n in names)
    assert _wing_of("amsnb.nuclei.model") == "nuclei" and _wing_of("amsnb.train.trainer") is None


def test_no_private_name_is_imported_across_modules():
    """A name with a leading underscore belongs to its module: another module that needs it gets a public name or
    the code moves. A private *module* (``_kernels``, ``_hitkernel``) is its package's own implementation."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = (path.parent / ("../" * (node.level - 1))).resolve() if node.level else None
                for alias in node.names:
                    if not alias.name.startswith("_") or alias.name.startswith("__"):
                        continue
                    target = (base / (node.module or "").replace(".", "/")) if base else None
                    if target is not None and ((target / f"{alias.name}.py").exists()
                                               or (target / alias.name).is_dir()):
                        continue  # a private module of the package
                    found.append(f"{path.relative_to(PKG)}:{node.lineno} imports {alias.name} from "
                                 f"{'.' * node.level}{node.module or ''}")
    assert not found, "private names imported across modules:\n" + "\n".join(found)
