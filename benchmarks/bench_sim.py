"""ECAL fast-simulation speed: showers/s for generation (incl. reconstruction) and generation + ROOT writing, the
ratio of the ROOT write speed to a plain ``np.save`` of the same arrays, and the shower browser's per-event update.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeat=2):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run(quick: bool) -> list[dict]:
    from amsnb import io
    from amsnb.ecal import sim as ecal
    from amsnb.schema import ECAL

    n = 10_000 if quick else 50_000
    rows = []
    ecal.simulate(500, "electron", seed=0)  # warm caches / imports
    arrays = {}
    for part in ("electron", "proton"):
        t, arrays[part] = _best(lambda p=part: ecal.simulate(n, p, "mc", seed=1, energy_range=(200.0, 2000.0)))
        rows.append({"name": f"generate {part}s", "value": n / t, "unit": "showers/s",
                     "note": f"{n} events 0.2-2 TeV, images + reconstruction, 1 process"})
    tmp = Path(tempfile.mkdtemp(prefix="amsnb-bench-sim-"))
    try:
        t_gw, _ = _best(lambda: ecal.simulate_to_root(tmp / "e.root", n, "electron", seed=1, progress=False), 1)
        rows.append({"name": "generate + write electrons", "value": n / t_gw, "unit": "showers/s",
                     "note": "simulate_to_root, LZ4(1), chunks of 20k"})
        t_w, _ = _best(lambda: io.write(tmp / "w.root", arrays["electron"], ECAL), 1)
        t_np, _ = _best(lambda: [np.save(tmp / f"{k}.npy", v) for k, v in arrays["electron"].items()], 1)
        rows.append({"name": "ROOT write", "value": n / t_w, "unit": "showers/s", "note": "amsnb.io.write"})
        rows.append({"name": "ROOT write / np.save speed", "value": t_np / t_w, "unit": "ratio",
                     "note": "same arrays; 1 = as fast as np.save"})
    finally:
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()
    rows += _browser()
    return rows


def _browser() -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.ecal.shower_browser import ShowerBrowser

    b = ShowerBrowser(n=200, use_widget_canvas=False, blit=True)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        b.step(1)
        times.append(time.perf_counter() - t0)
    b.blit = False
    full = []
    for _ in range(10):
        t0 = time.perf_counter()
        b.step(1)
        full.append(time.perf_counter() - t0)
    return [{"name": "shower browser update (blit)", "value": 1e3 * float(np.median(times)), "unit": "ms",
             "note": "views + profiles + table + Agg blit of the changed artists + PNG for the Image widget"},
            {"name": "shower browser update (full draw)", "value": 1e3 * float(np.median(full)), "unit": "ms",
             "note": "full Agg draw + PNG (what blitting saves)"}]
