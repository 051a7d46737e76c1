"""amsnb: particle identification for AMS-02 in Jupyter.

The package backs the numbered notebook series in ``notebooks/``. Submodules are imported lazily
(``amsnb.io``, ``amsnb.ecal``, ``amsnb.nuclei``, ...) so ``import amsnb`` stays fast and does not pull in torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_SUBMODULES = {"io", "derive", "schema", "mapping", "errors", "runner", "profiles", "notebook", "cuts", "models",
               "train", "metrics", "tables", "working_points", "plotting", "widgets", "scores", "workdir", "provenance",
               "export", "ecal", "nuclei"}


def _wire_derivations() -> None:
    """The wing module that registers each schema tree's derived branches (:mod:`amsnb.derive`), imported on use."""
    from . import derive

    derive.provide("ecal", "amsnb.ecal.derived")


_wire_derivations()


def __getattr__(name):
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'amsnb' has no attribute '{name}'")
