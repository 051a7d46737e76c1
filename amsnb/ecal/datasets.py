"""The selected Table-1 sets of seed 000 (``mc_low, mc_high, iss_val, iss_test, iss_target``) plus ``mc_test``.

:func:`ensure_ecal_sets` takes the raw samples (simulated by :func:`amsnb.ecal.sim.generate_table1`, or the user's
ROOT files read through a branch mapping), applies a cut set (:mod:`amsnb.cuts`) chunk by chunk, and writes one ROOT
file per set into ``workdir/sets/`` with ``sets/manifest.json`` recording the cuts, the counts per class, the cut
flows, the seeds and the source files. The folder is one :mod:`amsnb.provenance` artefact: a second call with the
same request reuses it; any change (cuts, scale, seed, a source file, the generator code) selects again and says why.

The simulation has no separate MC test set, so the selected ``mc_high`` (1-2 TeV) is split: events whose hash of
(run, event) (splitmix64, uniform in [0, 1)) is below ``test_fraction`` form ``mc_test`` (the "MC Test Set
(1-2 TeV)" of seed 000 Fig. 8); the rest stay in ``mc_high``. The split depends only on the event identity, not on
the order of files or chunks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ConfigError, EmptySelectionError
from ..mapping import tag_summary, tag_text
from ..workdir import Workdir

TABLE1_SETS = ("mc_low", "mc_high", "iss_val", "iss_test", "iss_target")
TEST_SET = "mc_test"
SETS = (*TABLE1_SETS, TEST_SET)
TEST_FRACTION = 0.3
#: A raw mc_test sample (``test_protons``) is selected with mc_high's windows: it is the same 1-2 TeV MC.
WINDOW_OF = {TEST_SET: "mc_high"}
MANIFEST = "manifest.json"
#: Bumped whenever the manifest's content changes, so sets made by an older amsnb are remade, not misread.
MANIFEST_FORMAT = 5
#: Default ISS-like scale when none is given: 2 x ecal_scale (the profiles set iss_scale explicitly).
DEFAULT_ISS_FACTOR = 2.0


def event_hash(run, event) -> np.ndarray:
    """Uniform [0, 1) number per event from (run, event): splitmix64 (Steele et al., OOPSLA 2014) of run<<40 ^ event."""
    x = (np.asarray(run).astype(np.uint64) << np.uint64(40)) ^ np.asarray(event).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _file_info(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": round(st.st_mtime, 3)}


def _as_list(files) -> list[Path]:
    from ..io import expand_files

    return expand_files(files)


ISS_SETS = ("iss_val", "iss_test", "iss_target")
#: how the events of a set's files are filtered: "routed" (one list, by domain/label), "tagged" (per-set inputs with
#: a tag: iss_val/iss_test keep the tagged events, iss_target the untagged), "" (every event of the set's files)
ROUTED, TAGGED = "routed", "tagged"


def _has_tag(mapping) -> bool:
    from ..mapping import load_mapping
    from ..schema import ECAL

    return bool(mapping) and load_mapping(mapping, ECAL).tag is not None


def _resolve_inputs(input_files, mapping=None) -> tuple[dict[str, list[Path]], str]:
    """{set: files} and how their events are filtered (:data:`ROUTED`, :data:`TAGGED` or "").

    Per-set inputs with a mapping that declares a tag: the flight files of iss_val/iss_test keep their tagged
    events, and iss_target, when not given, is the untagged events of those files."""
    if isinstance(input_files, Mapping):
        unknown = set(input_files) - set(TABLE1_SETS)
        if unknown:
            raise ConfigError(f"input_files: unknown set names {sorted(unknown)}; use {', '.join(TABLE1_SETS)}")
        raw = {k: _as_list(v) for k, v in input_files.items()}
        if not _has_tag(mapping):
            return raw, ""
        if "iss_target" not in raw:
            flight = [f for s in ("iss_val", "iss_test") for f in raw.get(s, [])]
            if flight:
                raw["iss_target"] = list(dict.fromkeys(flight))
        return raw, TAGGED
    files = _as_list(input_files)
    if not files:
        raise ConfigError("input_files is empty: give ROOT files (a list, a comma-separated string or a glob)")
    return {s: files for s in TABLE1_SETS}, ROUTED


def _route(chunk: Mapping[str, np.ndarray], set_name: str, mode: str = ROUTED) -> np.ndarray:
    """Events of a set's files that belong to it. Routed (one user list): MC (domain 0) -> mc_low/mc_high (their
    energy windows separate them), labeled ISS (domain 1, label >= 0) -> iss_val/iss_test by event hash, unlabeled
    -> iss_target. Tagged (per-set inputs with a tag): iss_val/iss_test keep the labeled (tagged) events, iss_target
    the unlabeled ones, the MC sets everything."""
    domain, label = chunk["domain"], chunk["label"]
    if mode == TAGGED:
        if set_name == "iss_target":
            return label < 0
        if set_name in ("iss_val", "iss_test"):
            return label >= 0
        return np.ones(len(label), dtype=bool)
    if set_name in ("mc_low", "mc_high"):
        return domain == 0
    if set_name == "iss_target":
        return label < 0
    half = event_hash(chunk["run"], chunk["event"]) < 0.5
    labeled_iss = (domain == 1) & (label >= 0)
    return labeled_iss & (half if set_name == "iss_val" else ~half)


@dataclass(frozen=True)
class SetRouting:
    """The events of a set's files that form ``set_name`` (:func:`_route`), as a picklable chunk filter, so
    the dask cut flow (:func:`amsnb.cuts.scaleout.cut_flow_dask`) counts the same events as the selection."""
    set_name: str
    mode: str = ROUTED
    branches: tuple[str, ...] = ("domain", "label", "run", "event")

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> np.ndarray:
        return _route(chunk, self.set_name, self.mode)


def empty_target_line(n_events: int, files_desc: str = "input_files") -> str:
    """The one line for a DANN target that would be empty, with the two ways out."""
    return (f"iss_target (the unlabeled DANN target of notebook 04) will be empty: none of the {n_events} events of "
            f"{files_desc} is unlabeled (label < 0 after the mapping). Either declare a tag in the mapping (`tag:` "
            "with an electron and a proton expression; flight events it leaves untagged become iss_target; "
            "docs/mapping.md, amsnb/data/example_flight_tag_mapping.yaml) or give files per set with unlabeled "
            "flight files for it (input_files {mc_low: [...], mc_high: [...], iss_val: [...], iss_test: [...], "
            "iss_target: [flight files]}); or train without domain adaptation (-p use_da false).")


def expected_sets(input_files, mapping=None, progress: bool = False) -> dict[str, dict]:
    """{set: {events, electrons, protons, unlabeled}} each Table-1 set receives from the user's files after routing
    or tagging, before any cut (mc_test is split off the selected mc_high later). Reads only the label, domain,
    run and event branches (and the tag's variables): quick, so an empty set shows before any long work."""
    from .. import io

    raw, mode = _resolve_inputs(input_files, mapping)
    groups: dict[tuple, list[str]] = {}
    for name, files in raw.items():
        groups.setdefault(tuple(files), []).append(name)
    out = {name: {"events": 0, "electrons": 0, "protons": 0, "unlabeled": 0} for name in TABLE1_SETS}
    read = {}
    for files, names in groups.items():
        for chunk in io.iterate(list(files), branches=["label", "domain", "run", "event"], mapping=mapping,
                                nan_policy="keep"):
            for name in names:
                read[name] = read.get(name, 0) + len(chunk["label"])
                lab = chunk["label"][_route(chunk, name, mode)] if mode else chunk["label"]
                c = out[name]
                c["events"] += len(lab)
                c["electrons"] += int((lab == 1).sum())
                c["protons"] += int((lab == 0).sum())
                c["unlabeled"] += int((lab < 0).sum())
    return {name: {**c, "given": name in raw, "read": read.get(name, 0)} for name, c in out.items()}


def expected_sets_text(counts: Mapping[str, dict]) -> str:
    """What each set will receive, one line per set, and the line for an empty DANN target."""
    lines = ["events per set after routing/tagging, before cuts:"]
    for name, c in counts.items():
        lines.append(f"  {name:<10} {c['events']:>9} ({c['electrons']} electrons, {c['protons']} protons, "
                     f"{c['unlabeled']} unlabeled)" + ("" if c.get("given", True) else "  (no files given)"))
    if "iss_target" in counts and counts["iss_target"]["events"] == 0:
        total = max(c.get("read", c["events"]) for c in counts.values())
        lines.append("WARNING: " + empty_target_line(total))
    return "\n".join(lines)


#: the sets :func:`amsnb.ecal.experiment.prepare` (notebooks 04, 08) needs, besides the training set (notebook 04
#: without DA does without iss_target)
PREPARE_SETS = ("iss_val", "iss_test", "iss_target", "mc_high")


def preflight(parameters: Mapping[str, Mapping]) -> list[str]:
    """Before ``amsnb run`` starts: for the user's files of the ECAL notebooks, the events each set will receive
    (one summary line), and a :class:`ConfigError` with one correct line when a set that a notebook of the run needs
    would be empty. ``parameters``: {notebook number: its resolved parameters}; returns the lines to print."""
    seen, lines = {}, []
    for nn, p in sorted(parameters.items()):
        files = p.get("input_files")
        if not files or "mapping" not in p:
            continue
        key = repr((files, p.get("mapping")))
        if key not in seen:
            seen[key] = expected_sets(files, p.get("mapping") or None)
            counts = seen[key]
            lines.append("sets from input_files (before cuts): " + ", ".join(
                f"{k} {c['events']}" for k, c in counts.items()))
        counts = seen[key]
        if nn not in ("04", "08"):
            continue
        for name in (p.get("train_set") or "mc_high", *PREPARE_SETS):
            if counts[name]["events"] or (name == "iss_target" and nn == "04" and p.get("use_da") is False):
                continue
            total = max(c.get("read", c["events"]) for c in counts.values())
            if name == "iss_target":
                raise ConfigError(f"notebook {nn} needs it: " + empty_target_line(total))
            if not isinstance(files, Mapping):
                why = "no event of input_files is routed to it (check the mapping's label and domain expressions)"
            elif not counts[name]["given"]:
                why = f"input_files gives no files for it (add {name}: [files])"
            else:
                why = "its files give no event (for flight files: none that the mapping's tag selects)"
            raise ConfigError(f"notebook {nn} needs set '{name}', which will be empty: {why}")
    return lines


def event_filters(workdir) -> dict[str, SetRouting]:
    """{set: SetRouting} when the sets were routed out of one file list (user files), else {} (one file per set)."""
    man = load_manifest(workdir)
    origin = man.get("request", {}).get("origin", {})
    mode = ROUTED if origin.get("routed") else origin.get("filter", "")
    if not mode:
        return {}
    return {name: SetRouting(name, mode) for name in man.get("sources", {}) if mode == ROUTED or name in ISS_SETS}


def load_manifest(workdir) -> dict:
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    path = wd.sets / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass(frozen=True)
class DataRequest:
    """What the selected ECAL sets are made from: the one data request the notebooks build once (from their
    parameters, :meth:`from_parameters`) and every function of the ECAL wing takes. Its fields are what the sets'
    provenance stamp records.

    ``scale``, ``iss_scale``, ``seed``, ``test_protons``, ``target_events``: the simulation's request
    (:func:`amsnb.ecal.sim.generate_table1`; 0 or None for a count: Table 1's own size); ``cuts``: a shipped cut set
    name, a YAML path or a :class:`amsnb.cuts.CutSet`; ``input_files``: the user's ROOT files instead of the
    simulation (a list, a glob or comma string, or ``{set: files}``; empty: simulate) with their branch ``mapping``
    (a YAML path or a dict; empty: none). Empty values are normalised to None, lists to tuples.
    """

    scale: float
    seed: int = 1
    iss_scale: float | None = None
    test_protons: int | None = None
    target_events: int | None = None
    cuts: object = "default"
    input_files: object = None
    mapping: object = None

    #: notebook parameter -> field (the parameters cell says ``ecal_scale``: the nuclei notebooks have scales too)
    PARAMETERS = {"ecal_scale": "scale", "seed": "seed", "iss_scale": "iss_scale", "test_protons": "test_protons",
                  "target_events": "target_events", "cuts": "cuts", "input_files": "input_files",
                  "mapping": "mapping"}

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if not isinstance(self.scale, (int, float)) or isinstance(self.scale, bool) or not self.scale > 0:
            raise ConfigError(f"ecal_scale={self.scale!r}: give a positive fraction of seed 000's Table 1 sizes")
        if self.iss_scale is not None and not self.iss_scale > 0:
            raise ConfigError(f"iss_scale={self.iss_scale!r}: give a positive number (or None: 2 x ecal_scale)")
        for name in ("test_protons", "target_events"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"{name}={value!r}: give a number of raw events (0: Table 1's own size)")
            put(name, value or None)
        files = self.input_files
        if isinstance(files, Mapping):
            put("input_files", {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in files.items()}
                or None)
        elif isinstance(files, (list, tuple)):
            put("input_files", tuple(str(f) for f in files) or None)
        else:
            put("input_files", files or None)
        if not isinstance(self.mapping, Mapping):
            put("mapping", str(self.mapping) if self.mapping else None)
        if not self.cuts:
            put("cuts", "default")

    @classmethod
    def from_parameters(cls, parameters: Mapping) -> DataRequest:
        """The request of a notebook's parameters (:func:`amsnb.profiles.notebook_parameters`)."""
        return cls(**{field: parameters[name] for name, field in cls.PARAMETERS.items() if name in parameters})

    @property
    def simulated(self) -> bool:
        return not self.input_files

    def cutset(self):
        from .. import cuts as cutlib

        return cutlib.load(self.cuts)

    def simulation(self) -> dict:
        """The simulation's part of the sets' stamp (the request of :func:`amsnb.ecal.sim.generate_table1`)."""
        return {"kind": "amsnb.ecal.sim.generate_table1", "scale": self.scale, "seed": self.seed,
                "iss_scale": self.iss_scale, "test_protons": self.test_protons, "target_events": self.target_events}


def _raw_inputs(wd: Workdir, request: DataRequest, progress: bool, fresh: bool):
    """({set: raw files}, routed?, the origin part of the sets' stamp) of a request: the user's files, or the
    simulated Table-1 samples (generated into ``data/ecal/`` if missing or out of date)."""
    if request.input_files:
        mapping = request.mapping
        raw, mode = _resolve_inputs(request.input_files, mapping)
        return raw, mode, {"kind": "user files", "mapping": str(mapping) if mapping else None,
                           "routed": mode == ROUTED, "filter": mode}
    from .sim import generate_table1

    previous = load_manifest(wd).get("request", {}).get("origin", {})
    if previous.get("kind") == "user files":
        raise ConfigError(f"{wd.sets} holds sets selected from your own files ({previous.get('mapping') or 'no '}"
                          "mapping); this call has no input_files and would replace them with simulation. "
                          "Pass the same input_files/mapping parameters, or use another workdir.")
    if request.iss_scale is None:
        same = previous.get("scale") == request.scale and previous.get("seed") == request.seed
        iss_scale = previous["iss_scale"] if same and previous.get("iss_scale") else DEFAULT_ISS_FACTOR * request.scale
        request = dataclasses.replace(request, iss_scale=iss_scale)
    paths = generate_table1(wd.ecal_data, request.scale, request.seed, request.iss_scale, progress=progress,
                            fresh=fresh, test_protons=request.test_protons, target_events=request.target_events)
    return {k: [v] for k, v in paths.items()}, "", request.simulation()


def raw_samples(workdir, request: DataRequest, *, progress: bool = True, fresh: bool = False) -> dict[str, list[Path]]:
    """{set: raw files} of a request before any cut: the simulated Table-1 samples (made if missing; notebook 01) or
    the user's files (for one routed list, every set names the whole list)."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    return _raw_inputs(wd, request, progress, fresh)[0]


def ensure_ecal_sets(workdir, request: DataRequest, *, progress: bool = True, test_fraction: float = TEST_FRACTION,
                     fresh: bool = False) -> dict[str, Path]:
    """Selected Table-1 sets in ``workdir/sets/`` (``{set: path}``) for a :class:`DataRequest`, made if missing or
    out of date.

    Simulated: ``generate_table1(scale, seed, iss_scale, test_protons, target_events)`` (``iss_scale=None``: the
    value of an existing manifest with the same scale and seed, else ``2 * scale`` as in every profile);
    ``test_protons`` makes ``mc_test`` a raw sample of its own, selected with mc_high's windows (mc_high is then not
    split); ``target_events`` is the raw size of the unlabeled DANN target ``iss_target``.
    The user's files: ``{set: [files]}`` or one list split by the ``domain``/``label`` branches (see
    :func:`_route`), read through the request's branch mapping.
    The ``sets/`` folder is one :mod:`amsnb.provenance` artefact: reused only for the same origin, cut set,
    test fraction and input files (by their stamps, or size and mtime for your own files); ``fresh`` remakes it.
    """
    from .. import provenance

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    if not isinstance(request, DataRequest):
        raise ConfigError(f"ensure_ecal_sets: expected a DataRequest, got {type(request).__name__}; build it once "
                          "with amsnb.ecal.datasets.DataRequest.from_parameters(p)")
    cutset = request.cutset()
    input_files, mapping, seed = request.input_files, request.mapping, request.seed
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction}: the mc_test share of mc_high must be in (0, 1)")
    raw, mode, origin = _raw_inputs(wd, request, progress, fresh)
    for files in raw.values():
        for f in files:
            if not f.exists():
                raise ConfigError(f"input file {f} not found; check input_files")
    sources = {k: [_file_info(f) for f in v] for k, v in raw.items()}
    stamped = {"origin": origin, "cuts": cutset.to_dict(), "test_fraction": test_fraction}
    inputs = {k: [provenance.identity(f) for f in v] for k, v in raw.items()}
    if mapping and not isinstance(mapping, Mapping):
        inputs["mapping"] = provenance.identity(mapping)
    stamp = provenance.Stamp("amsnb.ecal.datasets", str(MANIFEST_FORMAT), stamped, inputs)
    provenance.ensure(wd.sets, stamp, lambda folder: _select(wd, raw, mode, mapping, cutset, stamped, sources,
                                                             test_fraction, seed, input_files, progress),
                      fresh=fresh, label="sets", verb="selecting")
    return {name: wd.sets / info["file"] for name, info in load_manifest(wd)["sets"].items()}


def _select(wd: Workdir, raw, mode, mapping, cutset, request, sources, test_fraction, seed, input_files,
            progress) -> None:
    """Apply the cut set chunk by chunk and write the sets and ``manifest.json`` into ``wd.sets``."""
    from .. import cuts as cutlib
    from .. import io

    wd.sets.mkdir(parents=True, exist_ok=True)
    for old in wd.sets.glob("*.root"):
        old.unlink()
    (wd.sets / MANIFEST).unlink(missing_ok=True)
    sets_info, flows, skipped, tags = {}, {}, {}, {}
    t0 = time.time()
    from tqdm.auto import tqdm

    for set_name, files in tqdm(list(raw.items()), desc="selecting sets", unit="set", disable=not progress,
                                leave=False):
        split = set_name == "mc_high" and TEST_SET not in raw  # no mc_test sample of its own: split mc_high
        window = WINDOW_OF.get(set_name, set_name)  # the cut windows the set is selected with
        outs = [set_name, TEST_SET] if split else [set_name]
        writers = {o: io.TreeWriter(wd.sets / f"{o}.root") for o in outs}
        flow = cutlib.cut_flow({}, cutset, window)
        flow.set_name = set_name
        counts = {o: {"events": 0, "electrons": 0, "protons": 0, "unlabeled": 0, "sumw": 0.0} for o in outs}
        ok = False
        try:
            stats = io.ReadStats()
            for chunk in io.iterate(files, mapping=mapping, nan_policy="keep", stats=stats):  # NaN/inf: "finite"
                if mode == ROUTED or (mode == TAGGED and set_name in ISS_SETS):
                    chunk = {k: v[_route(chunk, set_name, mode)] for k, v in chunk.items()}
                flow += cutlib.cut_flow(chunk, cutset, window)
                if not len(chunk["event"]):
                    continue
                keep, _ = cutlib.finite_mask(chunk)
                for m in cutset.masks(chunk, window).values():
                    keep &= np.asarray(m)
                sel = {k: v[keep] for k, v in chunk.items()}
                parts = {set_name: sel}
                if split:
                    test = event_hash(sel["run"], sel["event"]) < test_fraction
                    parts = {set_name: {k: v[~test] for k, v in sel.items()},
                             TEST_SET: {k: v[test] for k, v in sel.items()}}
                for o, arr in parts.items():
                    writers[o].extend(arr)
                    c = counts[o]
                    c["events"] += len(arr["event"])
                    c["electrons"] += int((arr["label"] == 1).sum())
                    c["protons"] += int((arr["label"] == 0).sum())
                    c["unlabeled"] += int((arr["label"] < 0).sum())
                    c["sumw"] += float(arr["weight"].sum(dtype=np.float64))
            if stats.tag and stats.tag.get("events"):
                tags[set_name] = tag_summary(stats.tag)
            total = sum(flow.counts[c] for c in flow.counts)
            empty_step = next((i for i, v in enumerate(total) if v == 0), None)
            if empty_step is not None:
                if empty_step == 0 and set_name == "iss_target":
                    msg = empty_target_line(stats.events_kept, ", ".join(map(str, files)))
                elif empty_step == 0:
                    msg = f"set '{set_name}': no events in {', '.join(map(str, files))}"
                elif flow.steps[empty_step] == cutlib.FINITE:
                    msg = (f"set '{set_name}': no event of {int(total[0])} has all its values finite "
                           f"({flow.description(empty_step)}); check the files and the mapping's expressions")
                else:
                    step = flow.steps[empty_step]
                    msg = (f"set '{set_name}': cut '{step}' ({cutset[step].describe(window)}) left no events "
                           f"({int(total[0])} before the cuts). Loosen it in the cut set '{cutset.source}'")
                if not mode:
                    raise EmptySelectionError(msg)
                skipped[set_name] = msg
            else:
                for o in outs:
                    if counts[o]["events"] == 0:
                        raise EmptySelectionError(f"set '{o}': the mc_high/mc_test split left it empty "
                                                  f"({counts[set_name]['events']} selected events); "
                                                  "change test_fraction or raise the scale")
                ok = True
        finally:
            for w in writers.values():
                w.close(ok=ok and w.n_written > 0)
        if ok:
            for o in outs:
                path = wd.sets / f"{o}.root"
                sets_info[o] = {"file": path.name, "size": path.stat().st_size, **counts[o]}
            flows[set_name] = flow.to_dict()
    manifest = {
        "request": request,
        "sources": sources,
        "cuts": cutset.to_dict(),
        "cuts_digest": cutset.digest(),
        "sets": sets_info,
        "cut_flows": flows,
        "skipped": skipped,
        "tag": tags,  # {set: amsnb.mapping.tag_summary of the set's raw events} when the mapping declares a tag
        "split": ({"test_set": TEST_SET, "method": "a raw sample of its own, selected with mc_high's windows"}
                  if TEST_SET in raw else
                  {"parent": "mc_high", "test_set": TEST_SET, "test_fraction": test_fraction,
                   "method": "events with event_hash(run, event) < test_fraction go to mc_test "
                             "(splitmix64 of run<<40 ^ event, amsnb.ecal.datasets.event_hash)"}),
        "seeds": {"seed": seed, "table1": _table1_meta(wd) if not input_files else None},
        "amsnb_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - t0, 2),
    }
    tmp = wd.sets / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, wd.sets / MANIFEST)


def source_files(workdir) -> dict[str, list[Path]]:
    """{set: raw files} the selected sets were made from (from the manifest)."""
    man = load_manifest(workdir)
    if not man:
        raise ConfigError(f"{workdir}: no sets/manifest.json; run ensure_ecal_sets (notebook 02) first")
    return {k: [Path(f["path"]) for f in v] for k, v in man["sources"].items()}


def tag_report(workdir) -> str:
    """The mapping's tag on the flight sets (efficiency and purity estimate, :func:`amsnb.mapping.tag_summary`), as
    notebook 02 prints it under the cut flows; "" without a tag. One routed list: every set read the same files,
    so the tag is reported once."""
    tags = load_manifest(workdir).get("tag") or {}
    shown, lines = set(), []
    for name, summary in tags.items():
        key = json.dumps(summary, sort_keys=True)
        if key not in shown:
            shown.add(key)
            lines.append(tag_text(summary, f"the raw files of {name}"))
    return "\n".join(lines)


def cut_flows(workdir) -> dict:
    """{set: CutFlow} recorded while the sets were selected (the in-memory path)."""
    from ..cuts import CutFlow

    return {k: CutFlow.from_dict(v) for k, v in load_manifest(workdir).get("cut_flows", {}).items()}


def _table1_meta(wd: Workdir) -> dict | None:
    path = wd.ecal_data / "table1.json"
    return json.loads(path.read_text()) if path.exists() else None


def read_set(workdir, name: str, branches=None, max_events: int | None = None) -> dict[str, np.ndarray]:
    """Events of one selected set (after :func:`ensure_ecal_sets`)."""
    from .. import io

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    path = wd.sets / f"{name}.root"
    if not path.exists():
        have = sorted(p.stem for p in wd.sets.glob("*.root"))
        raise ConfigError(f"set '{name}' is not in {wd.sets} (have: {', '.join(have) or 'none'}); run notebook 02 "
                          "or amsnb.ecal.datasets.ensure_ecal_sets first")
    return io.read(path, branches=branches, max_events=max_events)
