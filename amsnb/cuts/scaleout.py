"""The same cut flow on a dask cluster: ``uproot.dask`` reads the files lazily as dask-awkward arrays, the cut set
builds its masks on them (numpy ufuncs and comparisons only, so the code is the in-memory one), and the per-class
counts and weight sums are computed on a ``dask.distributed`` cluster.

A local cluster (``processes=True, n_workers=2, threads_per_worker=1``: one process per core of a laptop or CI
runner) is started by default; pass ``scheduler="tcp://host:8786"`` to use a running one (a batch farm, a
dask-gateway). Counts are integers and equal the in-memory ones exactly; weight sums are accumulated in float64
and agree to rounding (the partition order of the sums differs).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..errors import ConfigError, InputFileError
from .flow import CLASSES, CutFlow


@contextmanager
def client(scheduler: str | None = None, n_workers: int = 2, threads_per_worker: int = 1, processes: bool = True):
    """A ``dask.distributed.Client``: to ``scheduler`` if given, else on a new local cluster closed on exit."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            c = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"dask_scheduler='{scheduler}': cannot connect ({exc}); give a running scheduler's "
                              "address (tcp://host:8786) or leave it empty for a local cluster") from None
        try:
            yield c
        finally:
            c.close()
        return
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                           dashboard_address=None, silence_logs=40)
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _renames(mapping) -> tuple[str | None, dict[str, str], dict[str, float]]:
    """Tree name, schema -> file branch renames and unit factors of a mapping (plain renames only on dask)."""
    from ..mapping import load_mapping
    from ..schema import ECAL

    if mapping is None:
        return None, {}, {}
    mp = load_mapping(mapping, ECAL)
    for name, expr in mp.branches.items():
        if not expr.isidentifier():
            raise ConfigError(f"mapping {mp.source}: '{name}: {expr}' is an expression; the dask path supports plain "
                              "branch renames only. Use the in-memory path (use_dask=False) for this mapping")
    return mp.tree, dict(mp.branches), dict(mp.units)


def lazy_events(files, cutset, mapping=None, step_size: str | int = "50 MB"):
    """A dask-awkward record array of the branches the cut flow needs (schema names), one partition per step."""
    import dask_awkward as dak
    import uproot

    from ..io import expand_files, open_tree

    paths = expand_files(files)
    if not paths:
        raise InputFileError("no input files given: pass a ROOT file path, a glob or a list of paths")
    tree, renames, units = _renames(mapping)
    tree = tree or "ecal"
    present = set(open_tree(paths[0], tree).keys())  # also checks the first file is a readable ROOT tree
    for p in paths[1:]:
        if not p.exists():
            raise InputFileError(f"{p}: file not found")
    wanted = sorted({*cutset.branches(), "label", "weight"})
    if mapping is not None:
        from ..mapping import load_mapping
        from ..schema import ECAL

        mp = load_mapping(mapping, ECAL)
        hit_names = sorted(set(mp.hits) & set(wanted))
        if hit_names:
            raise ConfigError(f"mapping {mp.source}: {hit_names} are built from sparse hits; the dask path does not "
                              "build images yet. Use the in-memory path (use_dask=False) for this mapping")
    source = {n: renames.get(n, n) for n in wanted}
    missing = [n for n in cutset.branches() if source[n] not in present]
    if missing:
        raise InputFileError(f"{paths[0]}: tree '{tree}' lacks the branches {missing} the cuts need; map them "
                             "(docs/mapping.md)")
    read = sorted({source[n] for n in wanted if source[n] in present})
    arr = uproot.dask({str(p): tree for p in paths}, filter_name=read, step_size=step_size)
    fields = {}
    for n in wanted:
        if source[n] in present:
            f = arr[source[n]]
            fields[n] = f * units[n] if n in units else f
    if "label" not in fields:
        fields["label"] = dak.zeros_like(fields[cutset.branches()[0]], dtype=np.int8) - 1
    if "weight" not in fields:
        fields["weight"] = dak.ones_like(fields[cutset.branches()[0]], dtype=np.float64)
    return fields


def cut_flow_dask(files, cutset="default", set_name: str | None = None, mapping=None, scheduler: str | None = None,
                  dask_client=None, step_size: str | int = "50 MB") -> CutFlow:
    """The cut flow of ``files`` computed with dask-awkward on a cluster (see the module doc).

    ``dask_client``: an open ``distributed.Client`` to reuse; otherwise one is opened (``scheduler`` or local)
    for this call.
    """
    import dask
    import dask_awkward as dak

    from . import load

    cutset = load(cutset)
    ev = lazy_events(files, cutset, mapping, step_size)
    masks = cutset.masks(ev, set_name)
    cumulative = [ev["label"] == ev["label"]]
    for m in masks.values():
        cumulative.append(cumulative[-1] & m)
    # dask-awkward's scalar reductions do not work with this awkward version; each partition is reduced to a small
    # numpy array of counts by a delayed task instead (same result: sums of integers and float64 weights)
    record = dak.zip({"label": ev["label"], "weight": ev["weight"],
                      **{f"k{i}": k for i, k in enumerate(cumulative)}})
    parts = [dask.delayed(_partition_sums)(p, len(cumulative)) for p in record.to_delayed(optimize_graph=False)]
    if dask_client is not None:
        values = dask.compute(*parts, scheduler=dask_client.get)
    else:
        with client(scheduler) as c:
            values = dask.compute(*parts, scheduler=c.get)
    total = np.sum(values, axis=0) if values else np.zeros((len(CLASSES), len(cumulative), 3))
    flow = CutFlow.zeros(set_name or "events", ["all", *cutset.names],
                         ["all events", *(c.describe(set_name) for c in cutset.cuts)])
    for j, cls in enumerate(CLASSES):
        flow.counts[cls][:] = total[j, :, 0].astype(np.int64)
        flow.sumw[cls][:] = total[j, :, 1]
        flow.sumw2[cls][:] = total[j, :, 2]
    return flow


def _partition_sums(part, n_steps: int) -> np.ndarray:
    """(class, step, [count, sum w, sum w^2]) of one partition (a concrete awkward record array)."""
    import awkward as ak

    label = ak.to_numpy(part["label"])
    weight = ak.to_numpy(part["weight"]).astype(np.float64)
    out = np.zeros((len(CLASSES), n_steps, 3))
    for j, code in enumerate(CLASSES.values()):
        is_c = label == code
        for i in range(n_steps):
            sel = ak.to_numpy(part[f"k{i}"]) & is_c
            w = weight[sel]
            out[j, i] = (sel.sum(), w.sum(), (w * w).sum())
    return out


def cut_flows_dask(sources: dict, cutset="default", mapping=None, scheduler: str | None = None,
                   step_size: str | int = "50 MB") -> dict[str, CutFlow]:
    """{set: CutFlow} for ``{set: files}`` (each set with its own windows), all on one cluster."""
    from . import load

    cutset = load(cutset)
    with client(scheduler) as c:
        return {name: cut_flow_dask(files, cutset, name, mapping, dask_client=c, step_size=step_size)
                for name, files in sources.items()}
