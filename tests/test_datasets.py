"""Selected Table-1 sets: hash split, manifest, idempotency, user files (per set and routed), empty-set errors,
and one small run through the simulation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amsnb import cuts, io
from amsnb.ecal import datasets
from amsnb.ecal.datasets import DataRequest
from amsnb.errors import ConfigError, EmptySelectionError
from amsnb.schema import ECAL


def toy_events(n, seed, energy=(1000.0, 2000.0), domain=0, labeled=True, run=None):
    """Schema arrays that mostly pass the default cuts; electrons have a deeper shower maximum than protons."""
    rng = np.random.default_rng(seed)
    a = ECAL.empty(n)
    label = rng.integers(0, 2, n).astype(np.int8)
    a.update(run=np.full(n, seed if run is None else run, np.int32), event=np.arange(n, dtype=np.int64),
             label=label if labeled else np.full(n, -1, np.int8), domain=np.full(n, domain, np.int8),
             weight=rng.uniform(0.5, 1.5, n).astype(np.float32),
             tracker_charge=rng.normal(1.0, 0.05, n).astype(np.float32),
             track_chi2=rng.exponential(1.0, n).astype(np.float32),
             entry_x=rng.uniform(-25, 25, n).astype(np.float32), entry_y=rng.uniform(-25, 25, n).astype(np.float32),
             e_over_r=rng.uniform(0.7, 1.5, n).astype(np.float32), trd_llr=rng.normal(0.55, 0.05, n).astype(np.float32),
             energy=rng.uniform(*energy, n).astype(np.float32),
             shower_max=(rng.normal(7.0, 1.0, n) + 3.0 * label).astype(np.float32),
             lateral_rms=(rng.normal(2.0, 0.3, n) - 0.5 * label).astype(np.float32),
             f_core=rng.uniform(0, 1, n).astype(np.float32),
             layer_frac=rng.dirichlet(np.ones(18), n).astype(np.float32),
             layer_rms=rng.uniform(0.5, 3, (n, 18)).astype(np.float32))
    return a


def user_files(tmp_path, n=600):
    spec = {"mc_low": ((200, 1000), 0, True), "mc_high": ((1000, 2000), 0, True), "iss_val": ((950, 2000), 1, True),
            "iss_test": ((1000, 2000), 1, True), "iss_target": ((200, 2000), 1, False)}
    out = {}
    for i, (name, (erange, dom, labeled)) in enumerate(spec.items()):
        path = tmp_path / f"{name}.root"
        io.write(path, toy_events(n, 10 + i, erange, dom, labeled), ECAL)
        out[name] = [str(path)]
    return out


def test_event_hash_is_uniform_and_deterministic():
    run, event = np.full(20000, 11), np.arange(20000)
    h = datasets.event_hash(run, event)
    assert h.min() >= 0 and h.max() < 1
    np.testing.assert_array_equal(h, datasets.event_hash(run, event))
    # fraction below 0.3: binomial sigma sqrt(0.21/20000) = 0.0032; 4 sigma
    assert abs((h < 0.3).mean() - 0.3) < 0.013
    assert not np.array_equal(h, datasets.event_hash(run + 1, event))


def test_sets_from_user_files_manifest_split_and_reuse(tmp_path):
    raw = user_files(tmp_path / "raw")
    wd = tmp_path / "wd"
    sets = datasets.ensure_ecal_sets(wd, DataRequest(scale=1, seed=1, input_files=raw), progress=False)
    assert sorted(sets) == sorted(datasets.SETS)
    man = datasets.load_manifest(wd)
    # counts per class agree with an in-memory selection of the same raw file
    high = cuts.select(io.read(raw["mc_high"]), "default", "mc_high")
    n_train, n_test = man["sets"]["mc_high"]["events"], man["sets"]["mc_test"]["events"]
    assert n_train + n_test == len(high["event"])
    assert man["sets"]["mc_high"]["electrons"] + man["sets"]["mc_test"]["electrons"] == int((high["label"] == 1).sum())
    # the split is the documented hash rule, and disjoint
    test_events = set(io.read(sets["mc_test"], branches=["event"])["event"].tolist())
    train_events = set(io.read(sets["mc_high"], branches=["event"])["event"].tolist())
    assert not test_events & train_events
    expected = set(high["event"][datasets.event_hash(high["run"], high["event"]) < datasets.TEST_FRACTION].tolist())
    assert test_events == expected
    assert man["cuts"]["name"] == "default" and man["cuts_digest"] == cuts.load().digest()
    assert man["sources"]["mc_high"][0]["size"] > 0 and "split" in man
    assert man["sets"]["iss_target"]["unlabeled"] == man["sets"]["iss_target"]["events"]
    # second call: reused (files untouched); other cuts: regenerated
    mtimes = {k: p.stat().st_mtime_ns for k, p in sets.items()}
    again = datasets.ensure_ecal_sets(wd, DataRequest(scale=1, seed=1, input_files=raw), progress=False)
    assert {k: p.stat().st_mtime_ns for k, p in again.items()} == mtimes
    looser = cuts.load().with_window("unit_charge", max=0.5)
    datasets.ensure_ecal_sets(wd, DataRequest(scale=1, seed=1, input_files=raw, cuts=looser), progress=False)
    assert datasets.load_manifest(wd)["cuts_digest"] == looser.digest() != cuts.load().digest()
    # a later call without input_files refuses to replace the user's sets with simulation
    with pytest.raises(ConfigError, match="your own files"):
        datasets.ensure_ecal_sets(wd, DataRequest(scale=1, seed=1), progress=False)
    assert all(p.exists() for p in again.values())


def test_one_list_is_routed_by_domain_and_label(tmp_path):
    raw = user_files(tmp_path / "raw", n=400)
    files = [f for v in raw.values() for f in v]
    sets = datasets.ensure_ecal_sets(tmp_path / "wd", DataRequest(scale=1, seed=1, input_files=files), progress=False)
    man = datasets.load_manifest(tmp_path / "wd")
    assert man["request"]["origin"]["routed"]
    val = io.read(sets["iss_val"], branches=["domain", "label"])
    assert (val["domain"] == 1).all() and (val["label"] >= 0).all()
    target = io.read(sets["iss_target"], branches=["label"])
    assert (target["label"] == -1).all()
    low = io.read(sets["mc_low"], branches=["energy", "domain"])
    assert (low["domain"] == 0).all() and low["energy"].max() <= 1000


def test_a_cut_emptying_a_set_is_named(tmp_path):
    raw = user_files(tmp_path / "raw", n=100)
    strict = cuts.load().with_window("trd", max=0.0)
    with pytest.raises(EmptySelectionError) as err:
        datasets.ensure_ecal_sets(tmp_path / "wd", DataRequest(scale=1, seed=1, input_files=raw, cuts=strict),
                                  progress=False)
    assert "cut 'trd'" in str(err.value) and "mc_low" in str(err.value)


def test_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="unknown set names"):
        datasets.ensure_ecal_sets(tmp_path, DataRequest(scale=1, seed=1, input_files={"mc_middle": ["x.root"]}))
    with pytest.raises(ConfigError, match="not found"):
        datasets.ensure_ecal_sets(tmp_path, DataRequest(scale=1, seed=1,
                                                        input_files={"mc_low": [str(tmp_path / "x.root")]}))
    with pytest.raises(ConfigError, match="run notebook 02"):
        datasets.read_set(tmp_path, "mc_high")


def test_from_the_simulation(tmp_path):
    sets = datasets.ensure_ecal_sets(tmp_path, DataRequest(scale=0.0003, seed=3), progress=False)
    man = json.loads((tmp_path / "sets" / "manifest.json").read_text())
    assert man["request"]["origin"]["iss_scale"] == pytest.approx(0.0006)  # 2 x scale, as in every profile
    assert man["seeds"]["table1"]["seed"] == 3
    for name in ("mc_low", "mc_high", "iss_test"):
        info = man["sets"][name]
        assert info["electrons"] > 0 and info["protons"] > 0 and info["events"] == io.num_entries(sets[name])
    flows = datasets.cut_flows(tmp_path)
    assert flows["mc_low"].counts["electron"][-1] == man["sets"]["mc_low"]["electrons"]
    e = io.read(sets["mc_high"], branches=["energy"])["energy"]
    assert e.min() >= 1000 and e.max() <= 2000


def test_test_sets_of_their_own_size(tmp_path):
    """test_protons: mc_test is simulated as its own sample (selected with mc_high's 1-2 TeV window, mc_high not
    split) and iss_test resized; both hold that many raw protons and a tenth as many electrons."""
    sets = datasets.ensure_ecal_sets(tmp_path, DataRequest(scale=0.0003, seed=3, test_protons=3000), progress=False)
    man = json.loads((tmp_path / "sets" / "manifest.json").read_text())
    table = man["seeds"]["table1"]["sets"]
    assert table["mc_test"] == {**table["mc_test"], "electrons": 300, "protons": 3000}
    assert table["iss_test"]["protons"] == 3000
    assert "own" in man["split"]["method"] and "mc_test" in man["cut_flows"]
    assert man["cut_flows"]["mc_test"]["counts"]["proton"][0] == 3000
    e = io.read(sets["mc_test"], branches=["energy"])["energy"]
    assert e.min() >= 1000 and e.max() <= 2000
    high = man["cut_flows"]["mc_high"]["counts"]
    assert man["sets"]["mc_high"]["events"] == high["electron"][-1] + high["proton"][-1]  # nothing split off
    with pytest.raises(ConfigError, match="test_protons=-1"):
        datasets.ensure_ecal_sets(tmp_path / "b", DataRequest(scale=0.0003, seed=3, test_protons=-1), progress=False)


def test_dann_target_of_its_own_size(tmp_path):
    """target_events: iss_target holds that many raw events with Table 1's electron share (1 in 5)."""
    from amsnb.ecal import sim

    assert sim.table1_sizes(0.001, 0.002, target_events=5000)["iss_target"] == (1000, 4000)
    assert sim.table1_sizes(0.001, 0.002)["iss_target"] == (40, 160)  # Table 1 at scale 0.001
    paths = sim.generate_table1(tmp_path, scale=2e-4, seed=3, iss_scale=3e-4, target_events=700, progress=False)
    assert io.num_entries(paths["iss_target"]) == 700
    with pytest.raises(ConfigError, match="target_events=0"):
        sim.generate_table1(tmp_path / "b", scale=2e-4, seed=3, target_events=0, progress=False)


def test_dann_target_window_and_what_it_changes(tmp_path):
    """The DANN target holds the iss_target events inside the training events' energy range ("train"), or all of
    them ("all"); the target choice belongs to a DA model's request and not to a model trained without DA."""
    from amsnb.ecal import experiment
    from amsnb.train import TrainConfig
    from amsnb.workdir import Workdir

    wd = Workdir(tmp_path / "wd")
    request = DataRequest(scale=1, seed=1, input_files=user_files(tmp_path / "raw", n=800))
    sets = datasets.ensure_ecal_sets(wd, request, progress=False)
    whole = experiment.prepare(wd, sets, target_window="all", progress=False)
    inside = experiment.prepare(wd, sets, progress=False)
    e_train, e_all, e_in = (d.column("energy") for d in (inside.train, whole.target, inside.target))
    assert e_train.min() >= 1000 and e_all.min() < 1000  # 1-2 TeV training events, a 0.2-2 TeV target
    assert e_in.min() >= e_train.min() and e_in.max() <= e_train.max()
    assert len(inside.target) == int(((e_all >= e_train.min()) & (e_all <= e_train.max())).sum()) > 0
    assert (inside.target.labels == -1).all()
    few = experiment.prepare(wd, sets, max_target_events=20, progress=False)
    assert len(few.target) == 20 and few.counts["target"] == 20
    with pytest.raises(ConfigError, match="target_window='iss'"):
        experiment.prepare(wd, sets, target_window="iss", progress=False)
    da, plain = TrainConfig(use_da=True), TrainConfig(use_da=False)
    assert experiment.train_request("cnn", "tiny", whole, da, 1) != experiment.train_request("cnn", "tiny", inside,
                                                                                               da, 1)
    assert experiment.train_request("cnn", "tiny", whole, plain, 1) == experiment.train_request("cnn", "tiny", few,
                                                                                                  plain, 1)
    assert "target" not in inside.identities(with_target=False) and "target" in inside.identities()
    # class-mix matching: domain-loss weights of mean 1 that give the training events the target's electron share;
    # part of a DA model's request and identity only
    mixed = experiment.prepare(wd, sets, target_electron_fraction=0.25, progress=False)
    dw, lab = mixed.domain_weights, mixed.train.labels
    assert dw.mean() == pytest.approx(1.0, rel=1e-5) and (dw * (lab == 1)).sum() / dw.sum() == pytest.approx(0.25)
    assert mixed.da_train[0]["dw"] == pytest.approx(dw[0]) and "dw" not in mixed.train[0]
    assert mixed.identities(with_target=False) == inside.identities(with_target=False)
    assert mixed.identities()["train"] != inside.identities()["train"]
    assert experiment.train_request("cnn", "tiny", mixed, plain, 1) == experiment.train_request("cnn", "tiny",
                                                                                                 inside, plain, 1)
    with pytest.raises(ConfigError, match="target_electron_fraction=1.5"):
        experiment.prepare(wd, sets, target_electron_fraction=1.5, progress=False)


def test_set_names_are_defined_once():
    """amsnb.ecal.datasets defines the set names; the simulation's Table-1 specs, the experiment's roles and the
    baselines' evaluation sets are derived from (or checked against) them."""
    from amsnb.ecal import baselines, experiment, sim

    assert tuple(s.name for s in sim.TABLE1) == datasets.TABLE1_SETS
    assert datasets.SETS == (*datasets.TABLE1_SETS, datasets.TEST_SET)
    assert set(experiment.TRAIN_SETS) | set(experiment.VAL_SETS.values()) | set(experiment.EVAL_SETS) <= \
        set(datasets.SETS)
    assert baselines.EVAL_SETS == datasets.SETS
