"""``amsnb run``: execute the numbered notebook series headlessly with papermill, profile by profile.

Each notebook gets the parameters of the chosen profile (``amsnb/profiles.yaml``) that its ``parameters`` cell
declares, runs with the environment's own ``amsnb`` kernel, reads what earlier notebooks left in the workdir and
writes its ``metrics.json`` and figures there. The executed notebooks are kept in ``<workdir>/executed/``, also
when one fails: the run then stops with a message naming the notebook, the cell and the error.

After each notebook the runner prints what it reused and what it recomputed (and why): every artefact decision of
:mod:`amsnb.provenance` inside the kernel is logged to ``executed/NN.provenance.jsonl``. ``fresh`` recomputes
every artefact made before the run started, once.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import profiles, provenance
from .errors import AmsnbError, ConfigError
from .workdir import Workdir

KERNEL_NAME = "amsnb"


class NotebookFailed(AmsnbError):
    """A notebook of the series raised; the partially executed notebook is kept."""


@dataclass
class NotebookRun:
    notebook: str
    executed: Path
    seconds: float
    parameters: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


def notebooks_dir() -> Path:
    """The series: ``notebooks/`` beside the package (a source checkout) or in the current directory."""
    for cand in (Path(__file__).resolve().parent.parent / "notebooks", Path.cwd() / "notebooks"):
        if cand.is_dir():
            return cand
    raise ConfigError("no notebooks/ folder found beside the amsnb package or in the current directory; "
                      "run from a checkout of amsnb or pass --notebooks DIR")


def discover(nb_dir: Path, only: list[str] | None = None) -> list[Path]:
    found = sorted(p for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {o.zfill(2) for o in only}
        unknown = wanted - {p.name[:2] for p in found}
        if unknown:
            raise ConfigError(f"--only {','.join(sorted(unknown))}: no such notebook in {nb_dir}; "
                              f"available: {', '.join(p.name for p in found)}")
        found = [p for p in found if p.name[:2] in wanted]
    return found


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Register this environment's Python as the ``amsnb`` Jupyter kernel if it is not (or not this one).

    A kernel from another environment (a bare ``python3``) would run the notebooks without amsnb: the classic
    papermill failure. The kernelspec goes into ``sys.prefix`` so it belongs to this environment.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(name)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return name
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=name, display_name="Python (amsnb)", prefix=sys.prefix)
    return name


def _declared_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)).keys())


def _failure_message(nb: Path, executed: Path, exc: Exception) -> str:
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    return (f"notebook {nb.name} failed in cell {cell}: {ename}: {evalue}\n"
            f"the executed notebook up to the failure is kept in {executed}")


def run_notebook(nb: Path, workdir: Workdir, profile: str, overrides: dict[str, Any] | None = None,
                 tag: str = "", kernel: str = KERNEL_NAME, log=print) -> NotebookRun:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nn = nb.name[:2]
    params = profiles.parameters(profile, nn)
    params["workdir"] = str(workdir.path)
    params.update(overrides or {})
    declared = _declared_parameters(nb)
    params = {k: v for k, v in params.items() if k in declared}  # e.g. input_files goes to the ECAL notebooks only
    out_dir = workdir.path / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / (nb.stem + (f"__{tag}" if tag else "") + ".ipynb")
    log(f"[{nn}] {nb.name}{' ' + tag if tag else ''}: running ({profile})", flush=True)
    decisions = executed.with_suffix(".provenance.jsonl")
    decisions.unlink(missing_ok=True)
    previous_log = os.environ.get(provenance.LOG_ENV)
    os.environ[provenance.LOG_ENV] = str(decisions)  # the kernel inherits it
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(nb), str(executed), parameters=params, kernel_name=kernel,
                                   cwd=str(nb.parent), progress_bar=False, log_output=False)
    except PapermillExecutionError as exc:
        raise NotebookFailed(_failure_message(nb, executed, exc)) from None
    except Exception as exc:  # kernel died, timeout, ...
        raise NotebookFailed(_failure_message(nb, executed, exc)) from None
    finally:
        if previous_log is None:
            os.environ.pop(provenance.LOG_ENV, None)
        else:
            os.environ[provenance.LOG_ENV] = previous_log
    seconds = time.perf_counter() - t0
    metrics = workdir.load_metrics(nn)
    for line in summarize_decisions(provenance.read_log(decisions)):
        log(f"[{nn}]   {line}", flush=True)
    log(f"[{nn}] done in {seconds:.0f} s", flush=True)
    return NotebookRun(nb.name, executed, seconds, params, metrics)


def summarize_decisions(entries: list[dict]) -> list[str]:
    """``reused: sets, cache/mc_high`` and ``recomputed: models/cnn_small (data.max_train_events 200 -> 600)``:
    one line per kind of decision, each artefact once (its last decision)."""
    last: dict[str, dict] = {}
    for e in entries:
        last[e["artefact"]] = e
    groups: dict[str, list[str]] = {"reuse": [], "resume": [], "recompute": []}
    for name, e in last.items():
        groups.setdefault(e["action"], []).append(name if e["action"] == "reuse" or not e.get("reason")
                                                  else f"{name} ({e['reason']})")
    words = {"reuse": "reused", "resume": "resumed", "recompute": "recomputed"}
    return [f"{words.get(k, k)}: {', '.join(v)}" for k, v in groups.items() if v]


def _sweep_points(sweeps: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    if not sweeps:
        return [{}]
    keys = list(sweeps)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweeps[k] for k in keys))]


def run_series(profile: str = "default", only: list[str] | None = None, workdir: str | Path | None = None,
               params: dict[str, Any] | None = None, sweeps: dict[str, list[Any]] | None = None,
               nb_dir: str | Path | None = None, log=print, fresh: bool = False) -> list[NotebookRun]:
    """Run the notebooks in order; with ``sweeps`` each notebook runs once per point of the parameter grid.

    ``fresh``: recompute every artefact of the run folder made before this call (each once; see
    :func:`amsnb.provenance.request_fresh`)."""
    if profile not in profiles.names():
        raise ConfigError(f"unknown profile '{profile}'; known: {', '.join(profiles.names())}")
    wd = Workdir(workdir or f"runs/{profile}")
    nbs = discover(Path(nb_dir) if nb_dir else notebooks_dir(), only)
    declared = {nb.name: _declared_parameters(nb) for nb in nbs}
    unknown = set(params or {}) | set(sweeps or {})
    unknown -= set().union(*declared.values()) if declared else set()
    if unknown:
        raise ConfigError(f"no notebook of this run has the parameter(s) {sorted(unknown)} (-p/--sweep); "
                          + "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in declared.items()))
    kernel = ensure_kernel()
    if not wd.exists():
        log(f"workdir {wd.path} does not exist: creating it (a new run folder; everything will be computed)")
        wd.path.mkdir(parents=True)
    previous_fresh = os.environ.get(provenance.FRESH_ENV)
    if fresh:
        os.environ[provenance.FRESH_ENV] = repr(time.time())
        log("fresh: every artefact made before now is recomputed")
    try:
        return _run_all(wd, nbs, profile, params, sweeps, kernel, log)
    finally:
        if previous_fresh is None:
            os.environ.pop(provenance.FRESH_ENV, None)
        else:
            os.environ[provenance.FRESH_ENV] = previous_fresh


def _run_all(wd: Workdir, nbs: list[Path], profile: str, params, sweeps, kernel: str, log) -> list[NotebookRun]:
    runs: list[NotebookRun] = []
    t0 = time.perf_counter()
    for nb in nbs:
        points = _sweep_points(sweeps)
        table = []
        for point in points:
            tag = "__".join(f"{k}={v}" for k, v in point.items())
            if point:
                wd.metrics_path(nb.name[:2]).unlink(missing_ok=True)
            run = run_notebook(nb, wd, profile, {**(params or {}), **point}, tag, kernel, log)
            runs.append(run)
            table.append({"parameters": point, "metrics": run.metrics, "executed": str(run.executed)})
        if sweeps:
            path = wd.notebook(nb.name[:2]) / "sweep.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(table, indent=2, default=str))
            log(f"[{nb.name[:2]}] sweep of {len(points)} runs collected in {path}")
            log(format_sweep_table(table))
    log(f"\nseries done in {time.perf_counter() - t0:.0f} s, profile '{profile}'")
    log(f"  executed notebooks: {wd.path / 'executed'}")
    log(f"  figures:            {wd.path}/NN_*/figures/")
    log(f"  metrics:            {wd.path}/NN_*/metrics.json")
    return runs


def _flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts as dotted keys (``{"bdt": {"auc": ..}}`` -> ``bdt.auc``)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def format_sweep_table(table: list[dict[str, Any]]) -> str:
    """A plain-text table with one column per sweep point: its parameters, then the scalar metrics that differ
    between points, nested ones as dotted keys (a notebook writes dozens; those equal in every run are counted;
    ``sweep.json`` has them all). Transposed so that the width grows with the points, not with the metrics."""
    if not table:
        return "(empty sweep)"
    pkeys = list(dict.fromkeys(k for row in table for k in row["parameters"]))
    scalars = [{k: v for k, v in _flat(row["metrics"]).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in pkeys} for row in table]
    mkeys = sorted({k for m in scalars for k in m})
    varying = [k for k in mkeys if len(table) == 1 or len({m.get(k) for m in scalars}) > 1]

    def cell(v) -> str:
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    rows = [["", *(f"run {i + 1}" for i in range(len(table)))]]
    rows += [[k, *(cell(row["parameters"].get(k)) for row in table)] for k in pkeys]
    rule = len(rows)
    rows += [[k, *(cell(m.get(k)) for m in scalars)] for k in varying]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(rule, "-" * min(sum(widths) + 2 * (len(widths) - 1), 120))
    if len(varying) < len(mkeys):
        lines.append(f"({len(mkeys) - len(varying)} metrics equal in every run are not shown; see sweep.json)")
    return "\n".join(lines)
