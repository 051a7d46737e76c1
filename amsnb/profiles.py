"""Run profiles (``amsnb/profiles.yaml``): which parameters each notebook gets under smoke/binder/default/full."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")


@cache
def _load() -> dict[str, Any]:
    data = yaml.safe_load(PROFILES_FILE.read_text())
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{PROFILES_FILE}: expected a mapping of profile names")
    return data


def names() -> list[str]:
    return list(_load())


def parameters(profile: str, notebook: str) -> dict[str, Any]:
    """Parameters of ``notebook`` ("01".."07") under ``profile``: the common ones overlaid with its own."""
    data = _load()
    if profile not in data:
        raise ConfigError(f"unknown profile '{profile}' (parameter --profile); known: {', '.join(data)}")
    prof = data[profile] or {}
    out = dict(prof.get("common") or {})
    out.update(prof.get(notebook) or {})
    out["profile"] = profile
    return out


def parse_value(text: str) -> Any:
    """A command-line parameter value: YAML scalars (``3``, ``0.5``, ``true``, ``[a, b]``), else the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
