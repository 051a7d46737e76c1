"""ECAL BDT and likelihood: refusal of single-class training sets, save/load round trips (identical scores),
better than random on separable toy data, and the score files of ensure_baseline_scores."""

from __future__ import annotations

import numpy as np
import pytest
from test_datasets import toy_events, user_files

from amsnb import metrics, scores
from amsnb.ecal import baselines
from amsnb.ecal.datasets import DataRequest
from amsnb.errors import ConfigError


def test_a_single_class_training_set_is_refused():
    ev = toy_events(300, 1)
    only_e = {k: v[ev["label"] == 1] for k, v in ev.items()}
    with pytest.raises(ConfigError, match="needs both"):
        baselines.train_bdt(only_e, search="none", progress=False)
    with pytest.raises(ConfigError, match="0 protons"):
        baselines.Likelihood.fit(only_e)
    unlabeled = dict(ev, label=np.full(300, -1, np.int8))
    with pytest.raises(ConfigError, match="0 electrons and 0 protons"):
        baselines.train_bdt(unlabeled, search="none", progress=False)


def test_bdt_and_likelihood_beat_random_on_separable_toys():
    """Toys: shower_max ~ N(7, 1) for protons, N(10, 1) for electrons (d' = 3) plus a weaker lateral_rms
    difference. For d' = 3 alone the ideal AUC is Phi(3/sqrt(2)) = 0.983 and the rejection at 90 % efficiency
    1/P(N(7,1) > 10 - 1.28) = 23; with ~1000 test protons the rejection's binomial error is ~15 %, so the bounds
    below (AUC > 0.95, rejection > 10) fail only for a classifier that learned much less than the toy holds,
    while a random score (AUC 0.5, rejection 1.1) is far outside."""
    train, test = toy_events(3000, 1), toy_events(2000, 2)
    bdt = baselines.train_bdt(train, search="none", progress=False)
    lik = baselines.Likelihood.fit(train)
    for model in (bdt, lik):
        s = model.score(test)
        assert metrics.roc_auc(s, test["label"]) > 0.95
        assert metrics.rejection_at_efficiency(s, test["label"]).rejection > 10
    assert metrics.roc_auc(np.random.default_rng(0).random(2000), test["label"]) < 0.55
    assert list(bdt.importances())[0] == "shower_max"
    assert len(baselines.BDT_FEATURES) == baselines.feature_matrix(test).shape[1] == 46
    assert not {"e_over_r", "trd_llr", "tracker_charge", "rigidity"} & set(baselines.BDT_FEATURES)


def test_save_load_round_trip_gives_identical_scores(tmp_path):
    train, test = toy_events(1500, 3), toy_events(500, 4)
    bdt = baselines.train_bdt(train, search=[{"num_leaves": 7}, {"num_leaves": 15}], progress=False)
    assert len(bdt.info["trials"]) == 2
    bdt.save(tmp_path / "bdt")
    np.testing.assert_array_equal(baselines.BDT.load(tmp_path / "bdt").score(test), bdt.score(test))
    lik = baselines.Likelihood.fit(train)
    lik.save(tmp_path / "lik")
    np.testing.assert_array_equal(baselines.Likelihood.load(tmp_path / "lik").score(test), lik.score(test))
    assert not list(tmp_path.rglob("*.pkl")) and (tmp_path / "bdt" / "model.txt").read_text().startswith("tree")
    with pytest.raises(ConfigError, match="not a 'bdt'"):
        baselines.BDT.load(tmp_path / "lik")


def test_ensure_baseline_scores_writes_and_reuses(tmp_path):
    raw = user_files(tmp_path / "raw", n=800)
    wd = tmp_path / "wd"
    request = DataRequest(scale=1, seed=1, input_files=raw)
    out = baselines.ensure_baseline_scores(wd, request, search="none", progress=False)
    assert set(out) == {"bdt", "likelihood"}
    assert set(out["bdt"]) == {"mc_low", "mc_test", "iss_val", "iss_test", "iss_target"}  # not the training set
    s = scores.read_scores(out["bdt"]["mc_test"])
    assert metrics.roc_auc(s["score"], s["label"]) > 0.9
    assert (scores.read_scores(out["likelihood"]["iss_target"])["label"] == -1).all()
    cfg = wd / "models" / "bdt" / "config.json"
    before = cfg.stat().st_mtime_ns
    baselines.ensure_baseline_scores(wd, DataRequest(scale=1, seed=1, input_files=raw), search="none", progress=False)
    assert cfg.stat().st_mtime_ns == before  # the saved model was reused
    with pytest.raises(ConfigError, match="baselines are"):
        baselines.ensure_baseline_scores(wd, DataRequest(scale=1, seed=1, input_files=raw), models=["cnn"])


def test_library_comparison_runs_and_skips_missing_optional_libraries(monkeypatch):
    import importlib.util

    ev = toy_events(1200, 5)
    rows = baselines.compare_libraries(ev, libraries=("lightgbm",))
    assert rows[0]["library"] == "lightgbm" and rows[0]["auc"] > 0.95 and rows[0]["n_val"] > 0
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgboost" else real(name, *a))
    assert "not installed" in baselines.compare_libraries(ev, libraries=("xgboost",))[0]["skipped"]
