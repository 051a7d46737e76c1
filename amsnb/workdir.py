"""The run folder: every arrow of the data flow is a file here (see docs/architecture.md).

Layout of a workdir::

    data/ecal/*.root        raw simulated (or user) ECAL samples           notebook 01
    sets/*.root             selected Table-1 sets + sets/manifest.json     notebook 02
    models/<tag>/           trained models (safetensors + config JSON)     notebooks 03, 04, 06
    scores/<model>/<set>.root  common score format                         notebooks 03, 04, 06
    data/nuclei/*.root      simulated nuclei samples                       notebook 06
    NN_name/metrics.json    each notebook's key figures (regression suite)
    NN_name/figures/*.png   each notebook's figures

Every artefact carries a stamp of what made it (``<name>.stamp.json``, :mod:`amsnb.provenance`). Reading a
Workdir creates nothing: its properties are paths; folders are made by whatever writes into them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

NOTEBOOK_DIRS = {
    "01": "01_shower_exploration",
    "02": "02_cut_studies",
    "03": "03_classical_baselines",
    "04": "04_dann_training",
    "05": "05_evaluation",
    "06": "06_nuclei_mda",
    "07": "07_below_l1_background",
    "08": "08_learning_curve",
}


class Workdir:
    """Paths of one run folder. Nothing is created by constructing or reading it; writers make their folders."""

    def __init__(self, path: str | os.PathLike = "runs/default"):
        self.path = Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Workdir('{self.path}')"

    def __str__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.is_dir()

    def _sub(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    @property
    def ecal_data(self) -> Path:
        return self._sub("data", "ecal")

    @property
    def nuclei_data(self) -> Path:
        return self._sub("data", "nuclei")

    @property
    def sets(self) -> Path:
        return self._sub("sets")

    @property
    def models(self) -> Path:
        return self._sub("models")

    @property
    def scores(self) -> Path:
        return self._sub("scores")

    def notebook(self, nn: str) -> Path:
        """Output folder of notebook ``nn`` ("01".."08")."""
        return self._sub(NOTEBOOK_DIRS.get(nn, nn))

    def figures(self, nn: str) -> Path:
        return self._sub(NOTEBOOK_DIRS.get(nn, nn), "figures")

    def save_figure(self, nn: str, fig, name: str, dpi: int = 110) -> Path:
        """Save ``figures/<name>.png`` and check its layout first (:mod:`amsnb.plotting.layout`): overlapping or
        panel-crossing text warns and is recorded in ``figures/layout_problems.json`` (the notebook regression
        test fails on any)."""
        from .plotting.layout import check_figure

        path = self.figures(nn) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        problems = check_figure(fig, f"{NOTEBOOK_DIRS.get(nn, nn)}/{name}.png", check_bounds=False)  # tight bbox
        record = path.parent / "layout_problems.json"
        found = json.loads(record.read_text()) if record.exists() else {}
        if problems or name in found:
            found.pop(name, None)
            if problems:
                found[name] = problems
            record.write_text(json.dumps(found, indent=2, sort_keys=True))
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path

    def metrics_path(self, nn: str) -> Path:
        return self.notebook(nn) / "metrics.json"

    def save_metrics(self, nn: str, metrics: dict[str, Any], merge: bool = True) -> Path:
        """Write (merge into) ``NN_name/metrics.json``; numpy scalars and non-finite floats are made JSON-safe."""
        path = self.metrics_path(nn)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(path.read_text()) if merge and path.exists() else {}
        old.update(_jsonable(metrics))
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(old, indent=2, sort_keys=True))
        os.replace(tmp, path)
        return path

    def load_metrics(self, nn: str) -> dict[str, Any]:
        path = self.metrics_path(nn)
        return json.loads(path.read_text()) if path.exists() else {}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj
