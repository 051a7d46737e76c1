"""The same cut flow on a dask cluster: the files are cut into entry ranges (:func:`amsnb.io.partitions`), each
range is read on a worker by the in-memory reader (:func:`amsnb.io.iterate`, so the same mapping: renames,
expressions, sparse hits, derived variables, units) and counted by the in-memory :func:`amsnb.cuts.cut_flow`; the
partition flows are summed. The many-file, many-worker route is therefore the same analysis, not a reduced one.

A local cluster (``processes=True, n_workers=2, threads_per_worker=1``: one process per core of a laptop or CI
runner) is started by default; pass ``scheduler="tcp://host:8786"`` to use a running one (a batch farm, a
dask-gateway; the workers need amsnb installed and the files on a shared path). Counts are integers and equal the
in-memory ones exactly; weight sums are accumulated in float64 and agree to rounding (the partition order of the
sums differs). Every file is opened and planned before any task is sent, so a bad file or mapping fails at once.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import ConfigError
from .flow import CutFlow, cut_flow


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


def _partition_flow(path, start: int, stop: int, branches: list[str], mapping, cutset, set_name,
                    event_filter=None) -> CutFlow:
    """The cut flow of one entry range, read and counted exactly as the in-memory path does (runs on a worker)."""
    from .. import io

    flow = cut_flow({}, cutset, set_name)
    for chunk in io.iterate(path, io.ECAL, branches, mapping, step_size=max(stop - start, 1), nan_policy="keep",
                            entries=(start, stop)):
        if event_filter is not None:
            keep = event_filter(chunk)
            chunk = {k: v[keep] for k, v in chunk.items()}
        flow += cut_flow(chunk, cutset, set_name)
    return flow


def cut_flow_dask(files, cutset="default", set_name: str | None = None, mapping=None, scheduler: str | None = None,
                  dask_client=None, step_size: str | int = "50 MB", event_filter=None) -> CutFlow:
    """The cut flow of ``files`` computed partition by partition on a dask cluster (see the module doc).

    ``dask_client``: an open ``distributed.Client`` to reuse; otherwise one is opened (``scheduler`` or local)
    for this call. ``step_size``: events or a size (``"50 MB"``) per partition. ``event_filter``: a picklable
    callable ``chunk -> mask`` with a ``branches`` attribute, applied before counting (the events of the files that
    form the set, e.g. :class:`amsnb.ecal.datasets.SetRouting` when one file list holds every set).
    """
    import dask

    from .. import io
    from ..mapping import load_mapping
    from . import load

    cutset = load(cutset)
    mp = load_mapping(mapping, io.ECAL)
    extra = tuple(getattr(event_filter, "branches", ())) if event_filter is not None else ()
    branches = sorted({*cutset.branches(), "label", "weight", *extra})
    parts = io.partitions(files, io.ECAL, branches, mp, step_size)
    tasks = [dask.delayed(_partition_flow)(path, a, b, branches, mp, cutset, set_name, event_filter)
             for path, a, b in parts]
    if dask_client is not None:
        flows = dask.compute(*tasks, scheduler=dask_client.get)
    else:
        with client(scheduler) as c:
            flows = dask.compute(*tasks, scheduler=c.get)
    total = cut_flow({}, cutset, set_name)
    for f in flows:
        total += f
    return total


def cut_flows_dask(sources: dict, cutset="default", mapping=None, scheduler: str | None = None,
                   step_size: str | int = "50 MB", event_filters: dict | None = None) -> dict[str, CutFlow]:
    """{set: CutFlow} for ``{set: files}`` (each set with its own windows and ``event_filters[set]`` if given),
    all on one cluster."""
    from . import load

    cutset = load(cutset)
    filters = event_filters or {}
    with client(scheduler) as c:
        return {name: cut_flow_dask(files, cutset, name, mapping, dask_client=c, step_size=step_size,
                                    event_filter=filters.get(name))
                for name, files in sources.items()}
