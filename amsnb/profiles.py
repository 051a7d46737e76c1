"""Run profiles (``amsnb/profiles.yaml``): the one source of every notebook parameter.

``default`` holds every parameter of every notebook; ``smoke``, ``binder`` and ``full`` inherit it and change what
they list. A notebook's ``parameters`` cell declares its parameters at ``None`` (only ``profile`` has a value) and
its next cell calls :func:`notebook_parameters`: each ``None`` takes the profile's value; what the cell, ``amsnb run
-p`` or plain ``papermill -p`` sets explicitly overrides it. So a notebook opened in JupyterLab and run as it is
makes the same request as ``amsnb run --profile default``, and ``profile = "smoke"`` in its cell gives the smoke
sizes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
#: The profile every other one inherits; it holds a value for every parameter.
BASE = "default"
#: Parameters every notebook has that are not profile values.
RUN_PARAMETERS = ("profile", "workdir")
#: Parameters that accept more than one kind of value (a file list may also be a glob string or {set: files}).
FLEXIBLE_TYPES: dict[str, tuple[type, ...]] = {"input_files": (list, str, dict), "mapping": (str, dict)}


@cache
def _load() -> dict[str, Any]:
    data = yaml.safe_load(PROFILES_FILE.read_text())
    if not isinstance(data, dict) or BASE not in data:
        raise ConfigError(f"{PROFILES_FILE}: expected a mapping of profile names with a '{BASE}' profile")
    return data


def names() -> list[str]:
    return list(_load())


def _check_profile(profile: str) -> dict:
    data = _load()
    if profile not in data:
        raise ConfigError(f"unknown profile '{profile}' (parameter profile / --profile); known: {', '.join(data)}")
    return data[profile] or {}


def parameters(profile: str, notebook: str) -> dict[str, Any]:
    """Every parameter of ``notebook`` ("01".."08") under ``profile``, ``profile`` included: ``default``'s common
    and notebook values, overlaid by the profile's common and notebook values."""
    prof = _check_profile(profile)
    base = _load()[BASE]
    out: dict[str, Any] = {}
    for layer in (base, prof) if profile != BASE else (base,):
        out.update(layer.get("common") or {})
        out.update(layer.get(notebook) or {})
    out["profile"] = profile
    return out


def default_workdir(profile: str) -> Path:
    """``runs/<profile>`` of the checkout (the folder holding ``notebooks/`` beside the package: a source or an
    editable install, as ``make demo`` and Binder have), else of the current folder. The same folder whether the
    series runs from ``amsnb run`` at the root, from JupyterLab in ``notebooks/`` or from papermill anywhere."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "notebooks").is_dir():
        root = Path.cwd()
    return root / "runs" / profile


_TYPE_WORDS = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


def expected_types(name: str, default: Any) -> tuple[type, ...]:
    """The kinds of value parameter ``name`` takes: its flexible kinds, else the kind of its ``default``-profile
    value (an integer is a number too)."""
    if name in FLEXIBLE_TYPES:
        return FLEXIBLE_TYPES[name]
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (float, int)
    return (type(default),)


def check_value(notebook: str, name: str, value: Any, source: str = "parameter", label: str = "") -> None:
    """ConfigError naming the parameter, the notebook and the expected kind when ``value`` is not of the kind of
    the ``default`` profile's value (``-p epochs abc``). Unknown names are the caller's business."""
    base = parameters(BASE, notebook)
    if name not in base or name in RUN_PARAMETERS:
        return
    kinds = expected_types(name, base[name])
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if isinstance(value, tuple) and list in kinds:
        ok = True
    if not ok:
        words = " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)
        raise ConfigError(f"{source} {name} {value!r}: {label or 'notebook ' + notebook} expects {words} (the "
                          f"default profile has {name}: {base[name]!r}, amsnb/profiles.yaml)")


class Parameters(Mapping):
    """The resolved parameters of one notebook run, read-only: ``p.seed`` or ``p["seed"]``; ``p.source(name)``
    says where a value came from ("profile smoke" or "set here")."""

    def __init__(self, notebook: str, values: dict[str, Any], explicit: set[str]):
        object.__setattr__(self, "_nb", notebook)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_explicit", frozenset(explicit))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"notebook {self._nb} has no parameter '{name}'") from None

    def __setattr__(self, name, value):
        raise AttributeError("notebook parameters are read-only: set them in the parameters cell or with -p")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def source(self, name: str) -> str:
        return "set here" if name in self._explicit else f"profile {self._values['profile']}"

    @property
    def explicit(self) -> frozenset[str]:
        """The names set in the cell, by ``-p`` or by papermill instead of taken from the profile."""
        return self._explicit

    def __repr__(self) -> str:
        own = sorted(self._explicit - set(RUN_PARAMETERS))
        head = (f"notebook {self._nb}, profile '{self.profile}' (amsnb/profiles.yaml), workdir {self.workdir}; "
                + (f"set here: {', '.join(own)}" if own else "every other value from the profile"))
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items() if k not in RUN_PARAMETERS)
        return head + "\n" + body


def notebook_parameters(notebook: str, namespace: Mapping[str, Any]) -> Parameters:
    """The parameters of ``notebook`` from its ``parameters`` cell's ``namespace`` (``globals()``): ``profile``
    chooses the profile; each parameter left at None takes the profile's value; anything else overrides it and is
    checked for its kind (ConfigError naming the parameter). ``workdir`` None is :func:`default_workdir`.
    A common parameter reaches the notebooks whose cell declares it."""
    profile = namespace.get("profile") or BASE
    # the common values go to the notebooks that declare them (in their cell), as with amsnb run
    values = {k: v for k, v in parameters(profile, notebook).items() if k in namespace or k == "profile"}
    explicit = set()
    for name in values:
        if name == "profile":
            continue
        given = namespace.get(name)
        if given is not None:
            check_value(notebook, name, given, "parameter")
            values[name] = list(given) if isinstance(given, tuple) else given
            explicit.add(name)
    workdir = namespace.get("workdir")
    values["workdir"] = str(workdir) if workdir else str(default_workdir(profile))
    if workdir:
        explicit.add("workdir")
    return Parameters(notebook, values, explicit)


def parse_value(text: str) -> Any:
    """A command-line parameter value: YAML scalars (``3``, ``0.5``, ``true``, ``[a, b]``), else the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
