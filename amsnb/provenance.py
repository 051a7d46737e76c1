"""What made each artefact of a run folder, and the one rule that decides: reuse, resume or recompute.

Every artefact (a file or a folder: raw samples, selected sets, training caches, trained models, score files,
baselines, nuclei samples) is written with a **stamp** beside it, ``<name>.stamp.json``:

- ``producer`` and ``version``: the identity of the code that made it (each producer has a version string, bumped
  when its output changes; the simulations use a digest of their own source);
- ``request``: every parameter that can change its content (and none that cannot, such as progress bars);
- ``inputs``: the identities of what it was made from (the stamps of upstream artefacts; size and modification
  time of a user's own files; a digest of in-memory arrays).

:func:`ensure` applies the rule. An artefact is reused only on an exact match of producer, version, request and
inputs; a computation of the same request that was interrupted resumes (where its producer can resume: training);
anything else is recomputed, and one line says why (``models/cnn_small: max_train_events 200 -> 600,
retraining``). The stamp is written last and atomically (write, then rename), so a killed run never leaves an
artefact that looks finished. ``fresh`` (:func:`request_fresh`, ``amsnb run --fresh``, the notebooks' ``fresh``
parameter) recomputes every artefact made before the request, once: what the same run has already remade is reused.

Every decision is printed, and appended as a JSON line to ``$AMSNB_PROVENANCE_LOG`` when that is set (the runner
sets it per notebook and prints what each notebook reused and recomputed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Environment variables: the run-wide "recompute what was made before this time" and the decision log.
FRESH_ENV = "AMSNB_FRESH_SINCE"
LOG_ENV = "AMSNB_PROVENANCE_LOG"
STAMP_SUFFIX = ".stamp.json"
PENDING_SUFFIX = ".pending.json"


def _canonical(obj: Any) -> Any:
    """JSON-able, order-independent form of a request (tuples -> lists, numpy scalars -> Python, paths -> str)."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _canonical(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(_canonical(obj), sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class Stamp:
    """What made an artefact: producer + version (the code), request (the parameters), inputs (their identities)."""

    producer: str
    version: str
    request: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    created: float = 0.0

    def key(self) -> dict:
        return {"producer": self.producer, "version": str(self.version), "request": _canonical(self.request),
                "inputs": _canonical(self.inputs)}

    def digest(self) -> str:
        """Identity of the artefact's content: equal digests mean the same code made it from the same request."""
        return _digest(self.key())

    def to_json(self) -> str:
        return json.dumps({**self.key(), "created": self.created, "digest": self.digest()}, indent=2)

    @classmethod
    def read(cls, path: Path) -> Stamp | None:
        try:
            d = json.loads(Path(path).read_text())
            return cls(d["producer"], str(d["version"]), d.get("request", {}), d.get("inputs", {}),
                       float(d.get("created", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def stamp_path(artefact: str | os.PathLike) -> Path:
    p = Path(artefact)
    return p.parent / (p.name + STAMP_SUFFIX)


def pending_path(artefact: str | os.PathLike) -> Path:
    p = Path(artefact)
    return p.parent / (p.name + PENDING_SUFFIX)


def read_stamp(artefact: str | os.PathLike) -> Stamp | None:
    """The stamp of a finished artefact, or None (never made, made by an older amsnb, or interrupted)."""
    return Stamp.read(stamp_path(artefact))


def identity(path: str | os.PathLike) -> str:
    """A short string that changes whenever the content of ``path`` can have changed.

    An amsnb artefact is identified by its stamp (or by the stamp of the folder artefact that holds it, plus its
    name); any other file (a user's ntuple) by its resolved path, size and modification time.
    """
    p = Path(path)
    for owner in (p, p.parent, p.parent.parent):
        st = read_stamp(owner)
        if st is not None:
            rel = p.relative_to(owner).as_posix() if owner != p else ""
            return f"stamp:{st.digest()}" + (f":{rel}" if rel else "")
    if not p.exists():
        return f"missing:{p.resolve()}"
    s = p.stat()
    return f"file:{p.resolve()}:{s.st_size}:{s.st_mtime_ns}"


def array_digest(arrays: Mapping[str, Any] | np.ndarray) -> str:
    """Digest of in-memory inputs (numpy arrays or torch tensors), for artefacts made from arrays, not files."""
    h = hashlib.sha256()
    items = arrays.items() if isinstance(arrays, Mapping) else [("", arrays)]
    for k, v in sorted(items, key=lambda kv: str(kv[0])):
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(v))
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return "arrays:" + h.hexdigest()[:20]


# ------------------------------------------------------------------------------------------- fresh + log
def request_fresh(since: float | None = None) -> float:
    """Recompute every artefact made before now (or ``since``) in this process and the kernels it starts; what
    this run remakes after that is reused. Returns the cut-off time. An earlier cut-off already set is kept."""
    current = fresh_since()
    if current is None:
        current = time.time() if since is None else float(since)
        os.environ[FRESH_ENV] = repr(current)
    return current


def fresh_since() -> float | None:
    v = os.environ.get(FRESH_ENV)
    try:
        return float(v) if v else None
    except ValueError:
        return None


def report(label: str, action: str, reason: str = "", verb: str = "recomputing") -> str:
    """Print one decision line and append it to ``$AMSNB_PROVENANCE_LOG``; returns the line."""
    if action == "reuse":
        line = f"{label}: reused ({reason})" if reason else f"{label}: reused"
    elif action == "resume":
        line = f"{label}: {reason}, resuming" if reason else f"{label}: resuming"
    else:
        line = f"{label}: {reason}, {verb}" if reason else f"{label}: {verb}"
    print(line, flush=True)
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"artefact": label, "action": "recompute" if action == "compute" else action,
                                "reason": reason, "time": time.time()}) + "\n")
    return line


def read_log(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------- the rule
@dataclass
class Decision:
    action: str  # "reuse" | "resume" | "compute"
    reason: str


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping) and not d:
        return {prefix: {}} if prefix else {}
    if isinstance(d, Mapping):
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."


def describe_change(old: Stamp, new: Stamp, limit: int = 3) -> str:
    """``max_train_events 200 -> 600``: what differs between two stamps, in words."""
    parts = []
    if old.producer != new.producer or str(old.version) != str(new.version):
        parts.append(f"code {old.producer} {old.version} -> {new.version}")
    fo, fn = _flat(_canonical(old.request)), _flat(_canonical(new.request))
    for k in sorted(set(fo) | set(fn)):
        if fo.get(k, "<unset>") != fn.get(k, "<unset>"):
            parts.append(f"{k} {_short(fo.get(k, '<unset>'))} -> {_short(fn.get(k, '<unset>'))}")
    io_, in_ = _flat(_canonical(old.inputs)), _flat(_canonical(new.inputs))
    changed = sorted(k for k in set(io_) | set(in_) if io_.get(k) != in_.get(k))
    if changed:
        parts.append(f"input {', '.join(changed[:limit])} changed")
    if len(parts) > limit:
        parts = parts[:limit] + [f"{len(parts) - limit} more"]
    return ", ".join(parts) or "stamp differs"


def decide(artefact: str | os.PathLike, stamp: Stamp, resumable: bool = False, fresh: bool = False) -> Decision:
    """The rule: reuse on an exact match; resume an interrupted run of the same request; else recompute."""
    p = Path(artefact)
    old = read_stamp(p)
    since = fresh_since()
    if fresh and since is None:
        since = time.time()
    if old is not None and p.exists():
        if old.key() != stamp.key():
            return Decision("compute", describe_change(old, stamp))
        if since is not None and old.created < since:
            return Decision("compute", "fresh requested")
        return Decision("reuse", "")
    pend = Stamp.read(pending_path(p))
    if pend is not None and p.exists():
        if pend.key() != stamp.key():
            return Decision("compute", f"interrupted run of another request ({describe_change(pend, stamp)})")
        if resumable and not (since is not None and pend.created < since):
            return Decision("resume", "interrupted run of the same request")
        return Decision("compute", "interrupted")
    if p.exists():
        return Decision("compute", "no stamp (made by an older amsnb or interrupted)")
    return Decision("compute", "new")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / (path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def commit(artefact: str | os.PathLike, stamp: Stamp) -> Path:
    """Mark ``artefact`` finished: write its stamp atomically, drop the pending one."""
    p = Path(artefact)
    stamp.created = time.time()
    _write_atomic(stamp_path(p), stamp.to_json())
    pending_path(p).unlink(missing_ok=True)
    return stamp_path(p)


def invalidate(artefact: str | os.PathLike) -> None:
    """Remove the stamps of ``artefact`` (its content is about to change)."""
    stamp_path(artefact).unlink(missing_ok=True)
    pending_path(artefact).unlink(missing_ok=True)


def label_of(artefact: str | os.PathLike) -> str:
    p = Path(artefact)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def ensure(artefact: str | os.PathLike, stamp: Stamp, build: Callable[[Path], Any], *, resumable: bool = False,
           fresh: bool = False, label: str | None = None, verb: str = "recomputing",
           quiet_reuse: bool = False) -> Decision:
    """Make ``artefact`` with ``build(path)`` unless a finished one with an identical stamp exists.

    ``build`` writes the file or folder at ``path`` (atomically, or so that an incomplete one is harmless: the stamp
    is written only after it returns). ``resumable``: an interrupted build of the same request is resumed (the old
    content is kept and ``build`` continues it, e.g. from a training checkpoint); otherwise old content is removed
    first. A ``build`` that returns ``False`` did not finish (a time-sliced training): the artefact stays pending,
    to be resumed. Returns the decision taken.
    """
    p = Path(artefact)
    label = label or label_of(p)
    d = decide(p, stamp, resumable=resumable, fresh=fresh)
    if d.action == "reuse":
        if not quiet_reuse:
            report(label, "reuse")
        return d
    report(label, d.action, d.reason, verb)
    stamp_path(p).unlink(missing_ok=True)
    if d.action == "compute":
        _remove(p)
    stamp.created = time.time()
    _write_atomic(pending_path(p), stamp.to_json())
    p.parent.mkdir(parents=True, exist_ok=True)
    if build(p) is False:
        return Decision("resume", "unfinished")
    commit(p, stamp)
    return d


def is_current(artefact: str | os.PathLike) -> tuple[bool, str]:
    """Whether a finished artefact's recorded file inputs still have the identities it was made from.

    For readers that find an artefact without re-requesting it (e.g. score files found by notebook 05): a score
    file whose model was retrained since is not current. Inputs recorded as ``{"path": ..., "id": ...}`` are checked.
    """
    st = read_stamp(artefact)
    if st is None:
        return False, "no stamp"
    stale = []
    for name, v in st.inputs.items():
        if isinstance(v, Mapping) and "path" in v and "id" in v and identity(v["path"]) != v["id"]:
            stale.append(name)
    return (not stale), (f"input {', '.join(stale)} changed since" if stale else "")


def file_input(path: str | os.PathLike) -> dict:
    """An input entry that :func:`is_current` can re-check later: the path and its identity now."""
    return {"path": str(Path(path).resolve()), "id": identity(path)}
