"""``amsnb run``: execute the numbered notebook series headlessly with papermill, profile by profile.

Each notebook gets the chosen profile's name, the workdir and the user's ``-p``/``--sweep`` values; it takes every
other parameter its ``parameters`` cell declares from the profile (``amsnb/profiles.yaml``,
:func:`amsnb.profiles.notebook_parameters`), runs with the environment's own ``amsnb`` kernel, reads what earlier
notebooks left in the workdir and writes its ``metrics.json`` and figures there. The executed notebooks are kept in
``<workdir>/executed/``, also when one fails: the run then stops with a message naming the notebook, the cell and
the error.

While a notebook runs, the runner names the cell being executed and the time so far (:class:`CellProgress`: one
updating line in a terminal, one line per cell in a log); user parameters (``-p``, ``--sweep``) are checked
against the kinds of the profile's values before any kernel starts.

After each notebook the runner prints what it reused and what it recomputed (and why): every artefact decision of
:mod:`amsnb.provenance` inside the kernel is logged to ``executed/NN.provenance.jsonl``. ``fresh`` recomputes
every artefact made before the run started, once.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
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
    return set(_parameter_cell(path))


def _parameter_cell(path: Path) -> dict[str, dict]:
    """``papermill.inspect_notebook``: name -> {"default": source text of the value, "inferred_type_name", ...}."""
    import papermill

    return papermill.inspect_notebook(str(path))


def check_parameter_types(values: dict[str, Any], cells: dict[str, dict[str, dict]], source: str = "-p") -> None:
    """Each user value against the kind of its ``default``-profile value in every notebook that declares it, before
    any kernel starts: ``-p max_plot_events abc`` -> ConfigError naming the parameter, the notebook and the kind."""
    for name, value in values.items():
        for nb_name, cell in cells.items():
            if name in cell:
                profiles.check_value(nb_name[:2], name, value, source, label=f"notebook {nb_name}")


def _failure_message(nb: Path, executed: Path, exc: Exception) -> str:
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    return (f"notebook {nb.name} failed in cell {cell}: {ename}: {evalue}\n"
            f"the executed notebook up to the failure is kept in {executed}")


# the kernel's own start-up log ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption", once per
# notebook) is noise on a local run: the kernel runs with its log at ERROR; its errors still reach the terminal
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


def _cell_title(source: str, width: int = 60) -> str:
    """The first non-empty line of a cell (a comment keeps its words), shortened to ``width``."""
    for line in source.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= width else line[: width - 3] + "..."
    return ""


class CellProgress:
    """What the runner says while a notebook runs: the cell being executed and the time so far.

    In a terminal, one line updated in place; otherwise (CI logs, pipes, a ``log`` function) one line per cell
    when it starts: ``[03]   cell 5/19  12 s  bdt = baselines.ensure_baseline_scores(...)``."""

    def __init__(self, nn: str, log=print, tty: bool | None = None):
        self.nn, self.log = nn, log
        self.tty = (log is print and sys.stdout.isatty()) if tty is None else tty
        self.t0 = time.perf_counter()
        self.dirty = False

    def start(self, cell, index: int, cells) -> None:
        if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
            return
        code = [c for c in cells if c.get("cell_type") == "code"]
        number = next((i + 1 for i, c in enumerate(code) if c is cell), index + 1)
        line = (f"[{self.nn}]   cell {number}/{len(code)}  {time.perf_counter() - self.t0:4.0f} s  "
                f"{_cell_title(cell.get('source', ''))}")
        if self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns
            sys.stdout.write("\r\033[K" + line[: cols - 1])
            sys.stdout.flush()
            self.dirty = True
        else:
            self.log(line, flush=True)

    def close(self) -> None:
        if self.tty and self.dirty:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
            self.dirty = False


def _talking_engine():
    """papermill's nbclient engine, calling ``cell_hook(cell, index, cells)`` as each cell starts."""
    from papermill.engines import NBClientEngine, papermill_engines

    class TalkingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, cell_hook=None, **kwargs):
            if cell_hook is not None:
                start = nb_man.cell_start

                def cell_start(cell, cell_index=None, **kw):
                    try:
                        cell_hook(cell, cell_index or 0, nb_man.nb.cells)
                    except Exception:  # progress must never break a run
                        pass
                    return start(cell, cell_index, **kw)

                nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("amsnb", TalkingEngine)
    return "amsnb"


def run_notebook(nb: Path, workdir: Workdir, profile: str, overrides: dict[str, Any] | None = None,
                 tag: str = "", kernel: str = KERNEL_NAME, log=print) -> NotebookRun:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nn = nb.name[:2]
    declared = _declared_parameters(nb)
    # the notebook takes every other value from the profile itself (amsnb.profiles.notebook_parameters): the
    # injected cell holds what this run chose, and the executed notebook prints the resolved values
    injected = {"profile": profile, "workdir": str(workdir.path),
                **{k: v for k, v in (overrides or {}).items() if k in declared}}
    params = {**{k: v for k, v in profiles.parameters(profile, nn).items() if k in declared}, **injected}
    out_dir = workdir.path / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / (nb.stem + (f"__{tag}" if tag else "") + ".ipynb")
    log(f"[{nn}] {nb.name}{' ' + tag if tag else ''}: running ({profile})", flush=True)
    decisions = executed.with_suffix(".provenance.jsonl")
    decisions.unlink(missing_ok=True)
    previous_log = os.environ.get(provenance.LOG_ENV)
    os.environ[provenance.LOG_ENV] = str(decisions)  # the kernel inherits it
    t0 = time.perf_counter()
    progress = CellProgress(nn, log)
    try:
        papermill.execute_notebook(str(nb), str(executed), parameters=injected, kernel_name=kernel,
                                   cwd=str(nb.parent), progress_bar=False, log_output=False,
                                   engine_name=_talking_engine(), cell_hook=progress.start,
                                   extra_arguments=KERNEL_ARGS)
    except PapermillExecutionError as exc:
        raise NotebookFailed(_failure_message(nb, executed, exc)) from None
    except Exception as exc:  # kernel died, timeout, ...
        raise NotebookFailed(_failure_message(nb, executed, exc)) from None
    finally:
        progress.close()
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


def caller_paths(value: Any) -> Any:
    """A parameter value with the relative file paths and globs it names made absolute from the caller's folder.

    Notebooks run in ``notebooks/``, so ``-p mapping my.yaml`` or ``-p input_files 'data/*.root'`` would otherwise
    be looked up there. Only items that exist (or globs that match) from the current folder are changed; comma
    lists keep their form; anything else is returned unchanged."""
    import glob

    if isinstance(value, list):
        return [caller_paths(v) for v in value]
    if not isinstance(value, str) or not value.strip():
        return value
    items = [v.strip() for v in value.split(",")]
    out = []
    for item in items:
        path = os.path.expanduser(item)
        if item and not os.path.isabs(path) and (
                glob.glob(path) if any(ch in path for ch in "*?[") else os.path.exists(path)):
            item = os.path.join(os.getcwd(), path)
        out.append(item)
    return ", ".join(out) if len(items) > 1 else out[0]


def run_series(profile: str = "default", only: list[str] | None = None, workdir: str | Path | None = None,
               params: dict[str, Any] | None = None, sweeps: dict[str, list[Any]] | None = None,
               nb_dir: str | Path | None = None, log=print, fresh: bool = False,
               preflight: Callable[[dict[str, dict]], list[str]] | None = None) -> list[NotebookRun]:
    """Run the notebooks in order; with ``sweeps`` each notebook runs once per point of the parameter grid.

    ``fresh``: recompute every artefact of the run folder made before this call (each once; see
    :func:`amsnb.provenance.request_fresh`). ``preflight({notebook number: resolved parameters})``: checks of the
    application layer (a study wing's inputs) that raise before any notebook runs; the lines it returns are
    logged."""
    if profile not in profiles.names():
        raise ConfigError(f"unknown profile '{profile}'; known: {', '.join(profiles.names())}")
    wd = Workdir(workdir or profiles.default_workdir(profile))
    nbs = discover(Path(nb_dir) if nb_dir else notebooks_dir(), only)
    cells = {nb.name: _parameter_cell(nb) for nb in nbs}
    declared = {name: set(cell) for name, cell in cells.items()}
    unknown = set(params or {}) | set(sweeps or {})
    unknown -= set().union(*declared.values()) if declared else set()
    if unknown:
        raise ConfigError(f"no notebook of this run has the parameter(s) {sorted(unknown)} (-p/--sweep); "
                          + "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in declared.items()))
    params = {k: caller_paths(v) for k, v in (params or {}).items()}
    sweeps = {k: [caller_paths(v) for v in vs] for k, vs in (sweeps or {}).items()}
    check_parameter_types(params, cells, "-p")
    for name, values in (sweeps or {}).items():
        for value in values:
            check_parameter_types({name: value}, cells, "--sweep")
    if preflight is not None:
        resolved = {nb.name[:2]: {k: v for k, v in {**profiles.parameters(profile, nb.name[:2]), **params}.items()
                                  if k in declared[nb.name]} for nb in nbs}
        for line in preflight(resolved):
            log(line)
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
