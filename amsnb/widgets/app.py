"""What the Voila apps (``widgets/*.ipynb``) share: parameters from the page's address, user paths that resolve
where the user started the server, and errors shown on the page as the one line they are.

- :func:`app_parameters`: ``voila widgets/shower_browser.ipynb`` then
  ``http://127.0.0.1:8866/?data_file=runs/default/data/ecal/mc_high.root&n_events=50`` sets the app's parameters
  without editing the notebook (Voila passes the query string to the kernel as ``QUERY_STRING``); an environment
  variable ``AMSNB_APP_<NAME>`` does the same for a server started for one purpose. Only the parameters the app
  declares are taken; an unknown name is a one-line error.
- :func:`user_path`: Voila (and JupyterLab) start the kernel in the notebook's folder, ``widgets/``, so a path the user
  typed relative to where they started the server was not found. A relative path is looked up first from the
  folder the server was started in (``PWD`` of the launching shell, which the kernel inherits), then from the
  kernel's folder.
- :func:`app_errors`: Voila hides exceptions behind "There was an error when executing cell [2]" (the clear amsnb
  message reached only the server log); inside Voila an :class:`amsnb.errors.AmsnbError` is shown on the page as its
  message, in an element of class ``amsnb-error``. Elsewhere (JupyterLab, papermill) it is raised as always.
- :func:`voila_command` / ``amsnb app NAME -p data_file x.root``: Voila with amsnb's page template (Voila's "lab"
  page without the FontAwesome stylesheets it fetches from a CDN, which fail offline and on many clusters), the
  parameters as ``AMSNB_APP_*`` variables and relative paths from the current folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from urllib.parse import parse_qsl

from ..errors import AmsnbError, ConfigError

ENV_PREFIX = "AMSNB_APP_"
#: The apps, notebooks in the checkout's ``widgets/`` folder.
APPS = ("shower_browser", "cut_explorer", "threshold_tuner")
#: A ``JUPYTER_PATH`` entry holding ``voila/templates/amsnb`` (package data).
TEMPLATE_ROOT = Path(__file__).resolve().parent / "voila"


def in_voila() -> bool:
    """Whether this kernel serves a Voila page (Voila sets ``VOILA_KERNEL_ID`` in the kernel's environment)."""
    return bool(os.environ.get("VOILA_KERNEL_ID") or os.environ.get("VOILA_REQUEST_URL"))


def _parse(text: str, default):
    """A value typed into an address or environment, as the type of the parameter's default."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def app_parameters(namespace: MutableMapping, names: Iterable[str], paths: Iterable[str] = (),
                   environ: MutableMapping | None = None) -> dict:
    """Override the app's parameters (the names of its ``parameters`` cell, in ``namespace``) from the query string
    and from ``AMSNB_APP_<NAME>`` environment variables (the query string wins); resolve the ``paths`` parameters
    with :func:`user_path` (comma-separated lists item by item). Returns what was set, ``{name: value}``."""
    env = os.environ if environ is None else environ
    names = list(names)
    given: dict[str, str] = {}
    for name in names:
        if f"{ENV_PREFIX}{name.upper()}" in env:
            given[name] = env[f"{ENV_PREFIX}{name.upper()}"]
    query = [(k, v) for k, v in parse_qsl(env.get("QUERY_STRING", "") or "", keep_blank_values=True)
             if not k.startswith("voila")]
    for k, v in query:
        if k not in names:
            raise ConfigError(f"address parameter '{k}' is not a parameter of this app; use one of {', '.join(names)}")
        given[k] = v
    out = {}
    for name, text in given.items():
        try:
            out[name] = _parse(text, namespace.get(name))
        except ValueError:
            raise ConfigError(f"parameter '{name}' = '{text}' is not a {type(namespace.get(name)).__name__}; "
                              "fix the address or the environment variable") from None
    namespace.update(out)
    for name in paths:
        value = namespace.get(name)
        if value:
            namespace[name] = ",".join(str(user_path(v.strip(), env)) for v in str(value).split(",") if v.strip())
    return out


def user_path(path: str | os.PathLike, environ: MutableMapping | None = None) -> Path:
    """``path`` as the user meant it: absolute as given; relative, from the folder the server was started in
    (``PWD``) if it exists there, else from the kernel's folder; a glob pattern is resolved the same way by its
    folder. A path found in neither place is returned from the server's folder, so the error names what the user
    typed where they typed it."""
    env = os.environ if environ is None else environ
    p = Path(os.path.expanduser(str(path)))
    if p.is_absolute():
        return p
    bases = [Path(env["PWD"])] if env.get("PWD") else []
    bases.append(Path.cwd())
    for base in bases:
        probe = base / p
        if probe.exists() or (any(c in str(p) for c in "*?[") and probe.parent.exists()):
            return probe
    return bases[0] / p


@contextlib.contextmanager
def app_errors():
    """``with app_errors():`` around an app's body: inside Voila an amsnb error becomes its one-line message on the
    page (``<div class='amsnb-error'>``); elsewhere it propagates unchanged."""
    try:
        yield
    except AmsnbError as exc:
        if not in_voila():
            raise
        from html import escape

        from IPython.display import HTML, display

        display(HTML(f"<div class='amsnb-error' style='color:#bd1f01;font-size:14px;padding:6px 0'>"
                     f"<b>{type(exc).__name__}</b>: {escape(str(exc))}</div>"))


def app_notebook(app: str) -> Path:
    """The notebook of an app (``widgets/<app>.ipynb`` of the checkout amsnb runs from)."""
    if app not in APPS:
        raise ConfigError(f"no app '{app}'; the apps are {', '.join(APPS)}")
    path = Path(__file__).resolve().parents[2] / "widgets" / f"{app}.ipynb"
    if not path.exists():
        raise ConfigError(f"{path}: the app notebook is missing; the apps run from a checkout of amsnb (widgets/)")
    return path


def voila_command(app: str | os.PathLike, port: int, params: dict | None = None, ip: str = "127.0.0.1",
                  cwd: str | os.PathLike | None = None, extra: Iterable[str] = ()) -> tuple[list[str], dict]:
    """``(argv, env)`` that serve an app (a name of :data:`APPS` or a notebook path) with Voila and amsnb's template:
    the parameters ``params`` as ``AMSNB_APP_*`` variables, relative paths read from ``cwd`` (default: here)."""
    import sys

    nb = app_notebook(str(app)) if str(app) in APPS else Path(app)
    env = {**os.environ, "PWD": str(Path(cwd or Path.cwd()).resolve())}
    env["JUPYTER_PATH"] = os.pathsep.join([str(TEMPLATE_ROOT)] + ([env["JUPYTER_PATH"]] if env.get(
        "JUPYTER_PATH") else []))
    for name, value in (params or {}).items():
        env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    argv = [sys.executable, "-m", "voila", str(nb), "--template=amsnb", f"--port={port}", f"--Voila.ip={ip}",
            *extra]
    return argv, env


def serve(app: str, params: dict | None = None, port: int = 8866, open_browser: bool = False) -> int:
    """Run an app's Voila server in the foreground (``amsnb app``); returns its exit code."""
    import subprocess

    nb = app_notebook(app)
    names = _parameter_names(nb)
    unknown = sorted(set(params or {}) - set(names))
    if unknown:
        raise ConfigError(f"{app}: no parameter {', '.join(unknown)}; its parameters are {', '.join(names)}")
    argv, env = voila_command(app, port, params, extra=[] if open_browser else ["--no-browser"])
    print(f"amsnb: serving {nb.name} on http://127.0.0.1:{port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(argv, env=env)


def _parameter_names(nb: Path) -> list[str]:
    """The names assigned in a notebook's cell tagged ``parameters``."""
    import ast
    import json

    cells = json.loads(nb.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)]
