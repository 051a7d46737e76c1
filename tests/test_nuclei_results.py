"""The named results of notebooks 06 and 07 give the metrics.json keys the regression suite reads
(tests/reference/06.json, 07.json) and the numbers the notebooks show; the nuclei wing keeps no feature probe of
its own (the core's ``amsnb.train.diagnostics.domain_probe`` is the one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amsnb.metrics import Efficiency
from amsnb.nuclei import below_l1, mda_study
from amsnb.nuclei.selections import CutEfficiency


def _eff(v, err=0.01):
    return Efficiency(v, v - err, v + err, 100.0)


def test_scan_metric_names_have_no_dots():
    mat = below_l1.Scan("x_l1l2", [below_l1.ScanPoint(x, _eff(0.02 + 0.001 * x), 0.5, 0.003, {"p_int_l1l2": 0.1})
                                   for x in (5.0, 7.0)])
    res = below_l1.Scan("l1_gain_res", [below_l1.ScanPoint(g, _eff(0.03), 0.5, 0.003, {"l1_sigma68": 0.38})
                                        for g in (0.02, 0.035)])
    assert mat.metrics() == {"below_l1_x5": pytest.approx(0.025), "below_l1_x7": pytest.approx(0.027)}
    assert set(res.metrics()) == {"below_l1_l1gain20", "below_l1_l1gain35", "l1_sigma68_l1gain20",
                                  "l1_sigma68_l1gain35"}
    row = mat.as_rows()[0]
    assert row["x_l1l2"] == 5.0 and row["below_l1_lo"] == pytest.approx(0.015) and row["p_int_l1l2"] == 0.1


def test_fit_case_pull_and_fit_metrics():
    class Fit:  # the two fields of a TemplateFitResult a FitCase reads
        fraction, fraction_err = 0.031, 0.004

    case = below_l1.FitCase(Fit(), _eff(0.025, 0.003))
    assert case.pull == pytest.approx(0.006 / 0.005)
    tune = type("Tune", (), {"scale": 1.0175, "rel_smear": 0.0125})()
    m = below_l1.BelowL1Fits(tune, (14.5, 15.5), {"tuned": case}).metrics()
    assert m == {"charge_scale": 1.0175, "charge_rel_smear": 0.0125, "below_l1_fit_tuned": 0.031,
                 "below_l1_fit_tuned_err": 0.004, "below_l1_truth_tuned": 0.025,
                 "below_l1_truth_tuned_err": pytest.approx(0.003), "pull_tuned": pytest.approx(1.2)}


def test_notebook_06_tables_and_metric_names():
    inputs = mda_study.InputProbes({"as simulated": {"inner charges": 0.81}, "calibrated + MC tune":
                                    {"all inputs": 0.494}})
    assert inputs.metrics() == {"input_probe_auc_as_simulated_inner_charges": 0.81,
                                "input_probe_auc_calibrated_MC_tune_all_inputs": 0.494}
    abl = mda_study.Ablation(15, 1, {"no DA": mda_study.AblationRow(0.86, 0.02, 0.5, 0.52)})
    assert abl.metrics() == {"ablation_auc_no_DA": 0.86, "ablation_probe_auc_no_DA": 0.52}
    assert abl.auc() == {"no DA": (0.86, 0.02)} and abl.title == "P selection, 1 epochs"
    eff = CutEfficiency(0.5, _eff(0.9), _eff(0.2))
    assert eff.table() == {"sig_eff": 0.9, "sig_eff_err": 0.01, "bkg_eff": 0.2, "bkg_eff_err": 0.01}
    assert math.isclose(eff.as_dict()["bkg_eff_hi"], 0.21)


def test_the_nuclei_wing_has_no_feature_probe_of_its_own(monkeypatch):
    """heldout_probe only extracts the fused features and hands them to the core probe."""
    from amsnb.train import diagnostics

    assert not hasattr(mda_study, "domain_probe")
    seen = {}
    monkeypatch.setattr(diagnostics, "domain_probe", lambda fm, fd, seed, folds: seen.update(
        n=(len(fm), len(fd)), seed=seed, folds=folds) or {"probe_auc": 0.5})
    monkeypatch.setattr(mda_study, "score", lambda model, a: {"features": np.zeros((len(a["q_inner"]), 4))})
    sets = mda_study.TrainingSets(15, {}, {}, {}, {"q_inner": np.zeros(30)}, {"q_inner": np.zeros(20)})
    assert mda_study.heldout_probe(None, sets, seed=3) == {"probe_auc": 0.5}
    assert seen == {"n": (30, 20), "seed": 3, "folds": 3}


@pytest.mark.parametrize("nn", ["06", "07"])
def test_no_reference_tolerance_accepts_zero_for_a_nonzero_figure(nn):
    """tests/reference/06.json and 07.json: a tolerance comes from the smoke counts (a few sigma, said in "why") and
    never reaches zero for a figure that is physically non-zero (pulls are centred on zero by construction)."""
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parent / "reference" / f"{nn}.json").read_text())
    for key, r in ref.items():
        assert "sigma" in r["why"], f"{key}: the why must give the statistical error the tolerance comes from"
        if key.startswith("pull_"):
            continue
        tol = max(r.get("abs", 0.0), r.get("rel", 0.0) * abs(r["value"]))
        assert abs(r["value"]) > tol, f"{key}: tolerance {tol} accepts 0 for the value {r['value']}"
