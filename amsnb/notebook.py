"""What every notebook of the series does first, in one call: ``p, wd = start("04", globals())``.

Its parameters (the chosen profile's values, overridden by what the cell, ``amsnb run -p`` or papermill set:
:func:`amsnb.profiles.notebook_parameters`), the plotting style, its run folder, and ``fresh`` (recompute what the
run folder holds from before this run). It prints the parameters it resolved, so an executed notebook shows the
values it ran with and which ones were set by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .profiles import Parameters, notebook_parameters
from .workdir import Workdir


def start(notebook: str, namespace: Mapping[str, Any], show: bool = True) -> tuple[Parameters, Workdir]:
    """(parameters, run folder) of notebook ``notebook`` ("01".."08") from its parameters cell's ``globals()``."""
    from . import plotting, provenance

    p = notebook_parameters(notebook, namespace)
    plotting.use_style()
    if p.get("fresh"):
        provenance.request_fresh()  # what this run remakes is reused; everything older is recomputed
    if show:
        print(p)
    return p, Workdir(p.workdir)
