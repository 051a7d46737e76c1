"""Declarative cuts: YAML validation, cut flows and N-1 by hand, the empty-selection error, the cut explorer, and the
dask path against the in-memory path on a 2-worker local cluster (counts must be identical)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from amsnb import cuts, io
from amsnb.errors import ConfigError, EmptySelectionError
from amsnb.schema import ECAL

TINY = {
    "name": "tiny",
    "derived": {"charge_dev": "abs(tracker_charge - 1)"},
    "cuts": [
        {"name": "charge", "variable": "charge_dev", "max": 0.2},
        {"name": "energy", "variable": "energy", "min": 100.0, "max": 1000.0,
         "per_set": {"high": [1000.0, 2000.0]}},
    ],
}


def tiny_events():
    """Eight events whose fate under TINY is known by hand."""
    return {
        "tracker_charge": np.array([1.0, 1.1, 1.5, 0.9, 1.0, 2.0, 1.05, 0.95], np.float32),
        "energy": np.array([500, 50, 500, 900, 1500, 500, 1200, 300], np.float32),
        "label": np.array([1, 1, 1, 0, 0, 0, 1, -1], np.int8),
        "weight": np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0, 1.0], np.float32),
    }


# -------------------------------------------------------------------------------------------- parsing
def test_default_cut_set_loads_and_names_its_branches():
    cs = cuts.load("default")
    assert cs.names[0] == "energy" and "unit_charge" in cs.names  # the acceptance first, then the quality cuts
    assert set(cs.branches()) <= set(ECAL.names)
    assert {"tracker_charge", "entry_x", "dxdz", "e_over_r", "trd_llr"} <= set(cs.branches())
    assert cs["energy"].window("mc_high") == (1000.0, 2000.0)
    assert cs["energy"].window("something_else") == (200.0, 2000.0)
    assert len(cs.digest()) == 16 and cs.digest() == cuts.load("default").digest()


def test_unknown_variable_is_named_with_the_available_ones():
    bad = {"cuts": [{"name": "q", "variable": "trakcer_charge", "max": 1.2}]}
    with pytest.raises(ConfigError) as err:
        cuts.from_dict(bad)
    msg = str(err.value)
    assert "trakcer_charge" in msg and "did you mean tracker_charge" in msg and "Available:" in msg
    assert "e_over_r" in msg  # the list of available variables


@pytest.mark.parametrize("data, words", [
    ({"cuts": [{"name": "a", "variable": "energy", "min": 5, "max": 1}]}, ["min 5", "max 1"]),
    ({"cuts": [{"name": "a", "variable": "energy", "maxx": 1}]}, ["unknown keys", "maxx"]),
    ({"cuts": [{"name": "a", "variable": "energy"}]}, ["neither min nor max"]),
    ({"cuts": [{"name": "a", "variable": "energy", "max": "high"}]}, ["must be a number"]),
    ({"cuts": [{"name": "a", "variable": "energy", "max": 1}, {"name": "a", "variable": "energy", "min": 0}]},
     ["two cuts are named 'a'"]),
    ({"derived": {"x": "energy.__class__"}, "cuts": [{"name": "a", "variable": "x", "max": 1}]}, ["not allowed"]),
    ({"derived": {"x": "open('f')"}, "cuts": [{"name": "a", "variable": "x", "max": 1}]}, ["only the functions"]),
    ({"derived": {"x": "layer_frac * 2"}, "cuts": [{"name": "a", "variable": "x", "max": 1}]}, ["layer_frac"]),
    ({"cutz": []}, ["unknown keys"]),
    ({"cuts": []}, ["non-empty list"]),
])
def test_invalid_cut_sets_raise_clear_errors(data, words):
    with pytest.raises(ConfigError) as err:
        cuts.from_dict(data)
    for w in words:
        assert w in str(err.value)


def test_yaml_file_and_missing_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ncuts:\n  - {name: e, variable: energy, min: 10}\n")
    assert cuts.load(path).names == ["e"]
    with pytest.raises(ConfigError, match="no such file"):
        cuts.load(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("cuts: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        cuts.load(tmp_path / "broken.yaml")


# -------------------------------------------------------------------------------------------- cut flow
def test_cut_flow_by_hand():
    ev = tiny_events()
    flow = cuts.cut_flow(ev, cuts.from_dict(TINY))
    # charge |q-1| <= 0.2 keeps events 0,1,3,4,6,7; energy 100..1000 then keeps 0,3,7
    assert flow.steps == ["all", "finite", "charge", "energy"]
    assert flow.counts["electron"].tolist() == [4, 4, 3, 1]  # electrons 0,1,2,6 -> all finite -> 0,1,6 -> 0
    assert flow.counts["proton"].tolist() == [3, 3, 2, 1]  # protons 3,4,5 -> 3,4 -> 3
    assert flow.counts["unlabeled"].tolist() == [1, 1, 1, 1]
    assert flow.sumw["electron"].tolist() == [7.0, 7.0, 6.0, 1.0]
    assert flow.sumw2["electron"].tolist() == [15.0, 15.0, 14.0, 1.0]
    eff, lo, hi = flow.efficiency("electron")
    assert eff.tolist() == [1.0, 1.0, 0.75, 0.25]
    # central 68 % Clopper-Pearson of 3/4 computed directly with scipy
    assert lo[2] == pytest.approx(beta.ppf(0.16, 3, 2)) and hi[2] == pytest.approx(beta.ppf(0.84, 4, 1))
    step, _, _ = flow.efficiency("electron", cumulative=False)
    assert step[3] == pytest.approx(1 / 3)
    weff, _, _ = flow.efficiency("electron", weighted=True)
    assert weff[3] == pytest.approx(1 / 7)
    assert "charge" in flow.text() and "<table>" in flow.html()


def test_nonfinite_events_fail_their_own_first_step_counted_per_branch():
    """A NaN energy and an inf charge fail "finite values" (counted per branch, merged over chunks), not a cut
    downstream; select() drops them too; N-1 distributions never contain them."""
    ev = tiny_events()
    ev["energy"][0] = np.nan  # an electron that passes both cuts otherwise
    ev["tracker_charge"][3] = np.inf  # the proton that passes both cuts otherwise
    cs = cuts.from_dict(TINY)
    flow = cuts.cut_flow(ev, cs)
    assert flow.counts["electron"].tolist() == [4, 3, 2, 0]
    assert flow.counts["proton"].tolist() == [3, 2, 1, 0]
    assert flow.nonfinite == {"energy": 1, "tracker_charge": 1}
    assert "NaN/inf in energy: 1, tracker_charge: 1" in flow.rows()[1]["cut"]
    merged = cuts.cut_flow({k: v[:2] for k, v in ev.items()}, cs)
    merged += cuts.cut_flow({k: v[2:] for k, v in ev.items()}, cs)
    assert merged.same_as(flow) and merged.nonfinite == flow.nonfinite
    assert cuts.CutFlow.from_dict(flow.to_dict()).nonfinite == flow.nonfinite
    assert len(cuts.select(ev, cs)["energy"]) == 1  # event 7 only
    assert np.isfinite(cuts.n_minus_one(ev, cs)["energy"].values).all()


def test_per_set_window_and_merging_chunks():
    ev = tiny_events()
    cs = cuts.from_dict(TINY)
    high = cuts.cut_flow(ev, cs, "high")
    assert high.counts["proton"][-1] == 1 and high.counts["electron"][-1] == 1  # events 4 (1500) and 6 (1200 GeV)
    first = cuts.cut_flow({k: v[:5] for k, v in ev.items()}, cs)
    first += cuts.cut_flow({k: v[5:] for k, v in ev.items()}, cs)
    assert first.same_as(cuts.cut_flow(ev, cs))
    again = cuts.CutFlow.from_dict(first.to_dict())
    assert again.same_as(first)


def test_n_minus_one():
    ev = tiny_events()
    nm1 = cuts.n_minus_one(ev, cuts.from_dict(TINY))
    # the charge variable for the events passing the energy cut (0, 2, 3, 5, 7)
    np.testing.assert_allclose(nm1["charge"].values, np.abs(ev["tracker_charge"][[0, 2, 3, 5, 7]] - 1))
    assert nm1["charge"].window == (None, 0.2)
    assert nm1["charge"].passing.tolist() == [True, False, True, False, True]
    assert nm1["charge"].efficiency("electron") == 0.5  # electrons 0 (pass) and 2 (fail)
    np.testing.assert_array_equal(nm1["energy"].values, ev["energy"][[0, 1, 3, 4, 6, 7]])


def test_select_names_the_cut_that_emptied_the_set():
    ev = tiny_events()
    cs = cuts.from_dict({"cuts": [{"name": "charge", "variable": "tracker_charge", "max": 1.2},
                                  {"name": "too_high", "variable": "energy", "min": 5000.0},
                                  {"name": "after", "variable": "energy", "max": 1e6}]})
    with pytest.raises(EmptySelectionError) as err:
        cuts.select(ev, cs, "mc_high")
    assert "too_high" in str(err.value) and "mc_high" in str(err.value)
    kept = cuts.select(ev, cuts.from_dict(TINY))
    assert kept["energy"].tolist() == [500, 900, 300]


def test_masks_on_missing_branch():
    with pytest.raises(ConfigError, match="lack branch"):
        cuts.load("default").masks({"energy": np.ones(3)})


# -------------------------------------------------------------------------------------------- explorer
def test_cut_explorer_updates_when_a_slider_moves():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.ecal.cut_explorer import CutExplorer, explore

    ev = tiny_events()
    ex = CutExplorer(ev, cuts.from_dict(TINY), cut="energy")
    assert ex.state.flow.counts["electron"][-1] == 1
    ex.hi.value = 550.0  # drops event 3 (900 GeV proton)
    assert ex.state.cutset["energy"].window() == (100.0, 550.0)
    assert ex.state.flow.counts["proton"][-1] == 0
    assert ex.state.flow.same_as(explore(ev, TINY, "energy", 100.0, 550.0).flow)
    ex.cut_select.value = "charge"
    assert ex.lo.disabled and not ex.hi.disabled and ex.hi.value == pytest.approx(0.2)


def test_cut_explorer_sliders_cannot_cross():
    """A maximum moved below the minimum is refused with a message; the window in force stays; readouts are fixed
    point (no "1.00e+3")."""
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.ecal.cut_explorer import CutExplorer

    ex = CutExplorer(tiny_events(), cuts.from_dict(TINY), cut="energy")
    assert "e" not in ex.lo.readout_format and ex.lo.readout_format.endswith("f")
    ex.hi.value = 550.0
    before = ex.state.cutset["energy"].window()
    ex.hi.value = ex.lo.value - 10 * ex.hi.step
    assert ex.hi.value == pytest.approx(550.0) and ex.state.cutset["energy"].window() == before
    assert "refused" in ex.message.value and "maximum" in ex.message.value
    ex.lo.value = 600.0  # the minimum above the maximum: refused too
    assert ex.lo.value == pytest.approx(before[0]) and "minimum" in ex.message.value
    ex.lo.value = 120.0  # a valid move clears the message
    assert ex.message.value == "" and ex.state.cutset["energy"].window() == (120.0, 550.0)


def test_cut_explorer_from_files_reads_only_what_the_cuts_need(tmp_path):
    """The app's file path: the explorer on two ROOT files equals cut_flow_files on them; bad input names itself."""
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.ecal.cut_explorer import CutExplorer, load_events
    from amsnb.errors import InputFileError

    files = [_random_file(tmp_path / f"part{i}.root", 800, i + 1) for i in range(2)]
    events = load_events(f"{files[0]},{files[1]}", "default", n_events=0)
    assert "ecal_edep" not in events and len(events["energy"]) == 1600
    ex = CutExplorer.from_source(f"{files[0]},{files[1]}", "default", set_name="mc_high", cut="energy", n_events=0)
    assert ex.state.flow.same_as(cuts.cut_flow_files(files, "default", "mc_high", progress=False))
    assert len(load_events(str(files[0]), "default", n_events=300)["energy"]) >= 300  # stops after the chunk
    with pytest.raises(InputFileError, match="nope.root"):
        CutExplorer.from_source(str(tmp_path / "nope.root"))
    with pytest.raises(ConfigError, match="cut='e_over_p'.*e_over_r"):
        CutExplorer.from_source(str(files[0]), cut="e_over_p")


# -------------------------------------------------------------------------------------------- dask
def _random_file(path, n, seed):
    rng = np.random.default_rng(seed)
    a = {k: v for k, v in ECAL.empty(n).items() if not ECAL[k].shape}
    a["ecal_edep"] = np.where(rng.random((n, 18, 72)) < 0.05, rng.exponential(50.0, (n, 18, 72)), 0).astype(np.float32)
    a["layer_frac"] = np.zeros((n, 18), np.float32)
    a["layer_rms"] = np.zeros((n, 18), np.float32)
    a.update(event=np.arange(n), run=np.full(n, seed), label=rng.integers(0, 2, n).astype(np.int8),
             weight=rng.exponential(1.0, n).astype(np.float32),
             tracker_charge=rng.normal(1.0, 0.2, n).astype(np.float32),
             track_chi2=rng.exponential(2.0, n).astype(np.float32),
             entry_x=rng.uniform(-34, 34, n).astype(np.float32), entry_y=rng.uniform(-34, 34, n).astype(np.float32),
             dxdz=rng.normal(0, 0.2, n).astype(np.float32), dydz=rng.normal(0, 0.2, n).astype(np.float32),
             e_over_r=rng.exponential(1.0, n).astype(np.float32), trd_llr=rng.normal(0.6, 0.1, n).astype(np.float32),
             energy=rng.uniform(150, 2200, n).astype(np.float32))
    a["rigidity"] = (a["energy"] / a["e_over_r"]).astype(np.float32)
    io.write(path, a, ECAL)
    return path


def test_dask_cut_flow_equals_in_memory(tmp_path):
    from amsnb.cuts import scaleout

    files = [_random_file(tmp_path / f"part{i}.root", 1500 + 100 * i, i + 1) for i in range(3)]
    mem = cuts.cut_flow_files(files, "default", "mc_high", progress=False)
    with scaleout.client(n_workers=2, threads_per_worker=1, processes=True) as c:
        assert len(c.scheduler_info()["workers"]) == 2
        # ~600-event partitions: several per file, so the partition sums are really merged
        flow = scaleout.cut_flow_dask(files, "default", "mc_high", dask_client=c, step_size=600)
    for cls in ("electron", "proton", "unlabeled"):
        np.testing.assert_array_equal(flow.counts[cls], mem.counts[cls])
    assert flow.same_as(mem)
    assert flow.counts["electron"][0] + flow.counts["proton"][0] == 1500 + 1600 + 1700
    assert 0 < flow.counts["electron"][-1] < flow.counts["electron"][0]


def test_dask_takes_the_in_memory_mapping_expressions_hits_and_derived(tmp_path):
    """A file with sparse hits, an expression label from integer codes, a tree in a directory, GeV units and no
    shape variables: the dask flow equals the in-memory flow exactly (same reader, same derivations)."""
    from ams_ntuple import MAPPING as m
    from ams_ntuple import write_ams_ntuple

    from amsnb.cuts import scaleout

    src = _random_file(tmp_path / "src.root", 900, 3)
    f = write_ams_ntuple(src, tmp_path / "ams.root", seed=4, n_nan=7, n_duplicates=5)
    mem = cuts.cut_flow_files([f], "default", "mc_high", mapping=m, progress=False)
    with scaleout.client(n_workers=2, threads_per_worker=1, processes=True) as c:
        flow = scaleout.cut_flow_dask([f], "default", "mc_high", mapping=m, dask_client=c, step_size=200)
    assert flow.same_as(mem) and flow.nonfinite == mem.nonfinite
    assert flow.nonfinite["energy"] == 7 and flow.counts["electron"][1] + flow.counts["proton"][1] == 900 - 7
    assert flow.counts["electron"][0] + flow.counts["proton"][0] == 900
