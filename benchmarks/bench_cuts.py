"""Cut flow throughput (in-memory chunked path vs uproot.dask + dask-awkward on a local 2-worker cluster) and the
ECAL BDT library comparison (LightGBM vs XGBoost vs sklearn HistGradientBoosting: validation rejection and time).

Data: the raw Table-1 samples of amsnb.ecal.sim (quick: scale 0.001, ~14k events; full: scale 0.01, ~140k events),
selected with the default cut set; the BDT comparison trains on the selected mc_high set.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _best(fn, repeat=2):
    best, out = None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, out


def run(quick: bool) -> list[dict]:
    from amsnb import cuts
    from amsnb.cuts import scaleout
    from amsnb.ecal import baselines, datasets
    from amsnb.ecal.datasets import DataRequest
    from amsnb.workdir import Workdir

    scale = 0.001 if quick else 0.01
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wd = Workdir(Path(tmp) / "wd")
        datasets.ensure_ecal_sets(wd, DataRequest(scale=scale, seed=1), progress=False)
        sources = datasets.source_files(wd)
        files = [f for v in sources.values() for f in v]
        cs = cuts.load("default")
        mem_s, mem = _best(lambda: cuts.cut_flow_files(files, cs, "mc_high", progress=False))
        n = int(sum(mem.counts[c][0] for c in mem.counts))
        rows.append({"name": "cut flow in memory (chunked uproot)", "value": n / mem_s, "unit": "events/s",
                     "note": f"{n} events, {len(files)} files, default cuts, cut branches only"})
        t0 = time.perf_counter()
        with scaleout.client(n_workers=2, threads_per_worker=1, processes=True) as c:
            start_s = time.perf_counter() - t0
            dask_s, flow = _best(lambda: scaleout.cut_flow_dask(files, cs, "mc_high", dask_client=c,
                                                                 step_size="20 MB"))
        rows.append({"name": "cut flow on dask (local 2 workers)", "value": n / dask_s, "unit": "events/s",
                     "note": f"cluster warm; identical counts: {flow.same_as(mem)}"})
        rows.append({"name": "dask local cluster start", "value": start_s, "unit": "s",
                     "note": "LocalCluster(processes=True, n_workers=2, threads_per_worker=1)"})
        for r in baselines.compare_libraries(baselines.training_data(wd, ["mc_high"])):
            if "skipped" in r:
                rows.append({"name": f"BDT {r['library']}", "value": float("nan"), "unit": "", "note": r["skipped"]})
                continue
            lim = ">" if r["rejection_90_is_limit"] else ""
            rows.append({"name": f"BDT {r['library']} train time", "value": r["train_s"], "unit": "s",
                         "note": f"{r['n_train']} train / {r['n_val']} val events, {r['n_trees']} trees; "
                                 f"val rejection@90% {lim}{r['rejection_90']:.4g}, @99.5% "
                                 f"{'>' if r['rejection_99p5_is_limit'] else ''}{r['rejection_99p5']:.4g}, "
                                 f"AUC {r['auc']:.5f}, log-loss {r['val_logloss']:.2e}"})
            rows.append({"name": f"BDT {r['library']} scoring", "value": r["score_us_per_event"],
                         "unit": "us/event", "note": "validation set, 1 thread"})
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
