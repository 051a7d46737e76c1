"""Install, import and ROOT I/O figures of the foundation.

- install: time and size of a fresh venv with the whole stack (full mode only; torch from this machine's disk);
- import: `import amsnb` and the heavy stack, in a fresh interpreter;
- ROOT write/read of the ECAL schema through amsnb.io against plain uproot writing/reading the same arrays and
  baskets (the ratio is the figure that matters: amsnb's checks and conversions must cost little).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _events(n: int):
    try:
        from amsnb.ecal import sim as ecal

        return ecal.simulate(n, particle="electron", seed=5), "simulated electrons"
    except Exception:  # the simulation is another module; fall back to sparse synthetic showers
        from amsnb.schema import ECAL

        rng = np.random.default_rng(5)
        a = ECAL.empty(n)
        img = rng.gamma(0.3, 50.0, size=(n, 18, 72)).astype(np.float32)
        img[:, :, :30] = 0
        img[:, :, 42:] = 0
        a["ecal_edep"][:] = img
        return a, "synthetic sparse showers"


def _best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _import_time(stmt: str) -> float:
    code = f"import time; t=time.perf_counter(); {stmt}; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _install() -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="amsnb-install-"))
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
        pip = [str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run(pip + ["torch==2.14.1", "torchvision==0.29.1"], check=True)
        subprocess.run(pip + ["-e", f"{ROOT}[test]"], check=True)
        seconds = time.perf_counter() - t0
        size = subprocess.run(["du", "-sb", str(tmp / "venv")], capture_output=True, text=True).stdout.split()[0]
        return [{"name": "install (fresh venv, full stack)", "value": seconds / 60, "unit": "min",
                 "note": "pip, torch from local disk"},
                {"name": "install size", "value": int(size) / 1e9, "unit": "GB", "note": "venv on disk"}]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sparse_rows(n: int, basket: int = 2000) -> list[dict]:
    """Sparse ECAL hits -> dense images through a mapping (amsnb.io.read: hits read, checked, scattered into float32
    18x72 images) vs plain uproot reading the same branches into awkward arrays, in one run:
    ``python benchmarks/bench_io.py sparse [N]``."""
    import awkward as ak
    import uproot

    from amsnb import io

    arrays, what = _events(n)
    img = arrays["ecal_edep"]
    ev, layer, cell = np.nonzero(img)
    counts = np.bincount(ev, minlength=n)
    edep = img[ev, layer, cell] / 1000.0  # GeV
    hits = ak.zip({"Plane": ak.unflatten(layer.astype(np.int32), counts),
                   "Cell": ak.unflatten(cell.astype(np.int32), counts),
                   "Edep": ak.unflatten(edep.astype(np.float32), counts)})
    tmp = Path(tempfile.mkdtemp(prefix="amsnb-sparse-"))
    try:
        path = tmp / "sparse.root"
        data = {"event": arrays["event"], "EcalHit": hits}
        with uproot.recreate(path, compression=uproot.LZ4(1)) as f:
            f.mktree("amstree", {"event": arrays["event"].dtype, "EcalHit": hits.type},
                     field_name=lambda outer, inner: f"{outer}_{inner}")
            for s in range(0, n, basket):  # one basket per extend; AMS ntuples hold a few thousand events each
                f["amstree"].extend({k: v[s:s + basket] for k, v in data.items()})
        mapping = {"tree": "amstree", "units": {"ecal_edep": 1000.0}, "branches": {"ecal_edep": {"hits": {
            "layer": "EcalHit_Plane", "cell": "EcalHit_Cell", "edep": "EcalHit_Edep"}}}}
        names = ["event", "EcalHit_Plane", "EcalHit_Cell", "EcalHit_Edep"]
        out = io.read(path, branches=["event", "ecal_edep"], mapping=mapping)
        np.testing.assert_allclose(out["ecal_edep"], img, rtol=1e-5, atol=1e-4)
        t_a = _best(lambda: io.read(path, branches=["event", "ecal_edep"], mapping=mapping))
        t_p = _best(lambda: uproot.open(path)["amstree"].arrays(names, library="ak"))
        note = (f"{n} {what}, {len(edep) / n:.0f} hits/event, {basket}-event baskets, "
                f"{path.stat().st_size / 1e6:.0f} MB file")
        return [
            {"name": "sparse hits -> images amsnb.io", "value": n / t_a, "unit": "events/s", "note": note},
            {"name": "sparse hits plain uproot", "value": n / t_p, "unit": "events/s", "note": "same branches, jagged"},
            {"name": "sparse read ratio amsnb/plain", "value": t_p / t_a, "unit": "x",
             "note": "issue 13 asks >= 0.5"},
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool) -> list[dict]:
    import uproot

    from amsnb import io
    from amsnb.schema import ECAL

    rows = []
    if not quick:
        rows += _install()
    rows.append({"name": "import amsnb", "value": _import_time("import amsnb, amsnb.io"), "unit": "s", "note": ""})
    rows.append({"name": "import stack", "unit": "s", "note": "torch timm torch_geometric uproot awkward hist mplhep",
                 "value": _import_time("import torch, timm, torch_geometric, uproot, awkward, hist, mplhep")})
    n = 20_000 if quick else 100_000
    arrays, what = _events(n)
    nbytes = sum(v.nbytes for v in arrays.values())
    tmp = Path(tempfile.mkdtemp(prefix="amsnb-io-"))
    try:
        f_amsnb, f_plain = tmp / "amsnb.root", tmp / "plain.root"
        t_w = _best(lambda: io.write(f_amsnb, arrays, ECAL), 1)

        def plain_write():
            with uproot.recreate(f_plain, compression=uproot.LZ4(1)) as f:
                f.mktree("ecal", {k: np.dtype((v.dtype, v.shape[1:])) if v.ndim > 1 else v.dtype
                                  for k, v in arrays.items()})
                for s in range(0, n, 50_000):
                    f["ecal"].extend({k: v[s:s + 50_000] for k, v in arrays.items()})

        t_pw = _best(plain_write, 1)
        t_r = _best(lambda: io.read(f_amsnb))
        t_pr = _best(lambda: uproot.open(f_amsnb)["ecal"].arrays(library="np"))
        np.save(tmp / "images.npy", arrays["ecal_edep"])
        t_npy = _best(lambda: np.load(tmp / "images.npy", mmap_mode="r").sum(dtype=np.float64))
        note = f"{n} {what}, LZ4(1), {f_amsnb.stat().st_size / 1e6:.0f} MB file"
        rows += [
            {"name": "ROOT write amsnb.io", "value": n / t_w, "unit": "events/s", "note": note},
            {"name": "ROOT write amsnb.io", "value": nbytes / t_w / 1e6, "unit": "MB/s", "note": "uncompressed MB"},
            {"name": "ROOT write plain uproot", "value": n / t_pw, "unit": "events/s", "note": "same arrays"},
            {"name": "ROOT write ratio amsnb/plain", "value": t_pw / t_w, "unit": "x", "note": "1 = no overhead"},
            {"name": "ROOT read amsnb.io", "value": n / t_r, "unit": "events/s", "note": "all branches, chunked"},
            {"name": "ROOT read amsnb.io", "value": nbytes / t_r / 1e6, "unit": "MB/s", "note": "uncompressed MB"},
            {"name": "ROOT read plain uproot", "value": n / t_pr, "unit": "events/s", "note": "same baskets"},
            {"name": "ROOT read ratio amsnb/plain", "value": t_pr / t_r, "unit": "x", "note": "1 = no overhead"},
            {"name": "npy read (memory-mapped)", "value": n / t_npy, "unit": "events/s",
             "note": "images only, the training cache's format (amsnb.ecal.cache)"},
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows += sparse_rows(n)
    return rows


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "sparse":
    for row in sparse_rows(int(sys.argv[2]) if len(sys.argv) > 2 else 20_000):
        print(f"{row['name']:40s} {row['value']:12.3g} {row['unit']:9s} {row['note']}")
