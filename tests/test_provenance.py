"""Every artefact knows what made it: the reuse rule itself, and for each artefact kind of a run folder that a
parameter affecting it recomputes, one that does not reuses, and a killed write is not reused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from test_datasets import user_files

from amsnb import provenance
from amsnb.workdir import Workdir


def _stamp(**request):
    return provenance.Stamp("test.producer", "1", request)


def _writer(calls):
    def build(path):
        calls.append(path)
        path.write_text("content")

    return build


def test_rule_reuse_recompute_and_reason(tmp_path, capsys):
    art, calls = tmp_path / "a.txt", []
    assert provenance.ensure(art, _stamp(n=200), _writer(calls)).reason == "new"
    assert provenance.ensure(art, _stamp(n=200), _writer(calls)).action == "reuse"
    d = provenance.ensure(art, _stamp(n=600), _writer(calls), label="models/cnn_small", verb="retraining")
    assert d.action == "compute" and d.reason == "n 200 -> 600"
    assert "models/cnn_small: n 200 -> 600, retraining" in capsys.readouterr().out
    assert len(calls) == 2  # new, then n changed; the reuse built nothing
    newer = provenance.Stamp("test.producer", "2", {"n": 600})
    assert provenance.ensure(art, newer, _writer(calls)).reason == "code test.producer 1 -> 2"
    other_input = provenance.Stamp("test.producer", "2", {"n": 600}, {"source": "x"})
    assert "input source changed" in provenance.ensure(art, other_input, _writer(calls)).reason


def test_killed_build_is_not_reused_and_same_request_resumes(tmp_path):
    art = tmp_path / "model"

    def killed(path):
        path.mkdir()
        (path / "checkpoint").write_text("epoch 1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        provenance.ensure(art, _stamp(epochs=3), killed, resumable=True)
    assert art.exists() and provenance.read_stamp(art) is None  # nothing looks finished
    seen = []
    d = provenance.ensure(art, _stamp(epochs=3), lambda p: seen.append((p / "checkpoint").read_text()),
                          resumable=True)
    assert d.action == "resume" and seen == ["epoch 1"]  # the checkpoint was kept for the builder
    assert provenance.ensure(art, _stamp(epochs=3), lambda p: None).action == "reuse"
    # a non-resumable producer redoes an interrupted artefact from scratch
    f = tmp_path / "file.root"
    with pytest.raises(RuntimeError):
        provenance.ensure(f, _stamp(), lambda p: (p.write_text("half"), (_ for _ in ()).throw(RuntimeError())))
    assert provenance.ensure(f, _stamp(), _writer([])).reason == "interrupted"
    # an interrupted run of another request is not resumed
    with pytest.raises(KeyboardInterrupt):
        provenance.ensure(art, _stamp(epochs=9), killed, resumable=True)
    d = provenance.ensure(art, _stamp(epochs=4), lambda p: p.mkdir(), resumable=True)
    assert d.action == "compute" and "another request" in d.reason


def test_unfinished_build_stays_pending(tmp_path):
    art = tmp_path / "m"
    d = provenance.ensure(art, _stamp(), lambda p: (p.mkdir(), False)[1], resumable=True)
    assert d.action == "resume" and provenance.read_stamp(art) is None
    assert provenance.decide(art, _stamp(), resumable=True).action == "resume"


def test_fresh_recomputes_once_per_run(tmp_path, monkeypatch):
    monkeypatch.delenv(provenance.FRESH_ENV, raising=False)
    art, calls = tmp_path / "a.txt", []
    provenance.ensure(art, _stamp(), _writer(calls))
    since = provenance.request_fresh()
    assert provenance.request_fresh() == since  # an earlier cut-off is kept
    assert provenance.ensure(art, _stamp(), _writer(calls)).reason == "fresh requested"
    assert provenance.ensure(art, _stamp(), _writer(calls)).action == "reuse"  # remade in this run
    assert len(calls) == 2
    monkeypatch.delenv(provenance.FRESH_ENV)
    assert provenance.ensure(art, _stamp(), _writer(calls), fresh=True).reason == "fresh requested"


def test_identity_and_log(tmp_path, monkeypatch):
    user = tmp_path / "user.root"
    user.write_text("x")
    a = provenance.identity(user)
    assert a.startswith("file:")
    user.write_text("xy")
    assert provenance.identity(user) != a
    folder = tmp_path / "sets"
    provenance.ensure(folder, _stamp(), lambda p: (p.mkdir(), (p / "mc.root").write_text("m")))
    assert provenance.identity(folder / "mc.root").startswith("stamp:")
    assert provenance.array_digest({"x": np.arange(3)}) != provenance.array_digest({"x": np.arange(4)})
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(provenance.LOG_ENV, str(log))
    provenance.ensure(folder, _stamp(), lambda p: None)
    provenance.ensure(folder, _stamp(k=1), lambda p: p.mkdir())
    from amsnb.runner import summarize_decisions

    lines = summarize_decisions(provenance.read_log(log))
    assert lines == ["recomputed: tmp/sets (k <unset> -> 1)".replace("tmp", tmp_path.name)]


def test_reading_a_workdir_creates_nothing(tmp_path):
    from amsnb import scores

    wd = Workdir(tmp_path / "no" / "such" / "run")
    for p in (wd.sets, wd.models, wd.scores, wd.ecal_data, wd.nuclei_data, wd.notebook("03"), wd.figures("03")):
        assert isinstance(p, type(tmp_path))
    assert wd.load_metrics("03") == {} and scores.available(wd) == {}
    assert not (tmp_path / "no").exists()
    assert "no/such/run" in repr(wd)


# ------------------------------------------------------------------------------------------- artefact kinds
def test_raw_samples(tmp_path, capsys):
    from amsnb.ecal import sim

    out = tmp_path / "data" / "ecal"
    sim.generate_table1(out, scale=2e-6, seed=1, iss_scale=2e-5, progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.root")}
    sim.generate_table1(out, scale=2e-6, seed=1, iss_scale=2e-5, progress=True)  # progress changes nothing
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.root")} == mtimes
    capsys.readouterr()
    sim.generate_table1(out, scale=2e-6, seed=2, iss_scale=2e-5, progress=False)
    assert "data/ecal/mc_low.root: seed 1 -> 2, simulating" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns != mtimes[p.name] for p in out.glob("*.root"))
    # a killed write: the file is removed (or .part only) and its stamp is gone, so it is simulated again
    provenance.invalidate(out / "iss_val.root")
    (out / "iss_val.root").write_bytes(b"truncated")
    capsys.readouterr()
    sim.generate_table1(out, scale=2e-6, seed=2, iss_scale=2e-5, progress=False)
    printed = capsys.readouterr().out
    assert "iss_val.root: no stamp" in printed and "mc_low.root: reused" in printed


def test_selected_sets_and_cache(tmp_path, capsys):
    from amsnb import io
    from amsnb.ecal import cache, datasets

    raw = user_files(tmp_path / "raw")
    wd = Workdir(tmp_path / "run")
    request = datasets.DataRequest(scale=1.0, seed=1, input_files=raw)
    kw = dict(progress=False)
    sets = datasets.ensure_ecal_sets(wd, request, **kw)
    stamp = provenance.read_stamp(wd.sets)
    datasets.ensure_ecal_sets(wd, request, progress=True)
    assert provenance.read_stamp(wd.sets).created == stamp.created  # reused
    capsys.readouterr()
    datasets.ensure_ecal_sets(wd, request, **kw, test_fraction=0.4)
    assert "sets: test_fraction 0.3 -> 0.4, selecting" in capsys.readouterr().out
    # a changed source file (same name) is seen through its size and mtime
    ev = io.read(raw["iss_test"][0])
    io.write(raw["iss_test"][0], {k: v[:300] for k, v in ev.items()})
    datasets.ensure_ecal_sets(wd, request, **kw, test_fraction=0.4)
    assert "sets: input iss_test changed, selecting" in capsys.readouterr().out

    folder = cache.build_cache(sets["mc_high"], wd.path / "cache", progress=False)
    created = provenance.read_stamp(folder).created
    assert provenance.read_stamp(cache.build_cache(sets["mc_high"], wd.path / "cache")).created == created
    half = cache.build_cache(sets["mc_high"], wd.path / "cache", dtype="float16", progress=False)
    assert half != folder and provenance.read_stamp(half).request["dtype"] == "float16"
    assert np.load(half / "images.npy", mmap_mode="r").dtype == np.float16
    assert provenance.read_stamp(cache.build_cache(sets["mc_high"], wd.path / "cache")).created == created
    capsys.readouterr()
    cache.build_cache(sets["mc_high"], wd.path / "cache", max_events=100, progress=False)
    assert "cache/mc_high: max_events null -> 100, caching" in capsys.readouterr().out
    # the sets were reselected above: a cache of the old mc_high is no longer current
    datasets.ensure_ecal_sets(wd, request, **kw, test_fraction=0.3)
    capsys.readouterr()
    cache.build_cache(sets["mc_high"], wd.path / "cache", dtype="float16", progress=False)
    assert "cache/mc_high.float16: input source changed, caching" in capsys.readouterr().out


@pytest.mark.slow
def test_models_follow_the_training_size_and_scores_go_stale(tmp_path, capsys, one_torch_thread):
    """The stale-reuse reproduction of the issue: 200 then 600 training events must give two different models."""
    import torch

    from amsnb import scores
    from amsnb.ecal import datasets, experiment
    from amsnb.train import TrainConfig

    wd = Workdir(tmp_path / "run")
    sets = datasets.ensure_ecal_sets(
        wd, datasets.DataRequest(scale=1.0, seed=1, input_files=user_files(tmp_path / "raw", n=1500)), progress=False)
    cfg = TrainConfig(epochs=1, batch_size=50, progress=False, early_stopping_metric="val_loss")

    def train(n, **kw):
        data = experiment.prepare(wd, sets, max_train_events=n, progress=False)
        return data, experiment.train_model(wd, "cnn_small", "cnn", "small", data, kw.pop("config", cfg), **kw)

    d200, r200 = train(200)
    experiment.score_sets(wd, "cnn_small", r200.model, d200.evaluation)
    w200 = {k: v.clone() for k, v in r200.model.state_dict().items()}
    capsys.readouterr()
    d600, r600 = train(600)
    out = capsys.readouterr().out
    assert "models/cnn_small: data.max_train_events 200 -> 600, input train changed, training" in out
    assert len(d600.train) == 600
    assert any(not torch.equal(w200[k], v) for k, v in r600.model.state_dict().items())
    # the score files of the 200-event model are now stale: notebook 05's reader skips them
    with pytest.raises(Exception, match="no score files"):
        scores.load_scores(wd)
    assert "stale" in capsys.readouterr().out
    # the same request again (progress and thread settings do not count): reused, the same weights
    _, again = train(600, config=TrainConfig(**{**vars(cfg), "progress": True, "cpu_threads": 1}))
    assert "models/cnn_small: reused" in capsys.readouterr().out
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in r600.model.state_dict().items())
    # another learning rate: retrained
    train(600, config=TrainConfig(**{**vars(cfg), "lr": 3e-3}))
    assert "train_config.lr 0.001 -> 0.003" in capsys.readouterr().out


@pytest.mark.slow
def test_a_model_of_the_same_request_is_not_trained_twice(tmp_path, capsys, one_torch_thread):
    """The learning curve's point of notebook 04's size reuses notebook 04's model (same request, other tag); a
    point of another size trains its own; score files of an unchanged model are reused, not recomputed."""
    import torch

    from amsnb.ecal import datasets, experiment
    from amsnb.train import TrainConfig

    wd = Workdir(tmp_path / "run")
    sets = datasets.ensure_ecal_sets(
        wd, datasets.DataRequest(scale=1.0, seed=1, input_files=user_files(tmp_path / "raw", n=800)), progress=False)
    cfg = TrainConfig(epochs=1, batch_size=50, progress=False, early_stopping_metric="val_loss")
    data = experiment.prepare(wd, sets, max_train_events=200, progress=False)
    first = experiment.train_model(wd, "cnn_tiny", "cnn", "tiny", data, cfg)
    experiment.score_sets(wd, "cnn_tiny", first.model, data.evaluation)
    capsys.readouterr()
    experiment.score_sets(wd, "cnn_tiny", first.model, data.evaluation)
    assert capsys.readouterr().out.count(": reused") == len(data.evaluation)
    again = experiment.train_model(wd, "cnn_tiny_n200", "cnn", "tiny", data, cfg, reuse_from=("cnn_tiny",))
    assert "models/cnn_tiny_n200: reused (the same request as models/cnn_tiny)" in capsys.readouterr().out
    assert not (wd.models / "cnn_tiny_n200").exists()
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in first.model.state_dict().items())
    other = experiment.prepare(wd, sets, max_train_events=100, progress=False)
    experiment.train_model(wd, "cnn_tiny_n100", "cnn", "tiny", other, cfg, reuse_from=("cnn_tiny",))
    assert "models/cnn_tiny_n100: new, training" in capsys.readouterr().out


def test_baselines(tmp_path, capsys):
    from amsnb.ecal import baselines
    from amsnb.ecal.datasets import DataRequest

    wd = Workdir(tmp_path / "run")
    request = DataRequest(scale=1.0, seed=1, input_files=user_files(tmp_path / "raw"))
    kw = dict(search=[{}], progress=False)
    baselines.ensure_baseline_scores(wd, request, **kw)
    created = provenance.read_stamp(wd.models / "bdt").created
    baselines.ensure_baseline_scores(wd, request, **{**kw, "progress": True})
    assert provenance.read_stamp(wd.models / "bdt").created == created
    capsys.readouterr()
    baselines.ensure_baseline_scores(wd, dataclasses.replace(request, seed=2), **kw)
    out = capsys.readouterr().out
    assert "models/bdt: seed 1 -> 2, training" in out and "models/likelihood: seed 1 -> 2" in out
    assert provenance.is_current(wd.scores / "bdt" / "iss_test.root") == (True, "")


def test_nuclei_samples_follow_the_request(tmp_path, capsys):
    """The second stale-reuse reproduction: 200 events, then 1000, must give 1000."""
    from amsnb import io
    from amsnb.nuclei import samples as study

    wd = Workdir(tmp_path / "run")
    study.ensure_samples(wd, n_mc=200, n_data_si=50, z=(14,), seed=7, progress=False)  # Si: no MC boost
    capsys.readouterr()
    paths = study.ensure_samples(wd, n_mc=1000, n_data_si=50, z=(14,), seed=7, progress=False)
    out = capsys.readouterr().out
    assert "nuclei/mc_Z14.root: n 200 -> 1000, simulating" in out and "data_Z14.root: reused" in out
    assert io.num_entries(paths["mc"][14], "nuclei") == 1000
    assert json.loads((wd.nuclei_data / "samples.json").read_text())["counts"]["mc"] == {"14": 1000}


@pytest.mark.slow
def test_nuclei_model_follows_its_training_request(tmp_path, capsys, one_torch_thread):
    from amsnb.nuclei import sim
    from amsnb.nuclei import training as study

    wd = Workdir(tmp_path / "run")
    mc = {z: sim.simulate(300, (z,), "mc", seed=[1, z]) for z in (14, 15, 16)}
    data = {z: sim.simulate(150, (z,), "data", seed=[2, z]) for z in (14, 15, 16)}
    sets = study.make_datasets(mc, data, 15, 300, seed=1, n_target=100)
    tc = {"epochs": 1, "batch_size": 64, "progress": False}
    study.train(wd, sets, 15, tc, "small")
    capsys.readouterr()
    study.train(wd, sets, 15, {**tc, "progress": True}, "small")
    assert "models/mda_P: reused" in capsys.readouterr().out
    study.train(wd, sets, 15, {**tc, "epochs": 2}, "small")
    assert "train_config.epochs 1 -> 2, training" in capsys.readouterr().out
    other = study.make_datasets(mc, data, 15, 300, seed=2, n_target=100)  # other events, same parameters
    study.train(wd, other, 15, {**tc, "epochs": 2}, "small")
    out = capsys.readouterr().out
    assert "models/mda_P: input" in out and "train, val changed, training" in out
