"""An analyst's own data: MC files per species with truth, flight files without it, labeled by a tag declared in the
mapping; and the routed list whose events all carry a label (no DANN target), which must stop early with one line
naming the right ways out. Files in the flat AMS layout, written by tests/ams_ntuple.py."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ams_ntuple import MAPPING, TAG_MAPPING, write_ams_ntuple

from amsnb import io
from amsnb.cli import main as cli_main
from amsnb.ecal import datasets, sim
from amsnb.errors import ConfigError
from amsnb.mapping import load_mapping, tag_summary
from amsnb.schema import ECAL


def _dense(path, parts):
    arrays = [sim.simulate(n, particle, domain, seed=seed) for n, particle, domain, seed in parts]
    io.write(path, {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]})
    return path


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """{"routed": [files], "per_set": {set: [files]}} and the flight files with truth (for the true purity)."""
    d = tmp_path_factory.mktemp("layouts")
    out = {}
    for name, parts, truth in [
        ("e_mc", [(160, "electron", "mc", 1)], True),
        ("p_mc", [(320, "proton", "mc", 2)], True),
        ("flight_a", [(400, "proton", "iss", 3), (160, "electron", "iss", 4)], False),
        ("flight_b", [(400, "proton", "iss", 5), (160, "electron", "iss", 6)], False),
    ]:
        dense = _dense(d / f"{name}_dense.root", parts)
        out[name] = write_ams_ntuple(dense, d / f"{name}.root", seed=7, truth=truth)
        if not truth:  # the same flight events with the simulation's truth codes: the tag's true purity
            out[name + "_truth"] = write_ams_ntuple(dense, d / f"{name}_truth.root", seed=7)
    out["nan"] = write_ams_ntuple(d / "e_mc_dense.root", d / "nan.root", seed=8, n_nan=5)
    return out


def test_tag_expressions_are_validated():
    with pytest.raises(ConfigError, match="missing keys"):
        load_mapping({"tag": {"electron": "rigidity < 0"}}, ECAL)
    with pytest.raises(ConfigError, match="not 'ecal' schema variables"):
        load_mapping({"tag": {"electron": "TrkRigidityInner < 0", "proton": "rigidity > 0"}}, ECAL)
    with pytest.raises(ConfigError, match="the label the tag makes"):
        load_mapping({"tag": {"electron": "label == 1", "proton": "rigidity > 0"}}, ECAL)
    tag = load_mapping({"tag": {"electron": "rigidity < 0 and not trd_llr > 0.6", "proton": "rigidity > 0"}}, ECAL).tag
    arrays = {"rigidity": np.array([-1.0, -1.0, 2.0, 3.0]), "trd_llr": np.array([0.5, 0.7, 0.7, np.nan]),
              "domain": np.array([1, 1, 1, 0]), "label": np.array([1, 0, 0, 0], np.int8)}
    label, counts = tag.apply(arrays)
    np.testing.assert_array_equal(label, [1, -1, 0, 0])  # untagged flight -> -1; MC (domain 0) keeps its truth
    assert counts["electron"] == {"tagged": 1, "wrong_sign": 0, "truth": 1, "truth_tagged": 1}
    assert counts["proton"]["wrong_sign"] == 2 and counts["events"] == 3


def test_routed_list_without_unlabeled_events_stops_with_one_correct_line(layouts, tmp_path, capsys):
    """The issue's case: every flight-like event carries a label, so iss_target would be empty. `amsnb check` says
    so with the two ways out, the run's preflight stops before notebook 02, and notebook 04 no longer says "rerun
    notebook 02" (which changes nothing)."""
    files = [str(layouts[k]) for k in ("e_mc", "p_mc", "flight_a_truth", "flight_b_truth")]
    counts = datasets.expected_sets(files, str(MAPPING))
    assert counts["iss_target"]["events"] == 0 and counts["iss_val"]["events"] > 0
    assert cli_main(["check", *files, "--mapping", str(MAPPING)]) == 0
    out = capsys.readouterr().out
    assert "events per set after routing/tagging, before cuts:" in out
    warning = [line for line in out.splitlines() if line.startswith("WARNING: iss_target")]
    assert len(warning) == 1 and "declare a tag" in warning[0] and "iss_target: [flight files]" in warning[0]
    assert "none of the 1600 events" in warning[0]
    params = {"02": {"input_files": files, "mapping": str(MAPPING)},
              "04": {"input_files": files, "mapping": str(MAPPING), "train_set": "mc_high", "use_da": True}}
    with pytest.raises(ConfigError) as err:
        datasets.preflight(params)
    msg = str(err.value)
    assert msg.startswith("notebook 04 needs it: iss_target") and "rerun" not in msg and "\n" not in msg
    assert datasets.preflight({"02": params["02"]})[0].startswith("sets from input_files (before cuts):")
    assert "use_da false" in msg  # the third way out: notebook 04 without DA does without iss_target
    assert datasets.preflight({"04": {**params["04"], "use_da": False}})
    # notebook 02 skips the empty set and records why; notebook 04's error repeats that reason
    from amsnb.ecal.experiment import prepare
    from amsnb.workdir import Workdir

    request = datasets.DataRequest(scale=1.0, input_files=files, mapping=str(MAPPING))
    sets = datasets.ensure_ecal_sets(tmp_path, request, progress=False)
    assert "iss_target" not in sets and "declare a tag" in datasets.load_manifest(tmp_path)["skipped"]["iss_target"]
    with pytest.raises(ConfigError, match="declare a tag") as err:
        prepare(Workdir(tmp_path), sets, progress=False)
    assert "rerun notebook 02" not in str(err.value)


def test_amsnb_run_preflight_stops_before_any_notebook(layouts, tmp_path, capsys):
    files = ",".join(str(layouts[k]) for k in ("e_mc", "p_mc", "flight_a_truth"))
    code = cli_main(["run", "--profile", "smoke", "--only", "02,04", "--workdir", str(tmp_path / "wd"),
                     "-p", "input_files", files, "-p", "mapping", str(MAPPING)])
    err = capsys.readouterr().err
    assert code == 2 and "iss_target (the unlabeled DANN target of notebook 04) will be empty" in err
    assert not (tmp_path / "wd" / "executed").exists()  # no notebook ran


def test_flight_without_truth_labeled_by_the_tag(layouts, tmp_path, capsys):
    """MC per species (truth from the file) + flight files without truth, per set, with the shipped tag mapping:
    iss_val/iss_test hold the tagged flight events, iss_target the untagged; the tag's efficiency and purity
    estimate land in the manifest and notebook 02's report; `amsnb check` prints the events per set."""
    per_set = {"mc_low": [str(layouts["e_mc"]), str(layouts["p_mc"])],
               "mc_high": [str(layouts["e_mc"]), str(layouts["p_mc"])],
               "iss_val": [str(layouts["flight_a"])], "iss_test": [str(layouts["flight_b"])]}
    report = io.check_file(layouts["flight_a"], mapping=TAG_MAPPING)
    assert report.usable, report.text()
    assert "label: mapped to where(MCParticle_G3 == 14, 0, 1), which this file lacks" in report.text()
    assert "wrong-sign estimate" in report.text()
    counts = datasets.expected_sets(per_set, str(TAG_MAPPING))
    a = io.read(layouts["flight_a"], mapping=TAG_MAPPING, branches=["label"])["label"]
    b = io.read(layouts["flight_b"], mapping=TAG_MAPPING, branches=["label"])["label"]
    assert counts["iss_val"]["events"] == (a >= 0).sum() and counts["iss_val"]["unlabeled"] == 0
    assert counts["iss_target"]["events"] == (a < 0).sum() + (b < 0).sum() > 0
    assert counts["mc_high"] == {"events": 480, "electrons": 160, "protons": 320, "unlabeled": 0, "given": True,
                                 "read": 480}
    args = [f"{k}={','.join(v)}" for k, v in per_set.items()]
    assert cli_main(["check", *args, "--mapping", str(TAG_MAPPING)]) == 0
    out = capsys.readouterr().out
    assert "iss_target" in out and "(no files given)" not in out and "WARNING" not in out
    assert datasets.preflight({"04": {"input_files": per_set, "mapping": str(TAG_MAPPING)}})
    no_val = {k: v for k, v in per_set.items() if k != "iss_val"}
    with pytest.raises(ConfigError, match="needs set 'iss_val', which will be empty: input_files gives no files"):
        datasets.preflight({"04": {"input_files": no_val, "mapping": str(TAG_MAPPING)}})

    request = datasets.DataRequest(scale=1.0, input_files=per_set, mapping=str(TAG_MAPPING))
    sets = datasets.ensure_ecal_sets(tmp_path, request, progress=False)
    assert set(sets) == {*datasets.TABLE1_SETS, datasets.TEST_SET}
    assert (io.read(sets["iss_val"], branches=["label"])["label"] >= 0).all()
    assert (io.read(sets["iss_target"], branches=["label"])["label"] < 0).all()
    man = datasets.load_manifest(tmp_path)
    assert set(man["tag"]) == {"iss_val", "iss_test", "iss_target"}
    text = datasets.tag_report(tmp_path)
    assert "wrong-sign estimate" in text and "truth in the files" not in text  # flight files have no truth
    # the dask path filters the same events (same SetRouting)
    assert {k: v.mode for k, v in datasets.event_filters(tmp_path).items()} == {
        "iss_val": "tagged", "iss_test": "tagged", "iss_target": "tagged"}


def test_wrong_sign_purity_is_a_lower_bound_of_the_true_purity(layouts):
    """On the same flight events with the simulation's truth codes: the wrong-sign estimate does not exceed the
    true purity (it is conservative), and the true efficiency is reported."""
    stats = io.ReadStats()
    files = [layouts["flight_a_truth"], layouts["flight_b_truth"]]
    for _ in io.iterate(files, mapping=TAG_MAPPING, branches=["label"], stats=stats, nan_policy="keep"):
        pass
    s = tag_summary(stats.tag)
    for c in ("electron", "proton"):
        assert s[c]["tagged"] > 0 and 0 < s[c]["efficiency_truth"] <= 1
        assert s[c]["purity_wrong_sign"] <= s[c]["purity_truth"] + 1e-12, (c, s[c])
    assert s["events"] == 2 * 560 and s["untagged"] > 0


def test_example_tag_mapping_is_valid_yaml_with_a_tag():
    spec = yaml.safe_load(TAG_MAPPING.read_text())
    m = load_mapping(TAG_MAPPING, ECAL)
    assert m.tag is not None and m.tag.electron == spec["tag"]["electron"]


def test_shower_browser_and_cut_explorer_take_user_files_with_their_mapping(layouts):
    """The interactive apps on an analyst's files: the browser reads flight files without truth through the tag
    mapping (the tag's labels drive its class filter); the cut explorer keeps NaN events, which fail the "finite
    values" step as in the cut flow."""
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.ecal.cut_explorer import CutExplorer
    from amsnb.ecal.shower_browser import ShowerBrowser

    browser = ShowerBrowser([layouts["flight_a"]], mapping=str(TAG_MAPPING), n=0, blit=False)
    want = io.read(layouts["flight_a"], mapping=TAG_MAPPING, branches=["label"])["label"]
    np.testing.assert_array_equal(browser.data["label"], want)
    assert browser.filter("electron") == (want == 1).sum() > 0
    ex = CutExplorer.from_source(str(layouts["nan"]), "default", set_name="mc_high", cut="e_over_r",
                                 mapping=str(MAPPING), n_events=0)
    assert ex.state.flow.nonfinite == {"energy": 5, "e_over_r": 5}
    assert "NaN/inf in e_over_r: 5, energy: 5" in ex.table.value
    assert int(ex.state.flow.counts["electron"][0]) == 160
