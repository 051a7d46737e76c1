"""The parallel engine of the ECAL simulation: chunks simulated by forked worker processes into shared memory
(:func:`simulate_chunked`) or written to ROOT in order (:func:`simulate_to_root`, the Table-1 sets), the worker
pool, the workers' allocator settings and the ROOT writer's basket size. It changes how fast the events come, never
which: chunk ``k`` is cut and seeded by :mod:`amsnb.ecal.sim.events` (and :mod:`amsnb.ecal.sim.table1`) whatever the
number of workers, so this file is not part of :data:`amsnb.ecal.sim.digest.DIGEST_FILES`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...schema import ECAL
from .events import ROOT_CHUNK, new_output, root_chunk, root_tasks
from .physics import EcalDomain


def simulate_to_root(path: str | Path, n: int, particle: str = "electron", domain: str | EcalDomain = "mc",
                     seed: int = 0, energy_range: tuple[float, float] = (200.0, 2000.0), chunk: int = ROOT_CHUNK,
                     progress: bool = True, workers: int | None = 1, **kwargs) -> Path:
    """Simulate ``n`` events in chunks of ``chunk`` straight into a ROOT file (bounded memory, ``.part`` until done).

    Chunk ``k`` uses the seed ``(seed, k)``, so a file is reproducible and independent of the chunk it is read in,
    and of ``workers``: chunks are simulated by that many processes (``None`` or 0: one per core) and written in
    order, so the file holds the same events whatever the number of workers.
    """
    tasks = root_tasks(n, particle, domain, seed, energy_range, chunk, kwargs)
    return chunks_to_root(Path(path), root_chunk, tasks, [t[0] for t in tasks], progress, workers)


def simulate_chunked(n: int, particle: str = "electron", domain: str | EcalDomain = "mc", seed: int = 0,
                     energy_range: tuple[float, float] = (200.0, 2000.0), chunk: int = ROOT_CHUNK,
                     workers: int | None = 1, **kwargs) -> dict[str, np.ndarray]:
    """The events :func:`simulate_to_root` writes for the same arguments, as arrays, simulated by ``workers``
    processes (``None``/0: one per core). Chunk ``k`` is seeded by ``(seed, k)``, so the events do not depend on
    ``workers``. Forked workers write straight into one shared output buffer (nothing is pickled back); ``kwargs``
    are those of :func:`simulate` (``extras=True`` adds the ``truth_*`` arrays)."""
    import multiprocessing as mp

    extras = bool(kwargs.pop("extras", False))
    tasks = root_tasks(n, particle, domain, seed, energy_range, chunk, kwargs)
    n = int(n)
    nw = n_workers(workers, len(tasks))
    fork = "fork" in mp.get_all_start_methods()
    out = _shared_output(n) if nw > 1 and fork else new_output(n)
    starts = [t[6] for t in tasks]
    if nw == 1:
        parts = [root_chunk(*t, out={k: v[a:a + t[0]] for k, v in out.items()}) for a, t in zip(starts, tasks)]
    elif fork:
        key = id(out)
        _SHARED[key] = out
        try:
            parts = list(_pool_map(nw, _chunk_into, [(key, t) for t in tasks]))
        finally:
            del _SHARED[key]
    else:  # spawn (no fork): results come back pickled
        parts = []
        pickled = [(*t[:8], {**t[8], "extras": extras}) for t in tasks]
        for a, arr in zip(starts, _pool_map(nw, root_chunk, pickled)):
            for k, v in out.items():
                v[a:a + len(arr["event"])] = arr[k]
            parts.append({k: v for k, v in arr.items() if k not in out})
    if extras:
        out.update({k: np.concatenate([p[k] for p in parts]) for k in (parts[0] if parts else {})})
    return out


#: Output buffers that forked worker processes write into, by key (set in the parent before the workers fork).
_SHARED: dict[int, dict[str, np.ndarray]] = {}


def _shared_output(n: int, slots: int | None = None) -> dict[str, np.ndarray]:
    """ECAL branch arrays (n, ...) -- or (slots, n, ...) -- in one anonymous shared mapping: what a forked worker
    writes there, the parent sees without a copy (zero-filled; the arrays keep the mapping alive)."""
    import mmap

    lead = (n,) if slots is None else (slots, n)
    layout, size = [], 0
    for b in ECAL.branches:
        shape = lead + tuple(b.shape)
        size = -(-size // 64) * 64  # 64-byte aligned arrays
        layout.append((b.name, shape, size))
        size += int(np.prod(shape)) * np.dtype(b.np_dtype).itemsize
    buf = mmap.mmap(-1, max(size, 1))
    dtypes = {b.name: np.dtype(b.np_dtype) for b in ECAL.branches}
    return {name: np.frombuffer(buf, dtypes[name], int(np.prod(shape)), off).reshape(shape)
            for name, shape, off in layout}


def _chunk_into(key, task) -> dict:
    """Worker: simulate a :func:`simulate_to_root` chunk into its rows of the shared output ``_SHARED[key]``."""
    m, start = task[0], task[6]
    return root_chunk(*task, out={k: v[start:start + m] for k, v in _SHARED[key].items()})


def _chunk_to_slot(key, slot, fn, task) -> tuple[int, dict]:
    """Worker: ``fn(*task)`` copied into slot ``slot`` of the shared buffers ``_SHARED[key]``; returns the number of
    events and the arrays that are not ECAL branches (pickled back). A :func:`simulate_to_root` chunk is simulated
    straight into the slot (the same events: :func:`_simulate_into` writes every branch), which saves its copy and a
    fresh chunk-sized output (26 MB per 5k events, whose pages fault in on first touch)."""
    buf = _SHARED[key]
    if fn is root_chunk:
        m, kwargs = int(task[0]), task[-1]  # root_chunk's first and last arguments: events, simulate's keywords
        ex = root_chunk(*task, out={k: v[slot, :m] for k, v in buf.items()})
        return m, (ex if kwargs.get("extras") else {})
    arr = fn(*task)
    m = len(arr["event"])
    for k, v in buf.items():
        v[slot, :m] = arr[k]
    return m, {k: v for k, v in arr.items() if k not in buf}


def _pool_map(nw: int, fn, args: list):
    """``fn(*a)`` for each ``a`` in order from ``nw`` worker processes (forked on POSIX, so nothing is re-imported),
    at most 2 tasks per worker in flight (bounded memory); yields the results in order."""
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(nw, mp_context=ctx, initializer=_worker_malloc) as pool:
        todo, running = iter(args), deque()
        for a in todo:
            running.append(pool.submit(fn, *a))
            if len(running) >= 2 * nw:
                break
        while running:
            res = running.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                running.append(pool.submit(fn, *nxt))
            yield res


def _worker_malloc() -> None:
    """In a worker process: keep freed memory in the heap instead of returning it to the kernel (glibc ``mallopt``).
    A block's (events, 18, 72) temporaries are megabytes, which glibc maps and unmaps (or trims) on every allocation
    by default, and touching fresh pages costs up to 2 ms/MB on a VM: ~3-10 us of system time per proton. Speed
    only (no number changes); the workers are ours, so the user's process keeps its allocator settings."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum: blocks of < 32 MB come from the heap
    mallopt(m_trim_threshold, 512 << 20)
    mallopt(m_top_pad, 64 << 20)


def n_workers(workers: int | None, n_tasks: int) -> int:
    """Processes to use: ``workers`` (``None``/0: the cores this process may use), at most one per task."""
    import os

    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(int(workers), n_tasks))


def chunks_to_root(path: Path, fn, tasks: list, sizes: list[int], progress: bool, workers: int | None) -> Path:
    """Write ``fn(*task)`` for each task, in task order, to one ROOT file; tasks run in ``workers`` processes and
    task ``i`` returns ``sizes[i]`` events. Forked workers copy each chunk into one of 2 x workers + 1 reusable slots
    of a shared buffer and the parent writes from there (no pickling of the images); a slot is reused only after the
    parent wrote it."""
    import multiprocessing as mp

    from ...io import TreeWriter

    nw = n_workers(workers, len(tasks))
    with TreeWriter(path) as w, _bar(int(sum(sizes)), path.name, progress) as bar:
        if nw == 1:
            for t in tasks:
                _extend(w, fn(*t), bar)
            return path
        if "fork" not in mp.get_all_start_methods():
            for arr in _pool_map(nw, fn, tasks):
                _extend(w, arr, bar)
            return path
        n_slots = min(2 * nw + 1, len(tasks))  # in flight: at most 2 x nw, plus the one being written
        cap = max(sizes)
        buf = _shared_output(cap, slots=n_slots)
        key = id(buf)
        _SHARED[key] = buf
        try:
            jobs = [(key, i % n_slots, fn, t) for i, t in enumerate(tasks)]
            for i, (m, rest) in enumerate(_pool_map(nw, _chunk_to_slot, jobs)):
                _extend(w, {**{k: v[i % n_slots, :m] for k, v in buf.items()}, **rest}, bar)
        finally:
            del _SHARED[key]
    return path


#: Events per ROOT basket written by the simulation: an (18, 72) float32 image basket of 3000 events is 15.6 MB,
#: under the 2^24-byte block of ROOT compression; uproot splits a larger basket by re-slicing the remaining bytes
#: (quadratic copying), so 20k-event baskets wrote 24k showers/s and 3000-event ones 100k/s (same file content).
WRITE_BASKET = 3000


def _extend(w, arr: dict, bar) -> None:
    n = len(arr["event"])
    for s in range(0, max(n, 1), WRITE_BASKET):
        w.extend({k: v[s:s + WRITE_BASKET] for k, v in arr.items()})
    bar.update(n)


def _bar(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ev", disable=not enabled, leave=False)
