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
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from urllib.parse import parse_qsl

from ..errors import AmsnbError, ConfigError

ENV_PREFIX = "AMSNB_APP_"


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
