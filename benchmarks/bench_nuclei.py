"""Nuclei speed: simulation (nuclei/s, with and without ROOT writing), hit-graph building (events/s), MDA training
with domain adaptation (events/s on CPU) and inference, and one below-L1 template fit."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(quick: bool) -> list[dict]:
    import torch

    from amsnb import nuclei
    from amsnb.models import build
    from amsnb.nuclei import fits, sim
    from amsnb.nuclei.model import fit_normalization  # registers "mda"
    from amsnb.train.trainer import TrainConfig, fit, predict

    n = 20_000 if quick else 100_000
    rows = []
    sim.simulate(500, (15,), seed=0)
    t, a = _timed(lambda: sim.simulate(n, (14, 15, 16), "mc", seed=1))
    rows.append({"name": "simulate nuclei", "value": n / t, "unit": "nuclei/s",
                 "note": f"{n} events Z 14-16, 1 process"})
    tmp = Path(tempfile.mkdtemp(prefix="amsnb-bench-nuclei-"))
    t, _ = _timed(lambda: sim.simulate_to_root(tmp / "n.root", n, (14, 15, 16), "mc", seed=1, progress=False))
    rows.append({"name": "simulate + write nuclei", "value": n / t, "unit": "nuclei/s", "note": "LZ4(1), chunks 50k"})
    inp = nuclei.event_inputs(a)
    k = min(n, 10_000)
    nuclei.build_graph(inp["hits"][:10], inp["mask"][:10])  # import torch_geometric outside the timing
    t, _ = _timed(lambda: nuclei.build_graph(inp["hits"][:k], inp["mask"][:k]))
    rows.append({"name": "build hit graphs", "value": k / t, "unit": "events/s", "note": "vectorised batch transform"})

    mc = {z: sim.simulate(30_000, (z,), "mc", seed=z) for z in (15, 16)}
    ts = nuclei.training_set(mc, 15, 2000 if quick else 5000, composition={15: 0.5, 16: 0.5})
    tr = nuclei.NucleiDataset(ts, nuclei.labels(ts, 15))
    tg = nuclei.NucleiDataset(sim.simulate(len(tr), (15, 16), "data", seed=5), None, domain=1)
    torch.manual_seed(0)
    model = fit_normalization(build("mda"), tr)
    cfg = TrainConfig(epochs=1, batch_size=128, use_da=True, progress=False, resume=False)
    t, _ = _timed(lambda: fit(model, tr, None, tg, cfg, tmp / "train", collate_fn=nuclei.collate))
    rows.append({"name": "MDA training (DANN)", "value": len(tr) / t, "unit": "events/s",
                 "note": f"hidden 32, batch 128, source + target batch per step, {torch.get_num_threads()} threads"})
    t, _ = _timed(lambda: predict(model, tr, 2048, collate_fn=nuclei.collate))
    rows.append({"name": "MDA inference", "value": len(tr) / t, "unit": "events/s", "note": "batches of 2048"})

    m = nuclei.pooled_set(mc, 15, l1_cut=False)
    t, _ = _timed(lambda: fits.below_l1_fit(m, m, 15, (14.5, 15.5)))
    rows.append({"name": "below-L1 template fit", "value": t * 1e3, "unit": "ms",
                 "note": f"iminuit Template (jsc), 50 bins, {len(m['q_l1'])} events"})
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(f"{r['name']:28s} {r['value']:12.1f} {r['unit']:10s} {r['note']}")

