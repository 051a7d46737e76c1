"""The ``amsnb`` command line: run the notebook series, check a ROOT file, simulate, train.

    amsnb run --profile smoke|binder|default|full [--only 03] [--workdir DIR] [-p name value ...]
              [--sweep name=v1,v2 ...]
    amsnb check FILE.root|'DIR/*.root'|SET=FILES ... [--mapping M.yaml] [--schema ecal|nuclei]
    amsnb simulate ecal|nuclei ...      (see `amsnb simulate ecal --help`)
    amsnb train --config FILE           (single process, or under torchrun for DDP)
    amsnb schema                        (print the ROOT schema as Markdown)
    amsnb kernel                        (register this environment's Jupyter kernel "amsnb")

Errors meant for the user (bad file, bad parameter) print one clear message and exit 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

from .cliargs import ArgumentParser
from .errors import AmsnbError

_DELEGATED = {  # subcommand -> module whose cli_main(argv) handles it
    ("simulate", "ecal"): "amsnb.ecal.sim",
    ("simulate", "nuclei"): "amsnb.nuclei.sim",
    ("train",): "amsnb.ecal.train_cli",
}


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="amsnb", description="AMS-02 particle-identification notebooks toolkit")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute the numbered notebooks with papermill")
    r.add_argument("--profile", default="default",
                   help="smoke | binder | default | full | da_compare (amsnb/profiles.yaml)")
    r.add_argument("--only", action="append", default=[], help="notebook number(s), e.g. --only 03 or --only 01,02")
    r.add_argument("--workdir", default=None, help="run folder (default runs/<profile>)")
    r.add_argument("--notebooks", default=None, help="folder of the notebook series (default: the checkout's)")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a notebook parameter (YAML value)")
    r.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2",
                   help="run each notebook once per value (several --sweep: the grid)")
    r.add_argument("--fresh", action="store_true",
                   help="recompute every artefact of the run folder made before this run (default: reuse those "
                        "whose stamp matches the request, code and inputs exactly)")

    c = sub.add_parser("check", help="tell whether ROOT files work with amsnb (exit 0 only if all do)")
    c.add_argument("files", nargs="+", metavar="FILE",
                   help="ROOT files or globs ('data/*.root'), or per set: SET=FILES (mc_high='mc/e_*.root,mc/p_*.root'"
                        " iss_test=flight.root); with --mapping or per set, also the events each ECAL set receives")
    c.add_argument("--mapping", default=None, help="branch mapping YAML for a file with other branch names")
    c.add_argument("--schema", default=None, choices=["ecal", "nuclei", "scores"], help="default: from the trees")

    sub.add_parser("simulate", help="simulate events into a ROOT file: `amsnb simulate ecal|nuclei --help`",
                   add_help=False)
    sub.add_parser("train", help="train a model from a config file (DDP under torchrun)", add_help=False)
    a = sub.add_parser("app", help="serve an interactive app with Voila: shower_browser | cut_explorer | "
                                   "threshold_tuner (docs/widgets.md)")
    a.add_argument("app", help="shower_browser | cut_explorer | threshold_tuner")
    a.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="an app parameter, e.g. -p data_file runs/default/data/ecal/mc_high.root")
    a.add_argument("--port", type=int, default=8866)
    a.add_argument("--open", action="store_true", help="open a browser on the page")
    sub.add_parser("schema", help="print the ROOT event schema as Markdown")
    sub.add_parser("kernel", help="register this environment's Jupyter kernel 'amsnb'")
    return p


def _simulate_parser() -> ArgumentParser:
    p = ArgumentParser(prog="amsnb simulate", description="simulate events into a ROOT file; "
                       "`amsnb simulate ecal --help` and `amsnb simulate nuclei --help` list the options")
    p.add_argument("detector", choices=["ecal", "nuclei"],
                   help="ecal: ECAL showers (electrons, protons); nuclei: heavy nuclei in the tracker")
    return p


def _delegate(argv: list[str]) -> int | None:
    for key, module in _DELEGATED.items():
        if tuple(argv[: len(key)]) == key:
            return import_module(module).cli_main(argv[len(key):]) or 0
    if argv and argv[0] == "simulate":  # no detector (or a wrong one): its help exits 0, anything else 2
        _simulate_parser().parse_args(argv[1:])
    return None


def _run(args) -> int:
    from . import runner
    from .profiles import parse_value

    only = [o for item in args.only for o in item.split(",") if o]
    params = {name: parse_value(value) for name, value in args.param}
    sweeps = {}
    for spec in args.sweep:
        if "=" not in spec:
            raise AmsnbError(f"--sweep '{spec}': expected NAME=V1,V2")
        name, values = spec.split("=", 1)
        sweeps[name] = [parse_value(v) for v in values.split(",")]
    from .ecal.datasets import preflight

    runner.run_series(args.profile, only or None, args.workdir, params, sweeps or None, args.notebooks,
                      fresh=args.fresh, preflight=preflight)
    return 0


def _check_inputs(files: list[str]):
    """The positional arguments of ``amsnb check``: a file list, or ``SET=FILES`` per ECAL set."""
    from .ecal.datasets import TABLE1_SETS

    per_set = {}
    for item in files:
        name, eq, value = item.partition("=")
        if eq and name in TABLE1_SETS:
            per_set.setdefault(name, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif per_set or any(f.partition("=")[0] in TABLE1_SETS for f in files):
            raise AmsnbError(f"amsnb check: '{item}' has no set name; give every argument as SET=FILES "
                             f"(sets: {', '.join(TABLE1_SETS)}) or none")
    return per_set or None


def _check(args) -> int:
    from .errors import InputFileError
    from .io import check_file, expand_files

    per_set = _check_inputs(args.files)
    try:
        paths = expand_files([f for fs in per_set.values() for f in fs] if per_set else args.files)
    except InputFileError as exc:
        print(f"ERROR: {exc}\nusable: NO")
        return 1
    paths = list(dict.fromkeys(paths))
    usable, trees = True, set()
    for i, path in enumerate(paths):
        report = check_file(path, mapping=args.mapping, schema=args.schema)
        print(("\n" if i else "") + report.text())
        usable &= report.usable
        trees.add(report.tree)
    if len(paths) > 1:
        print(f"\n{len(paths)} files: " + ("all usable" if usable else "NOT all usable"))
    if usable and (per_set or args.mapping) and args.schema in (None, "ecal") and "nuclei" not in trees:
        from .ecal.datasets import expected_sets, expected_sets_text

        try:
            print("\n" + expected_sets_text(expected_sets(per_set or [str(p) for p in paths], args.mapping)))
        except AmsnbError as exc:
            print(f"\nevents per set: not computed ({exc})")
    return 0 if usable else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _delegate(argv)
        if code is not None:
            return code
        args = _parser().parse_args(argv)
        if args.command == "run":
            return _run(args)
        if args.command == "check":
            return _check(args)
        if args.command == "app":
            from .widgets.app import serve

            return serve(args.app, dict(args.param), port=args.port, open_browser=args.open)
        if args.command == "schema":
            from .schema import markdown

            print(markdown())
            return 0
        if args.command == "kernel":
            from .runner import ensure_kernel

            print(f"kernel '{ensure_kernel()}' registered for {sys.executable}")
            return 0
    except AmsnbError as exc:
        print(f"amsnb: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `amsnb schema | head`: the reader stopped listening; not an error
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        print("amsnb: interrupted; finished files are kept, rerun to resume", file=sys.stderr)
        return 130
    return 0


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
