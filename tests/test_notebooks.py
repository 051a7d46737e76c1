"""Regression suite: execute the whole notebook series with papermill (smoke profile) and compare each notebook's
metrics.json with its recorded reference values (tests/reference/NN.json) under the tolerances stated there.

The series runs once per session, in order, into tests/artifacts/smoke (kept for inspection: executed notebooks,
figures, metrics). A notebook that fails is reported by its own test; the later ones still run, since each produces
what it needs when an earlier notebook's output is missing.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from amsnb import runner
from amsnb.workdir import Workdir

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "reference"
SERIES = runner.discover(ROOT / "notebooks")
pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="session")
def smoke_series():
    out = ROOT / "tests" / "artifacts" / "smoke"
    shutil.rmtree(out, ignore_errors=True)
    wd = Workdir(out)
    kernel = runner.ensure_kernel()
    results = {}
    for nb in SERIES:
        try:
            results[nb.name[:2]] = runner.run_notebook(nb, wd, "smoke", kernel=kernel)
        except runner.NotebookFailed as exc:
            results[nb.name[:2]] = exc
    return wd, results


def _get(metrics: dict, key: str):
    value = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return KeyError(key)
        value = value[part]
    return value


def compare(metrics: dict, reference: dict) -> list[str]:
    """Every reference metric must be present and within max(abs, rel*|value|) of the recorded value."""
    problems = []
    for key, ref in reference.items():
        got = _get(metrics, key)
        if isinstance(got, KeyError):
            problems.append(f"{key}: missing from metrics.json")
            continue
        want = ref["value"]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if not isinstance(got, (int, float)) or (isinstance(got, float) and math.isnan(got)):
                problems.append(f"{key}: got {got!r}, expected a number near {want}")
                continue
            tol = max(float(ref.get("abs", 0.0)), float(ref.get("rel", 0.0)) * abs(want))
            if abs(got - want) > tol:
                problems.append(f"{key}: {got} differs from reference {want} by more than {tol:g} ({ref.get('why')})")
        elif got != want:
            problems.append(f"{key}: {got!r} != reference {want!r}")
    return problems


def test_figure_layout_check_runs_on_every_saved_figure(smoke_series):
    """Workdir.save_figure checks every figure of the series for overlapping text and text running into another
    panel (amsnb.plotting.layout) and records what it finds in figures/layout_problems.json; none is allowed.
    The check itself is tested with deliberately bad figures in tests/test_figure_layout.py."""
    wd, _ = smoke_series
    saved = sorted(wd.path.glob("[0-9][0-9]_*/figures/*.png"))
    assert saved, "the smoke series saved no figures"
    problems = {}
    for record in sorted(wd.path.glob("[0-9][0-9]_*/figures/layout_problems.json")):
        for name, found in json.loads(record.read_text()).items():
            problems[f"{record.parent.parent.name}/{name}.png"] = found
    assert not problems, "figures with overlapping text:\n" + "\n".join(
        f"  {fig}: " + "; ".join(found) for fig, found in problems.items())


def test_compare_detects_drift():
    ref = {"rej": {"value": 100.0, "rel": 0.1, "why": "binomial"}, "n": {"value": 5, "abs": 0}}
    assert compare({"rej": 105.0, "n": 5}, ref) == []
    assert len(compare({"rej": 120.0, "n": 6}, ref)) == 2
    assert compare({"n": 5}, ref) == ["rej: missing from metrics.json"]


@pytest.mark.parametrize("nb", SERIES, ids=lambda p: p.name)
def test_notebook_smoke(nb, smoke_series):
    wd, results = smoke_series
    result = results[nb.name[:2]]
    if isinstance(result, Exception):
        pytest.fail(str(result))
    ref_path = REFERENCE / f"{nb.name[:2]}.json"
    assert ref_path.exists(), f"no reference values for {nb.name}: record them in {ref_path}"
    reference = json.loads(ref_path.read_text())
    assert len(reference) >= 3, f"{ref_path}: a regression check needs at least 3 metrics"
    for key, ref in reference.items():
        assert ref.get("why"), f"{ref_path}: '{key}' must say why its tolerance is what it is"
    problems = compare(result.metrics, reference)
    assert not problems, f"{nb.name} metrics drifted:\n" + "\n".join(problems)


@pytest.fixture(scope="session")
def sparse_series(smoke_series):
    """Notebooks 02-05 on flat AMS-style ntuples made from the smoke series' raw samples: sparse GeV hits (1-based),
    a tree in a directory, Geant3 codes instead of labels, no shape variables, 7 NaN energies in one file, split hits
    and out-of-range hits; read with `-p input_files 'DIR/*.root' -p mapping amsnb/data/example_sparse_mapping.yaml`."""
    from ams_ntuple import MAPPING, write_ams_ntuple

    wd_dense, _ = smoke_series
    src = ROOT / "tests" / "artifacts" / "sparse_input"
    out = ROOT / "tests" / "artifacts" / "sparse"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    for i, raw in enumerate(sorted(wd_dense.ecal_data.glob("*.root"))):
        write_ams_ntuple(raw, src / raw.name, seed=i, n_nan=7 if raw.stem == "mc_high" else 0, n_duplicates=3,
                         n_out_of_range=2 if raw.stem == "mc_low" else 0)
    runs = runner.run_series("smoke", only=["02", "03", "04", "05"], workdir=out,
                             params={"input_files": str(src / "*.root"), "mapping": str(MAPPING)})
    return wd_dense, Workdir(out), {r.notebook[:2]: r for r in runs}


def test_notebooks_02_to_05_run_on_sparse_ams_ntuples(sparse_series):
    """The series answers on files as analysts have them: NaN events fail the "finite" step (counted per branch)
    instead of stopping the run, the dask flow equals the in-memory one with the same mapping, and the unlabeled
    ISS-like set (one file, routed by its codes) selects the same events as the dense run: its shape variables,
    derived by amsnb from the hits, are the simulation's (float32 rounding of the GeV hits may move at most one
    event across a cut edge)."""
    from amsnb.ecal import datasets

    wd_dense, wd, runs = sparse_series
    assert sorted(runs) == ["02", "03", "04", "05"]
    flows = datasets.cut_flows(wd)
    high = flows["mc_high"]
    assert high.nonfinite == {"energy": 7, "e_over_r": 7}
    all_, finite = (sum(int(high.counts[c][i]) for c in high.classes) for i in (0, 1))
    assert all_ - finite == 7
    m02 = wd.load_metrics("02")
    assert m02["dask_equal"] is True
    dense = wd_dense.load_metrics("02")["n_selected"]
    assert abs(m02["n_selected"]["iss_target"] - dense["iss_target"]) <= 1
    assert all(v > 0 for v in m02["n_selected"].values())
    m03 = wd.load_metrics("03")
    assert m03["n_protons_mc_test"] > 100 and m03["bdt_mc_test_rejection_90"] > 10
    m04 = wd.load_metrics("04")
    assert 0.8 < m04["iss_test_auc"] <= 1.0
    assert wd.load_metrics("05")


def test_a_notebook_opened_and_run_as_it_is_reuses_the_series_run(smoke_series):
    """As in JupyterLab: notebook 02 with only `profile = "smoke"` (and the run folder) typed into its parameters
    cell, executed in notebooks/ without papermill, makes the request `amsnb run --profile smoke` made: the raw
    samples and the selected sets are reused, not recomputed."""
    import nbformat
    from nbclient import NotebookClient

    wd, _ = smoke_series
    nb = nbformat.read(ROOT / "notebooks" / "02_cut_studies.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert 'profile = "default"' in cell.source and "workdir = None" in cell.source
    cell.source = cell.source.replace('profile = "default"', 'profile = "smoke"').replace(
        "workdir = None", f"workdir = {str(wd.path)!r}")
    for c in nb.cells:  # the dask comparison is the notebook's own business; the request is what counts here
        if c.cell_type == "code" and "scaleout.cut_flows_dask" in c.source:
            c.source = "dask_equal, dask_seconds = None, None"
    NotebookClient(nb, kernel_name=runner.ensure_kernel(), timeout=600,
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "sets: reused" in printed and "data/ecal/mc_high.root: reused" in printed, printed[:2000]
    assert "selecting" not in printed and "new," not in printed


@pytest.fixture(scope="session")
def smoke_raw(tmp_path_factory):
    """The smoke profile's raw Table-1 samples, made here, so the user-file layouts do not wait for the smoke
    series: ({set: path}, a scratch folder)."""
    from amsnb import profiles
    from amsnb.ecal.sim import generate_table1

    raw = tmp_path_factory.mktemp("smoke_raw")
    p = profiles.parameters("smoke", "02")
    paths = generate_table1(raw / "dense", p["ecal_scale"], p["seed"], p["iss_scale"], progress=False,
                            target_events=p["target_events"])
    return paths, raw


@pytest.fixture(scope="session")
def tagged_series(smoke_raw):
    """Notebooks 01-05 on the third layout: MC files per species (Geant3 truth codes) and flight files without any
    truth branch, per set, read with amsnb/data/example_flight_tag_mapping.yaml, whose tag labels the flight events."""
    from ams_ntuple import TAG_MAPPING, write_ams_ntuple

    from amsnb import io
    from amsnb.ecal import datasets

    paths, raw = smoke_raw
    src = ROOT / "tests" / "artifacts" / "tagged_input"
    out = ROOT / "tests" / "artifacts" / "tagged"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    inputs = {}
    for i, (name, path) in enumerate(sorted(paths.items())):
        if name.startswith("mc_"):
            a = io.read(path)
            for species, code in (("e", 1), ("p", 0)):
                part = raw / f"{name}_{species}.root"
                io.write(part, {k: v[a["label"] == code] for k, v in a.items()})
                inputs.setdefault(name, []).append(str(write_ams_ntuple(part, src / part.name, seed=i)))
        else:
            inputs[name] = [str(write_ams_ntuple(path, src / f"flight_{name}.root", seed=i, truth=False))]
    lines = []
    runs = runner.run_series("smoke", only=["01", "02", "03", "04", "05"], workdir=out,
                             params={"input_files": inputs, "mapping": str(TAG_MAPPING)},
                             preflight=datasets.preflight, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    return Workdir(out), {r.notebook[:2]: r for r in runs}, lines


def test_notebooks_01_to_05_run_on_mc_per_species_and_flight_labeled_by_a_tag(tagged_series):
    """The flight sets hold tagged events only (both classes), iss_target the untagged ones, and notebook 02 reports
    the tag's share of the flight events and its wrong-sign purity estimate; the run's preflight printed the events
    per set before the first notebook."""
    from amsnb.ecal import datasets

    wd, runs, lines = tagged_series
    assert sorted(runs) == ["01", "02", "03", "04", "05"]
    assert lines[0].startswith("sets from input_files (before cuts): mc_low ")
    man = datasets.load_manifest(wd)
    assert man["request"]["origin"]["filter"] == "tagged" and not man["skipped"]
    for name in ("iss_val", "iss_test"):
        assert man["sets"][name]["electrons"] > 0 and man["sets"][name]["protons"] > 0
        assert man["sets"][name]["unlabeled"] == 0
    assert man["sets"]["iss_target"]["events"] == man["sets"]["iss_target"]["unlabeled"] > 0
    m02 = wd.load_metrics("02")
    assert m02["dask_equal"] is True
    tag = m02["tag"]["iss_test"]
    assert tag["electron"]["tagged"] > 0 and 0 < tag["proton"]["purity_wrong_sign"] <= 1
    assert "wrong-sign estimate" in datasets.tag_report(wd)
    # iss_test's labels are the tag's: at the smoke sets' 10:1 proton:electron mix, ~60 % of the tagged electrons
    # are electrons (the simulation's truth), so the AUC against them says little about the model
    assert 0.0 < wd.load_metrics("04")["iss_test_auc"] <= 1.0
    assert wd.load_metrics("05")


@pytest.fixture(scope="session")
def labeled_list_series(smoke_raw):
    """The issue's case: one routed list of AMS ntuples in which every flight-like event carries a label (no file
    of unlabeled events), read with example_sparse_mapping.yaml. With DA the run stops in its preflight; with
    `-p use_da false` notebooks 02-05 run without iss_target."""
    from ams_ntuple import MAPPING, write_ams_ntuple

    from amsnb.ecal import datasets
    from amsnb.errors import ConfigError

    paths, _ = smoke_raw
    src = ROOT / "tests" / "artifacts" / "labeled_list_input"
    out = ROOT / "tests" / "artifacts" / "labeled_list"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    for i, (name, path) in enumerate(sorted(paths.items())):
        if name != "iss_target":
            write_ams_ntuple(path, src / f"{name}.root", seed=i)
    params = {"input_files": str(src / "*.root"), "mapping": str(MAPPING)}
    try:
        runner.run_series("smoke", only=["02", "04"], workdir=out, params=params, preflight=datasets.preflight,
                          log=lambda *a, **k: None)
        stopped = None
    except ConfigError as exc:
        stopped = exc
    runs = runner.run_series("smoke", only=["02", "03", "04", "05"], workdir=out,
                             params={**params, "use_da": False}, preflight=datasets.preflight)
    return Workdir(out), {r.notebook[:2]: r for r in runs}, stopped


def test_a_list_without_unlabeled_events_stops_early_with_da_and_runs_without(labeled_list_series):
    from amsnb.ecal import datasets
    from amsnb.errors import ConfigError

    wd, runs, stopped = labeled_list_series
    assert isinstance(stopped, ConfigError) and "iss_target" in str(stopped) and "use_da false" in str(stopped)
    assert "rerun" not in str(stopped)
    assert sorted(runs) == ["02", "03", "04", "05"]
    man = datasets.load_manifest(wd)
    assert "iss_target" not in man["sets"] and "declare a tag" in man["skipped"]["iss_target"]
    m04 = wd.load_metrics("04")
    assert m04["n_target"] == 0 and 0.5 < m04["mc_test_auc"] <= 1.0
    assert wd.load_metrics("05")
