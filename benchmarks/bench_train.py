"""Training and inference speed of the ECAL image models on this machine, through the real data path.

Data: simulated electrons + protons written to ROOT, converted to the memory-mapped training cache
(amsnb.ecal.cache) and read by EcalDataset, so the loader's cost is included: ``data_wait_frac`` is the fraction of
the training loop spent waiting for the next batch (the loader must not starve the model). Training runs
amsnb.train.fit itself (DA on: each step also processes a target batch; images/s counts source images, so the
network sees twice as many). Quick mode: tiny presets, a few batches; full mode adds the small presets and
the GPU-sized cvt13 / coatnet0 for a handful of batches. CPU threads: torch's default and 1 (on a shared
machine a single thread avoids oversubscription; see TrainConfig.cpu_threads).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _cache(tmp: Path, n: int):
    import numpy as np

    from amsnb import io
    from amsnb.ecal import sim as ecal
    from amsnb.ecal.cache import EcalDataset, build_cache
    from amsnb.schema import ECAL

    e = ecal.simulate(n // 2, "electron", seed=11, energy_range=(1000.0, 2000.0))
    p = ecal.simulate(n - n // 2, "proton", seed=12, energy_range=(1000.0, 2000.0))
    arrays = {k: np.concatenate([e[k], p[k]]) for k in e}
    io.write(tmp / "bench.root", arrays, ECAL)
    return EcalDataset(build_cache(tmp / "bench.root", tmp / "cache", progress=False))


def _one(name, preset, ds, threads, steps, batch):
    import torch

    from amsnb.models import build
    from amsnb.train import TrainConfig, fit, predict

    default_threads = torch.get_num_threads()
    torch.manual_seed(0)
    model = build(name, preset)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(epochs=1, batch_size=batch, use_da=True, max_steps_per_epoch=steps, progress=False,
                          cpu_threads=threads, resume=False, patience=99)
        res = fit(model, ds, None, ds, cfg, out)
    row = res.history[-1]
    n_inf = min(len(ds), steps * batch)
    sub = ds.subset(n_inf)
    predict(model, sub.subset(64), 256)  # warm-up
    t0 = time.perf_counter()
    predict(model, sub, 256)
    inf = n_inf / (time.perf_counter() - t0)
    torch.set_num_threads(default_threads)
    tag = f"{name}_{preset} threads={threads or default_threads}"
    params = sum(p.numel() for p in model.parameters())
    note = f"{params / 1e6:.2f} M params, batch {batch}, {steps} steps, DA on"
    return [dict(name=f"train {tag}", value=round(row["images_per_s"], 1), unit="img/s", note=note),
            dict(name=f"data wait {tag}", value=round(100 * row["data_wait_frac"], 2), unit="%",
                 note="share of the training loop waiting for the loader (cache + collate)"),
            dict(name=f"inference {tag}", value=round(inf, 1), unit="img/s", note="predict(), batch 256")]


def run(quick: bool = True) -> list[dict]:
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = _cache(Path(tmp), 1024 if quick else 4096)
        plan = [("cnn", "tiny"), ("cvt", "tiny"), ("coatnet", "tiny")]
        if not quick:
            plan += [("cnn", "small"), ("cvt", "small"), ("coatnet", "small"), ("cvt", "cvt13"),
                     ("coatnet", "coatnet0")]
        for name, preset in plan:
            big = preset in ("cvt13", "coatnet0")
            steps, batch = (2, 32) if big else ((4, 64) if quick else (16, 128))
            for threads in sorted({None, 1}, key=lambda t: t or 0):
                rows += _one(name, preset, ds, threads, steps, batch)
        rows.append(dict(name="torch default CPU threads", value=torch.get_num_threads(), unit="",
                         note="threads=None rows use this"))
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(f"{r['name']:<40} {r['value']:>10} {r['unit']:<6} {r['note']}")
