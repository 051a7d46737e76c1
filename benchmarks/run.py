"""Run the amsnb benchmarks and print one table: `python benchmarks/run.py [--quick] [--only io,sim]`.

Each `benchmarks/bench_<area>.py` has `run(quick: bool) -> list[dict(name, value, unit, note)]`. Results are also
written to benchmarks/results/<date>.json with the machine they ran on. Numbers in notes and the README come from here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    """The 1/5/15-minute load averages: on a shared machine wall-clock figures scale with it (compare ratios)."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else "load n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (minutes), skips the fresh-venv install")
    ap.add_argument("--only", default="", help="comma-separated areas, e.g. io,sim")
    args = ap.parse_args(argv)
    only = {a for a in args.only.split(",") if a}
    rows, failed = [], []
    load_start = load()
    for path in sorted(HERE.glob("bench_*.py")):
        area = path.stem[len("bench_"):]
        if only and area not in only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        t0 = time.perf_counter()
        try:
            spec.loader.exec_module(mod)
            for row in mod.run(args.quick):
                rows.append({"area": area, **row})
        except Exception:
            failed.append(area)
            traceback.print_exc()
        print(f"[{area}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    width = max((len(r["name"]) for r in rows), default=10)
    print(f"\namsnb benchmarks on {machine()} ({'quick' if args.quick else 'full'}); {load_start} at the start, "
          f"{load()} at the end\n")
    print(f"{'area':8} {'benchmark':{width}} {'value':>12} {'unit':12} note")
    for r in rows:
        v = r["value"]
        vs = f"{v:12.4g}" if isinstance(v, (int, float)) else f"{v!s:>12}"
        print(f"{r['area']:8} {r['name']:{width}} {vs} {r.get('unit', ''):12} {r.get('note', '')}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps({"machine": machine(), "load_start": load_start, "load_end": load(), "quick": args.quick,
                    "rows": rows}, indent=2))
    if failed:
        print(f"\nFAILED benchmarks: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
