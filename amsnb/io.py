"""ROOT I/O in the amsnb schema: chunked reading through uproot, writing, and file checks.

Reading is always chunked (``step_size`` events or a memory size such as ``"100 MB"``) so a file of any
size runs in bounded memory. A user's own ntuple is read through a branch mapping (:mod:`amsnb.mapping`):
one parameter, ``mapping=``, everywhere. Bad input raises :class:`~amsnb.errors.InputFileError` or
:class:`~amsnb.errors.SchemaError` with a message that names the file and branch and says what to do.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import derive
from .errors import InputFileError, SchemaError
from .mapping import BranchMapping, HitSpec, add_tag_counts, load_mapping, resolve_branch, tag_summary, tag_text
from .schema import ECAL, SCHEMAS, TreeSchema

DEFAULT_STEP = "100 MB"
#: Chunk size of :func:`read`, which holds the whole result in memory anyway.
READ_STEP = "1 GB"
NAN_POLICIES = ("raise", "drop", "keep")


# ----------------------------------------------------------------------------------------------- files
def expand_files(files: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """A notebook parameter's file list as paths: a list, or one string of comma-separated paths and globs
    (``"run1.root, flight/*.root"``). A glob that matches nothing is an error naming it; plain paths are checked
    when they are opened; an empty list comes back empty (the readers refuse it). Every reader (:func:`read`,
    :func:`iterate`, the cut flows) takes its files through this one parser."""
    import glob

    items = [files] if isinstance(files, os.PathLike) else (
        [p.strip() for p in files.split(",") if p.strip()] if isinstance(files, str) else list(files))
    out: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if any(ch in text for ch in "*?["):
            hits = sorted(glob.glob(os.path.expanduser(text)))
            if not hits:
                raise InputFileError(f"{text}: no file matches this pattern; check the folder and the pattern")
            out += [Path(h) for h in hits]
        else:
            out.append(Path(text).expanduser())
    return out


def open_tree(path: str | os.PathLike, tree: str):
    """Open ``tree`` in the ROOT file ``path`` with uproot, turning every failure into a clear message."""
    import uproot

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file not found. Check the path, or run `amsnb simulate` to make sample data.")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a ROOT file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"root":
        raise InputFileError(f"{path}: not a ROOT file (it does not start with the ROOT magic bytes 'root')")
    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises many types for damaged headers
        raise InputFileError(f"{path}: cannot be opened as ROOT ({type(exc).__name__}: {exc}); "
                             "the file is damaged or truncated: copy or regenerate it") from None
    try:
        keys = [k.split(";")[0] for k in f.keys(recursive=True, cycle=True)]
    except Exception as exc:
        raise InputFileError(f"{path}: its directory cannot be read ({type(exc).__name__}); the file is corrupt "
                             "or truncated: copy or regenerate it") from None
    if tree not in keys:
        hint = difflib.get_close_matches(tree, keys, n=3)
        raise InputFileError(f"{path}: no tree '{tree}'. Objects in the file: {', '.join(keys) or 'none'}"
                             + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                             + ". Give the tree name in the mapping file (key 'tree').")
    try:
        t = f[tree]
        _ = t.num_entries
    except Exception as exc:
        raise InputFileError(f"{path}: tree '{tree}' cannot be read ({type(exc).__name__}: {exc}); "
                             "the file is corrupt or truncated") from None
    return t


# ------------------------------------------------------------------------------------------- reading
def _resolve(schema: TreeSchema | str) -> TreeSchema:
    if isinstance(schema, TreeSchema):
        return schema
    try:
        return SCHEMAS[schema]
    except KeyError:
        raise SchemaError(f"unknown schema '{schema}'; known: {', '.join(SCHEMAS)}") from None


def _plan(t, path: Path, schema: TreeSchema, branches: list[str], mapping: BranchMapping):
    """How to read each wanted schema branch: ``(exprs, missing_optional, derive_plan)``.

    A branch the file has (by its own name or the mapping) is read; one it lacks is derived by amsnb when a
    registered derivation can compute it (:mod:`amsnb.derive`); an optional one that cannot be derived gets its
    default. Raises listing every missing required branch, and every branch the mapping names that the file lacks
    (a name the user wrote is never replaced by a default or a derivation)."""
    available = set(t.keys())
    explicit = [n for n in branches
                if (n in mapping.hits or mapping.expression(n) != n) and not mapping.is_available(n, available)
                and not _labels_from_tag(mapping, n)]
    dp = derive.plan(schema.tree, [n for n in branches if n not in explicit],
                     lambda n: mapping.is_available(n, available))
    missing = explicit + [n for n in dp.missing if schema[n].required]
    if missing:
        lines = [missing_line(mapping, name, available) for name in missing]
        raise SchemaError(f"{path}: tree '{t.name}' lacks branches the '{schema.tree}' schema needs:\n"
                          + "\n".join(lines)
                          + "\nMap them to your branch names in a mapping YAML (see docs/mapping.md) "
                            "and pass it as mapping=...")
    exprs = {n: mapping.expression(n) for n in dp.read}
    return exprs, [n for n in dp.missing if not schema[n].required], dp


def _labels_from_tag(mapping: BranchMapping, name: str) -> bool:
    """A file without the mapped truth branches (flight data) takes its labels from the mapping's tag."""
    return name == "label" and mapping.tag is not None


def missing_line(mapping: BranchMapping, name: str, available: Iterable[str]) -> str:
    """One line naming a missing schema branch, the mapped file branches that do not exist, and the closest."""
    available = sorted(available)
    mapped = mapping.missing_sources(name, available)
    if not mapped:
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        return f"  {name}" + (f"; closest in the file: {', '.join(close)}" if close else "")
    parts = []
    for b in mapped:
        close = difflib.get_close_matches(b, available, n=3, cutoff=0.5)
        parts.append(f"'{b}', which is not a branch of the file"
                     + (f"; closest in the file: {', '.join(close)}" if close else ""))
    return f"  {name}: mapped to " + "; ".join(parts)


def _convert(path: Path, schema: TreeSchema, raw: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    out = {}
    for name, arr in raw.items():
        b = schema[name]
        arr = np.asarray(arr)
        if arr.dtype == object:
            raise SchemaError(f"{path}: branch '{name}' is jagged (variable length per event); the schema needs "
                              f"a fixed shape {b.shape}. Map it to a fixed-size branch.")
        if arr.shape[1:] != b.shape:
            if arr.ndim == 2 and b.shape and int(np.prod(b.shape)) == arr.shape[1]:
                arr = arr.reshape(n, *b.shape)  # flat per-event vector of the right size: layer-major
            else:
                raise SchemaError(f"{path}: branch '{name}' has per-event shape {arr.shape[1:]}, the schema needs "
                                  f"{b.shape}. Map the right branch or reshape it before writing.")
        out[name] = arr.astype(b.np_dtype, copy=False)
    return out


def nonfinite_events(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
    """``(bad, counts)``: events with a NaN or inf in any floating branch, and such events per branch (only
    branches with any are listed)."""
    n = len(next(iter(arrays.values()))) if arrays else 0
    bad_any = np.zeros(n, dtype=bool)
    counts = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        # fast path: a float64 sum is finite exactly when every value is (no allocation of a mask)
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr.sum(dtype=np.float64)):
            bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
            if bad.any():
                counts[name] = int(bad.sum())
                bad_any |= bad
    return bad_any, counts


def count_nonfinite(arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Events with a NaN or inf in each floating branch (only branches with any are listed)."""
    return nonfinite_events(arrays)[1]


def _apply_nan_policy(path, arrays: dict[str, np.ndarray], policy: str, checked=()) -> dict[str, np.ndarray]:
    """Raise on or drop events with NaN/inf values; ``checked``: branches whose values were already checked (images
    built from hits, whose bad hits followed the policy in :func:`_scatter`)."""
    if policy == "keep":
        return arrays
    bad, counts = nonfinite_events({k: v for k, v in arrays.items() if k not in checked})
    if not counts:
        return arrays
    if policy == "raise":
        detail = ", ".join(f"{k}: {v} events" for k, v in counts.items())
        raise SchemaError(f"{path}: NaN/inf values ({detail}). Pass nan_policy='drop' to skip those events, "
                          "or fix the file.")
    return {k: v[~bad] for k, v in arrays.items()}


@dataclass
class ReadStats:
    """What a read saw: events read and kept, NaN/inf drops, optional branches filled with defaults."""
    events_read: int = 0
    events_kept: int = 0
    filled_defaults: set[str] = field(default_factory=set)
    hits: dict[str, dict[str, int]] = field(default_factory=dict)  # schema branch -> hit counts (see _scatter)
    derived: dict[str, derive.Derivation] = field(default_factory=dict)  # branches amsnb computed, and how
    tag: dict = field(default_factory=dict)  # the mapping's tag: counts of amsnb.mapping.Tag.apply, summed


def _scatter(path: Path, name: str, spec: HitSpec, jagged: Mapping, shape: tuple[int, int], start: int,
             nan_policy: str, stats: ReadStats, units: Mapping[str, float] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Dense images from one chunk of sparse hits, vectorised (no Python loop over events).

    Returns ``(images, bad_events)``, images in the schema units (``units[name]`` applied to the hit energies):
    hits at the same (layer, cell) are summed; hits with an index out of range, a negative or a NaN/inf energy are
    counted per branch in ``stats.hits[name]`` and follow ``nan_policy``: raise (naming the file, branch and first
    bad event), drop (``bad_events`` marks them), keep (out-of-range hits are skipped, the others are kept). The
    work is one fused numba pass (:mod:`amsnb._hitkernel`), or the NumPy path below without numba."""
    import awkward as ak

    from . import _hitkernel

    L, C, E = (jagged[b] for b in spec.names)
    n = len(L)
    counts = np.asarray(ak.num(L, axis=1))
    for b, arr in ((spec.cell, C), (spec.edep, E)):
        if len(arr) != n or not np.array_equal(np.asarray(ak.num(arr, axis=1)), counts):
            raise SchemaError(f"{path}: hits of '{name}': branches '{spec.layer}' and '{b}' do not have the same "
                              "number of hits per event; map jagged branches that share one counter")
    layer, cell, edep = (np.asarray(ak.flatten(a, axis=None)) for a in (L, C, E))
    factor = float((units or {}).get(name, 1.0))
    if _hitkernel.HAVE_NUMBA:
        image, bad_events, problems, duplicates = _hitkernel.scatter(counts, layer, cell, edep, spec.layer_base,
                                                                     spec.cell_base, shape, factor)
    else:
        image, bad_events, problems, duplicates = _scatter_numpy(counts, layer, cell, edep, spec, shape, factor)
    st = stats.hits.setdefault(name, {"hits": 0, "duplicates": 0, "out_of_range": 0, "negative": 0,
                                      "nonfinite": 0, "events_bad": 0})
    k = _hitkernel
    st["hits"] += len(edep)
    st["duplicates"] += duplicates
    st["out_of_range"] += int(problems[k.LAYER_OUT, 0] + problems[k.CELL_OUT, 0])
    st["nonfinite"] += int(problems[k.NONFINITE, 0])
    st["negative"] += int(problems[k.NEGATIVE, 0])
    st["events_bad"] += int(bad_events.sum())
    if problems[:, 0].any() and nan_policy == "raise":
        nl, nc = shape
        what = {k.LAYER_OUT: (spec.layer, f"index out of range {spec.layer_base}..{spec.layer_base + nl - 1}"),
                k.CELL_OUT: (spec.cell, f"index out of range {spec.cell_base}..{spec.cell_base + nc - 1}"),
                k.NONFINITE: (spec.edep, "NaN/inf energy"), k.NEGATIVE: (spec.edep, "negative energy")}
        detail = "; ".join(f"{b}: {int(problems[i, 0])} hits with {text} (first in event entry "
                           f"{start + int(problems[i, 1])})" for i, (b, text) in what.items() if problems[i, 0])
        raise SchemaError(f"{path}: bad hits for '{name}': {detail}. Pass nan_policy='drop' to skip those events, "
                          "check layer_base/cell_base in the mapping, or fix the file.")
    return image, bad_events


def _scatter_numpy(counts, layer, cell, edep, spec: HitSpec, shape: tuple[int, int], factor: float):
    """The NumPy scatter (no numba): same outputs as :func:`amsnb._hitkernel.scatter`; float64 sums."""
    from ._hitkernel import CELL_OUT, LAYER_OUT, NEGATIVE, NONFINITE

    n = len(counts)
    nl, nc = shape
    layer = layer.astype(np.int64) - spec.layer_base
    cell = cell.astype(np.int64) - spec.cell_base
    edep = edep.astype(np.float64)
    ev = np.repeat(np.arange(n), counts)
    out_l = (layer < 0) | (layer >= nl)
    out_c = ((cell < 0) | (cell >= nc)) & ~out_l
    nonfin = ~np.isfinite(edep)
    neg = (edep < 0) & ~nonfin
    ok = ~(out_l | out_c)
    flat = ev[ok] * (nl * nc) + layer[ok] * nc + cell[ok]
    step = np.diff(flat)
    if len(flat) < 2 or (step >= 0).all():  # hits in cell order (the usual layout): duplicates are neighbours
        duplicates = int(np.count_nonzero(step == 0))
    else:  # hits per cell; cheaper than np.unique (a sort/hash)
        duplicates = int(len(flat) - np.count_nonzero(np.bincount(flat, minlength=n * nl * nc)))
    problems = np.zeros((4, 2), np.int64)
    for i, m in ((LAYER_OUT, out_l), (CELL_OUT, out_c), (NONFINITE, nonfin & ok), (NEGATIVE, neg & ok)):
        if m.any():
            problems[i] = (m.sum(), ev[m][0])
    bad_events = np.zeros(n, dtype=bool)
    bad_events[ev[~ok | nonfin | neg]] = True
    image = np.bincount(flat, weights=edep[ok] * factor, minlength=n * nl * nc).reshape(n, nl, nc)
    return image.astype(np.float32), bad_events, problems, duplicates


def _hit_keys(t, mp: BranchMapping, exprs: Mapping[str, str]) -> dict[str, str]:
    """{hit branch as the mapping names it: its key in the tree} for the image branches read from hits."""
    keys = list(t.keys())
    return {b: resolve_branch(b, keys) for k in exprs if k in mp.hits for b in mp.hits[k].names}


def _step(t, step_size, keys: list[str]) -> int:
    if isinstance(step_size, str):
        return max(int(t.num_entries_for(step_size, filter_name=keys)), 1)
    return max(int(step_size), 1)


def _ranges(t, keys: list[str], first: int, last: int, step: int) -> list[tuple[int, int]]:
    """Entry ranges of about ``step`` covering [first, last), cut where every branch in ``keys`` starts a basket, so
    no basket is decompressed twice (a range is at least one basket). Files without basket offsets (RNTuple) get
    plain ``step`` ranges."""
    import bisect

    try:
        common = None
        for k in keys:
            offsets = {int(x) for x in t[k].entry_offsets}
            common = offsets if common is None else common & offsets
    except Exception:
        common = None
    if not common:
        return [(a, min(a + step, last)) for a in range(first, last, step)]
    bounds = sorted(b for b in common if first < b < last) + [last]
    out, start = [], first
    while start < last:
        i = bisect.bisect_right(bounds, start + step) - 1  # the last boundary within one step
        stop = bounds[i] if i >= 0 and bounds[i] > start else bounds[bisect.bisect_right(bounds, start)]
        out.append((start, stop))
        start = stop
    return out


def _hit_chunks(t, path: Path, schema: TreeSchema, mp: BranchMapping, exprs: dict, sources: list[str],
                step_size, nan_policy: str, stats: ReadStats, first: int, last: int):
    """Chunks of (raw numpy branches, hit images, bad-event mask) over basket-aligned entry ranges of [first, last)."""
    hit_names = [k for k in exprs if k in mp.hits]
    hit_keys = _hit_keys(t, mp, exprs)
    keys = sources + sorted(set(hit_keys.values()))
    for start, stop in _ranges(t, keys, first, last, _step(t, step_size, keys)):
        raw = t.arrays(sources, entry_start=start, entry_stop=stop, library="np") if sources else {}
        # one call for all hit branches: uproot then reads their shared counter once (3x faster than one per branch)
        got = t.arrays(sorted(set(hit_keys.values())), entry_start=start, entry_stop=stop, library="ak", how=dict)
        jagged = {b: got[key] if key in got else t[key].array(entry_start=start, entry_stop=stop, library="ak")
                  for b, key in hit_keys.items()}  # RNTuple fields inside a record come back nested
        images, bad = {}, np.zeros(stop - start, dtype=bool)
        for name in hit_names:
            images[name], b = _scatter(path, name, mp.hits[name], jagged, schema[name].shape, start,
                                       nan_policy, stats, mp.units)
            bad |= b
        yield dict(raw), images, bad, stop - start


def iterate(files, schema: TreeSchema | str = ECAL, branches: Iterable[str] | None = None,
            mapping: str | os.PathLike | BranchMapping | None = None, step_size: int | str = DEFAULT_STEP,
            nan_policy: str = "raise", stats: ReadStats | None = None,
            entries: tuple[int, int] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Yield chunks of events as ``{schema branch: numpy array}`` from one or many ROOT files.

    ``branches`` defaults to the whole schema. Branches the file lacks are derived when amsnb can compute them
    (:mod:`amsnb.derive`, listed in ``stats.derived``); optional ones that cannot be derived are filled with their
    default (label -1, weight 1, ...) and listed in ``stats.filled_defaults``. ``entries=(start, stop)`` reads only
    that entry range of each file (the partitions of :func:`partitions`).
    """
    schema = _resolve(schema)
    if nan_policy not in NAN_POLICIES:
        raise SchemaError(f"nan_policy='{nan_policy}' is not one of {NAN_POLICIES}")
    mp = load_mapping(mapping, schema)
    wanted = list(branches) if branches is not None else schema.names
    for name in wanted:
        if name not in schema:
            hint = difflib.get_close_matches(name, schema.names, n=3)
            raise SchemaError(f"'{name}' is not a branch of the '{schema.tree}' schema"
                              + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                              + f"; branches: {', '.join(schema.names)}")
    stats = stats if stats is not None else ReadStats()
    paths = expand_files(files)
    if not paths:
        raise InputFileError("no input files given: pass a ROOT file path, a glob or a list of paths")
    tag = mp.tag if "label" in wanted else None  # labels from the tag need its variables too
    need = wanted + [v for v in tag.variables() if v not in wanted] if tag else wanted
    for path in paths:
        t = open_tree(path, mp.tree or schema.tree)
        exprs, missing_opt, dp = _plan(t, path, schema, need, mp)
        stats.filled_defaults.update(missing_opt)
        stats.derived.update(dp.derived)
        plain = {k: v for k, v in exprs.items() if k not in mp.hits}
        sources = mp.source_branches(plain, t.keys())
        first, last = (0, int(t.num_entries)) if entries is None else (max(entries[0], 0),
                                                                         min(entries[1], int(t.num_entries)))
        if any(k in mp.hits for k in exprs):
            chunks = _hit_chunks(t, path, schema, mp, exprs, sources, step_size, nan_policy, stats, first, last)
        else:
            chunks = ((raw, {}, None, None) for raw in t.iterate(sources, step_size=step_size, library="np",
                                                                 entry_start=first, entry_stop=last))
        dtypes = {b.name: b.np_dtype for b in schema.branches}
        try:
            for raw, images, bad, n in chunks:
                if n is None:
                    n = len(next(iter(raw.values()))) if raw else 0
                arrays = _convert(path, schema, mp.evaluate(plain, raw), n)
                arrays = mp.apply_units(arrays)
                for name, image in images.items():  # unit factor already applied to the hit energies
                    arrays[name] = image.astype(schema[name].np_dtype, copy=False)
                stats.events_read += n
                if bad is not None and nan_policy == "drop" and bad.any():
                    arrays = {k: v[~bad] for k, v in arrays.items()}
                    n = int((~bad).sum())
                arrays = dp.apply(arrays, dtypes)
                for name in missing_opt:
                    arrays[name] = schema.empty(n)[name] if name != "weight" else np.ones(n, np.float32)
                if tag is not None:
                    arrays["label"], counts = tag.apply(arrays)
                    stats.tag = add_tag_counts(stats.tag, counts)
                arrays = {k: arrays[k] for k in wanted}  # the requested branches, in the requested order
                arrays = _apply_nan_policy(path, arrays, nan_policy, checked=images)
                stats.events_kept += len(next(iter(arrays.values()))) if arrays else 0
                yield arrays
        except (SchemaError, InputFileError):
            raise
        except Exception as exc:
            raise InputFileError(f"{path}: reading tree '{t.name}' failed ({type(exc).__name__}: {exc}); the file "
                                 "is probably truncated or corrupt: copy or regenerate it") from None


def partitions(files, schema: TreeSchema | str = ECAL, branches: Iterable[str] | None = None, mapping=None,
               step_size: int | str = "50 MB") -> list[tuple[Path, int, int]]:
    """``(file, start, stop)`` entry ranges of about ``step_size`` each (in the branches that reading ``branches``
    through ``mapping`` touches): the units of work of the dask path, each read by :func:`iterate` with
    ``entries=(start, stop)``, so a partition is read exactly as the in-memory path reads it. Every file is opened
    and planned here, so a missing file or branch stops before any work is sent to a cluster."""
    schema = _resolve(schema)
    mp = load_mapping(mapping, schema)
    wanted = list(branches) if branches is not None else schema.names
    paths = expand_files(files)
    if not paths:
        raise InputFileError("no input files given: pass a ROOT file path, a glob or a list of paths")
    out = []
    for path in paths:
        t = open_tree(path, mp.tree or schema.tree)
        exprs, _, _ = _plan(t, path, schema, wanted, mp)
        plain = {k: v for k, v in exprs.items() if k not in mp.hits}
        keys = mp.source_branches(plain, t.keys()) + list(_hit_keys(t, mp, exprs).values())
        total = int(t.num_entries)
        step = _step(t, step_size, keys) if keys else max(total, 1)
        out += [(path, a, b) for a, b in _ranges(t, keys, 0, total, step)]
    return out


def read(files, schema: TreeSchema | str = ECAL, branches: Iterable[str] | None = None,
         mapping=None, step_size: int | str | None = None, nan_policy: str = "raise",
         max_events: int | None = None) -> dict[str, np.ndarray]:
    """Read events into memory (concatenated chunks of :func:`iterate`); ``max_events`` stops early.

    ``step_size=None``: chunks of :data:`READ_STEP` (everything ends in memory anyway; large chunks save the
    concatenation copies), or of ``max_events`` when that is smaller."""
    if step_size is None:
        step_size = max_events if max_events else READ_STEP
    parts: list[dict[str, np.ndarray]] = []
    total = 0
    for chunk in iterate(files, schema, branches, mapping, step_size, nan_policy):
        parts.append(chunk)
        total += len(next(iter(chunk.values())))
        if max_events is not None and total >= max_events:
            break
    if not parts:
        schema = _resolve(schema)
        names = list(branches) if branches is not None else schema.names
        return {k: v for k, v in schema.empty(0).items() if k in names}
    out = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if max_events is not None:
        out = {k: v[:max_events] for k, v in out.items()}
    return out


def num_entries(path: str | os.PathLike, tree: str = "ecal", mapping=None) -> int:
    """Entries of ``tree`` in one file; with a branch ``mapping`` (for the ECAL schema), its tree name."""
    if mapping is not None:
        tree = load_mapping(mapping, ECAL).tree or tree
    return int(open_tree(path, tree).num_entries)


# ------------------------------------------------------------------------------------------- writing
def validate_arrays(arrays: Mapping[str, np.ndarray], schema: TreeSchema, where: str = "arrays") -> int:
    """Check names, shapes and lengths against the schema; return the number of events."""
    missing = [n for n in schema.required if n not in arrays]
    if missing:
        raise SchemaError(f"{where}: missing required branches {missing} of the '{schema.tree}' schema")
    unknown = [n for n in arrays if n not in schema]
    if unknown:
        raise SchemaError(f"{where}: {unknown} are not branches of the '{schema.tree}' schema")
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        raise SchemaError(f"{where}: branches have different lengths {sorted(lengths)}")
    for name, arr in arrays.items():
        shape = schema[name].shape
        if np.shape(arr)[1:] != shape:
            raise SchemaError(f"{where}: branch '{name}' has per-event shape {np.shape(arr)[1:]}, expected {shape}")
    return lengths.pop()


def _reuse_large_buffers() -> None:
    """Let glibc serve the writer's per-basket buffers (the basket's bytes, its big-endian and compressed copies:
    ~30 MB for a 3000-event image basket) from the heap instead of mapping them anew for every basket.

    glibc maps blocks above its mmap threshold (128 kB at start) and unmaps them on free, so each basket's buffers
    were fresh pages to fault in (2.5 faults per shower). Freeing one mapped block raises the threshold to that
    block's size (at most 32 MB) and the trim threshold to twice it: glibc's own dynamic rule, which any large free
    in a session triggers anyway, so no ``mallopt`` is needed. After one untouched 30 MB block the buffers come from
    the heap and are reused (0 faults; benchmarks/bench_sim.py "ROOT write": 58k -> 79k-120k showers/s here)."""
    block = np.empty(30 << 20, np.uint8)  # malloc'd (mapped), never touched
    del block


class TreeWriter:
    """Write a schema tree in chunks: ``with TreeWriter(path, ECAL) as w: w.extend(chunk)``.

    The file is written to ``path + '.part'`` and renamed on a clean close, so an interrupted job never
    leaves a truncated file under the final name.
    """

    def __init__(self, path: str | os.PathLike, schema: TreeSchema | str = ECAL, compression: str = "lz4"):
        import uproot

        self.schema = _resolve(schema)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".part")
        comp = {"lz4": uproot.LZ4(1), "zlib": uproot.ZLIB(1), "zstd": uproot.ZSTD(1), "none": None}
        if compression not in comp:
            raise SchemaError(f"compression='{compression}' is not one of {list(comp)}")
        self._file = uproot.recreate(self._tmp, compression=comp[compression])
        _reuse_large_buffers()
        self._tree = None
        self.n_written = 0

    def extend(self, arrays: Mapping[str, np.ndarray]) -> None:
        n = validate_arrays(arrays, self.schema, str(self.path))
        cast = {b.name: np.ascontiguousarray(arrays[b.name], dtype=b.np_dtype)
                for b in self.schema.branches if b.name in arrays}
        if self._tree is None:
            types = {k: np.dtype((v.dtype, v.shape[1:])) if v.ndim > 1 else v.dtype for k, v in cast.items()}
            self._tree = self._file.mktree(self.schema.tree, types, title=self.schema.doc[:80])
            self._names = list(cast)
        elif list(cast) != self._names:
            raise SchemaError(f"{self.path}: chunk branches {list(cast)} differ from the first chunk's {self._names}")
        if n:
            self._tree.extend(cast)
        self.n_written += n

    def close(self, ok: bool = True) -> None:
        if self._file is None:
            return
        if self._tree is None and ok:
            raise SchemaError(f"{self.path}: nothing was written (no chunk given)")
        self._file.close()
        self._file = None
        if ok:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(ok=exc_type is None)
        return False


def write(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], schema: TreeSchema | str = ECAL,
          compression: str = "lz4", chunk: int = 50_000) -> Path:
    """Write in-memory arrays as one schema tree (in baskets of ``chunk`` events)."""
    n = validate_arrays(arrays, _resolve(schema), str(path))
    with TreeWriter(path, schema, compression) as w:
        for start in range(0, max(n, 1), chunk):
            w.extend({k: v[start:start + chunk] for k, v in arrays.items()})
    return Path(path)


# --------------------------------------------------------------------------------------------- check
@dataclass
class CheckReport:
    """Answer to "does this file work with amsnb?": ``usable`` plus the details behind it."""
    path: str
    tree: str
    usable: bool = False
    error: str | None = None
    trees: dict[str, int] = field(default_factory=dict)
    present: list[str] = field(default_factory=list)
    missing_required: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    misshaped: dict[str, str] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)
    n_events: int = 0
    missing_detail: dict[str, str] = field(default_factory=dict)  # why a missing branch is missing
    hits: dict[str, str] = field(default_factory=dict)  # image branches built from sparse hits: what was seen
    derived: dict[str, str] = field(default_factory=dict)  # branch -> how amsnb computes it (not in the file)
    tag: str = ""  # what the mapping's tag labels in this file (amsnb.mapping.tag_text)

    def text(self) -> str:
        lines = [f"file: {self.path}"]
        if self.trees:
            lines.append("trees: " + ", ".join(f"{k} ({v} entries)" for k, v in self.trees.items()))
        if self.error:
            lines.append(f"ERROR: {self.error}")
        else:
            lines.append(f"schema tree '{self.tree}': {self.n_events} events")
            lines.append(f"branches present: {len(self.present)}")
            for name in self.missing_required:
                detail = self.missing_detail.get(name, "")
                lines.append(f"  MISSING (required): {name}" + (f": {detail}" if detail else ""))
            for name, msg in self.hits.items():
                lines.append(f"  sparse hits: {name}: {msg}")
            by_how: dict[str, list[str]] = {}
            for name, how in self.derived.items():
                by_how.setdefault(how, []).append(name)
            for how, names in by_how.items():
                lines.append(f"  derived by amsnb: {', '.join(names)} ({how})")
            for name in self.missing_optional:
                detail = self.missing_detail.get(name, "")
                lines.append(f"  missing (optional, default used): {name}" + (f": {detail}" if detail else ""))
            if self.tag:
                lines += ["  " + line for line in self.tag.splitlines()]
            for name, msg in self.misshaped.items():
                lines.append(f"  WRONG SHAPE: {name}: {msg}")
            for name, cnt in self.nonfinite.items():
                lines.append(f"  NaN/inf: {name}: {cnt} events")
        lines.append("usable: " + ("yes" if self.usable else "NO"))
        return "\n".join(lines)


def check_file(path: str | os.PathLike, mapping=None, schema: TreeSchema | str | None = None,
               step_size: int | str = DEFAULT_STEP) -> CheckReport:
    """Inspect a ROOT file against a schema (guessed from the trees if not given) without raising."""
    import uproot

    path = Path(path)
    schemas = [_resolve(schema)] if schema is not None else [s for s in SCHEMAS.values()]
    report = CheckReport(path=str(path), tree=schemas[0].tree)
    try:
        mp0 = load_mapping(mapping, schemas[0])
        tree_guess = mp0.tree
        try:
            with uproot.open(path) as f:
                report.trees = {k.split(";")[0]: int(f[k].num_entries) for k, c in f.classnames().items()
                                if c.startswith("TTree")}
        except Exception:
            pass
        if schema is None:
            for s in schemas:
                if (tree_guess or s.tree) in report.trees:
                    schemas = [s]
                    break
        sch = schemas[0]
        mp = load_mapping(mapping, sch)
        report.tree = mp.tree or sch.tree
        t = open_tree(path, report.tree)
        report.n_events = int(t.num_entries)
        available = set(t.keys())
        dp = derive.plan(sch.tree, sch.names, lambda n: mp.is_available(n, available))
        for b in sch.branches:
            explicit = b.name in mp.hits or mp.expression(b.name) != b.name
            if mp.is_available(b.name, available):
                report.present.append(b.name)
            elif explicit and _labels_from_tag(mp, b.name):
                report.missing_optional.append(b.name)
                report.missing_detail[b.name] = (f"mapped to {mp.expression(b.name)}, which this file lacks (no truth: "
                                                 "flight data); its events are labeled by the mapping's tag")
            elif explicit or (b.required and b.name not in dp.derived):
                report.missing_required.append(b.name)
                detail = missing_line(mp, b.name, available).strip()[len(b.name):].lstrip(":; ")
                if detail:
                    report.missing_detail[b.name] = detail
            elif b.name in dp.derived:
                report.derived[b.name] = dp.derived[b.name].by
            else:
                report.missing_optional.append(b.name)
        stats = ReadStats()
        readable = report.present + [n for n in report.derived if not report.missing_required]
        for name in list(readable):  # shape check on a few events, branch by branch
            try:
                next(iterate(path, sch, [name], mp, step_size=10, nan_policy="keep"), None)
            except SchemaError as exc:
                report.misshaped[name] = str(exc).split(": ", 1)[-1]
                readable.remove(name)
        if mp.tag is not None:  # the tag labels the events: evaluated when its variables can be read
            if set(mp.tag.variables()) - set(readable) - {"label"}:
                readable = [n for n in readable if n != "label"]  # its missing variables are reported above
            elif "label" not in readable:
                readable.append("label")
        for chunk in iterate(path, sch, readable, mp, step_size=step_size, nan_policy="keep", stats=stats):
            for k, v in count_nonfinite(chunk).items():
                report.nonfinite[k] = report.nonfinite.get(k, 0) + v
        for name, spec in mp.hits.items():
            if name in readable:
                st = stats.hits.get(name, {})
                report.hits[name] = (f"from {spec.layer}, {spec.cell}, {spec.edep} (layer_base {spec.layer_base}, "
                                     f"cell_base {spec.cell_base}): {st.get('hits', 0)} hits, "
                                     f"{st.get('duplicates', 0)} duplicates summed, {st.get('out_of_range', 0)} "
                                     f"out of range, {st.get('negative', 0)} negative, {st.get('nonfinite', 0)} "
                                     f"NaN/inf energies ({st.get('events_bad', 0)} events with bad hits)")
        if mp.tag is not None:
            report.tag = tag_text(tag_summary(stats.tag)) if stats.tag else "not evaluated (see the missing branches)"
        report.usable = not report.missing_required and not report.misshaped and report.n_events > 0
        if report.n_events == 0:
            report.error = f"tree '{report.tree}' has no events"
    except Exception as exc:  # the report is the answer; never a traceback
        report.error = str(exc)
        report.usable = False
    return report
