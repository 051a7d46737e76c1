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


def _cache(tmp: Path, n: int, dtype: str = "float32"):
    import numpy as np

    from amsnb import io
    from amsnb.ecal import sim as ecal
    from amsnb.ecal.cache import EcalDataset, build_cache
    from amsnb.schema import ECAL

    e = ecal.simulate(n // 2, "electron", seed=11, energy_range=(1000.0, 2000.0))
    p = ecal.simulate(n - n // 2, "proton", seed=12, energy_range=(1000.0, 2000.0))
    arrays = {k: np.concatenate([e[k], p[k]]) for k in e}
    io.write(tmp / "bench.root", arrays, ECAL)
    t0 = time.perf_counter()
    folder = build_cache(tmp / "bench.root", tmp / "cache", progress=False)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.save(tmp / "ref.npy", arrays["ecal_edep"])
    t_save = time.perf_counter() - t0
    return EcalDataset(folder), n / t_build, t_save / t_build


def _feed(ds, n: int) -> float:
    """Images/s the cache delivers to a batch (item access + collate into one tensor), single process."""
    import torch

    t0 = time.perf_counter()
    for s in range(0, n, 64):
        torch.stack([ds[i]["x"] for i in range(s, min(s + 64, n))])
    return n / (time.perf_counter() - t0)


def _recache(tmp: Path, dtype: str):
    from amsnb.ecal.cache import EcalDataset, build_cache

    return EcalDataset(build_cache(tmp / "bench.root", tmp / f"cache-{dtype}", dtype=dtype, progress=False))


def _load() -> str:
    import os

    return f"load {os.getloadavg()[0]:.2f}"


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
            dict(name=f"train / forward-only {tag}", value=round(row["images_per_s"] / inf, 3), unit="ratio",
                 note="same run, same model: the forward pass alone bounds training (1 = free backward + DA)"),
            dict(name=f"data wait {tag}", value=round(100 * row["data_wait_frac"], 2), unit="%",
                 note="share of the training loop waiting for the loader (cache + collate)"),
            dict(name=f"inference {tag}", value=round(inf, 1), unit="img/s", note="predict(), batch 256")]


def run(quick: bool = True) -> list[dict]:
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ds, build_rate, build_ratio = _cache(Path(tmp), 1024 if quick else 4096)
        rows.append(dict(name="cache build", value=round(build_rate, 1), unit="img/s",
                         note=f"ROOT -> memory-mapped float32 .npy; {_load()}"))
        rows.append(dict(name="cache build / np.save", value=round(build_ratio, 3), unit="ratio",
                         note="same run: np.save of the same images bounds it"))
        plan = [("cnn", "tiny"), ("cvt", "tiny"), ("coatnet", "tiny")]
        if not quick:
            plan += [("cnn", "small"), ("cvt", "small"), ("coatnet", "small"), ("cvt", "cvt13"),
                     ("coatnet", "coatnet0")]
        for name, preset in plan:
            big = preset in ("cvt13", "coatnet0")
            steps, batch = (2, 32) if big else ((4, 64) if quick else (16, 128))
            for threads in sorted({None, 1}, key=lambda t: t or 0):
                rows += _one(name, preset, ds, threads, steps, batch)
        best = max(r["value"] for r in rows if r["name"].startswith("train ") and r["unit"] == "img/s")
        for dtype in ("float32", "log16"):
            dsd = ds if dtype == "float32" else _recache(Path(tmp), dtype)
            feed = _feed(dsd, len(dsd))
            rows.append(dict(name=f"cache feed {dtype}", value=round(feed, 1), unit="img/s",
                             note=f"EcalDataset items + collate, 1 process; {_load()}"))
            rows.append(dict(name=f"cache feed {dtype} / fastest training", value=round(feed / best, 1),
                             unit="ratio", note=f"same run; the fastest CPU model trains {best:.0f} img/s (aim >= 10)"))
        rows.append(dict(name="torch default CPU threads", value=torch.get_num_threads(), unit="",
                         note="threads=None rows use this"))
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(f"{r['name']:<40} {r['value']:>10} {r['unit']:<6} {r['note']}")
