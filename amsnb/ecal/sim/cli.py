"""``amsnb simulate ecal``: the command line of the ECAL simulation (:func:`cli_main`, also reachable as
``amsnb.ecal.sim.cli_main``, which ``amsnb/cli.py`` dispatches to)."""

from __future__ import annotations

from .artefacts import generate_table1, write_set
from .engine import simulate_to_root
from .events import ROOT_CHUNK
from .table1 import SetSpec


def cli_main(argv: list[str] | None = None) -> int:
    """``amsnb simulate ecal --preset table1|electrons|protons|mixed --n N --domain mc|iss --seed S --out FILE``."""
    from ...cliargs import ArgumentParser, nonnegative_int, positive_float, positive_int

    ap = ArgumentParser(prog="amsnb simulate ecal", description="simulate AMS-02 ECAL showers to ROOT")
    ap.add_argument("--preset", default="mixed", choices=["table1", "electrons", "protons", "mixed"],
                    help="what to simulate (table1: the five raw sets of seed 000's Table 1)")
    ap.add_argument("--n", type=positive_int, default=10_000, help="events (mixed: half electrons, half protons)")
    ap.add_argument("--domain", default="mc", choices=["mc", "iss"], help="simulation (mc) or ISS-like detector")
    ap.add_argument("--seed", type=nonnegative_int, default=1, help="random seed")
    ap.add_argument("--out", required=True, help="output ROOT file (table1: output folder)")
    ap.add_argument("--scale", type=positive_float, default=0.001, help="table1: fraction of the seed's Table 1 sizes")
    ap.add_argument("--iss-scale", type=positive_float, default=None, help="table1: ISS-set scale (default = --scale)")
    ap.add_argument("--emin", type=positive_float, default=200.0, help="reconstructed energy range low edge, GeV")
    ap.add_argument("--emax", type=positive_float, default=2000.0, help="reconstructed energy range high edge, GeV")
    ap.add_argument("--workers", type=nonnegative_int, default=0,
                    help="processes simulating chunks (0: one per core); the output does not depend on it")
    args = ap.parse_args(argv)
    if args.emin >= args.emax:
        ap.error(f"--emin {args.emin:g} must be below --emax {args.emax:g}")
    if args.preset == "table1":
        paths = generate_table1(args.out, args.scale, args.seed, args.iss_scale or args.scale,
                                workers=args.workers)
        for name, p in paths.items():
            print(f"{name}: {p}")
        return 0
    rng_range = (args.emin, args.emax)
    if args.preset in ("electrons", "protons"):
        simulate_to_root(args.out, args.n, args.preset[:-1], args.domain, args.seed, rng_range,
                         workers=args.workers)
    else:
        spec = SetSpec("mixed", args.domain, 0, 0, rng_range)
        write_set(args.out, spec, args.n // 2, args.n - args.n // 2, args.seed, 0, chunk=ROOT_CHUNK,
                  workers=args.workers)
    print(args.out)
    return 0
