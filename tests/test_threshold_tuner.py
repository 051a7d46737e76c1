"""Threshold tuner: set the sliders, assert the readout equals amsnb.metrics on the same events (no browser)."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from amsnb import metrics, working_points  # noqa: E402
from amsnb.errors import EmptySelectionError  # noqa: E402
from amsnb.widgets.threshold_tuner import (  # noqa: E402
    ThresholdTuner,
    demo_scores,
    readout,
    readout_html,
    write_demo_workdir,
)


@pytest.fixture(scope="module")
def scores():
    return demo_scores(seed=11, n_proton=6000, n_electron=1500)


@pytest.fixture()
def tuner(scores, tmp_path):
    return ThresholdTuner(scores, save_dir=tmp_path)


def _arrays(scores, model, eval_set):
    a = scores[model][eval_set]
    return np.asarray(a["score"], np.float32), a["label"], np.asarray(a["energy"], np.float32)


def test_efficiency_slider_readout_equals_metrics(tuner, scores):
    tuner.w_eff.value = 0.95
    want = metrics.rejection_at_efficiency(*_arrays(scores, "demo_bdt", "mc_high_test")[:2], efficiency=0.95)
    got = tuner.current
    assert got.threshold == want.threshold and got.n_bkg_pass == want.n_bkg_pass
    assert got.rejection == pytest.approx(want.rejection) and got.efficiency == pytest.approx(want.efficiency)
    assert readout_html(got) in tuner.w_readout.value


def test_threshold_slider_and_energy_range(tuner, scores):
    tuner.w_mode.value = "threshold"
    assert tuner.w_thr.layout.display is None and tuner.w_eff.layout.display == "none"
    tuner.w_energy.index = (2, 6)
    tuner.w_thr.value = 0.6
    lo, hi = tuner.energy_range
    s, lab, e = _arrays(scores, "demo_bdt", "mc_high_test")
    m = (e >= lo) & (e < hi)
    want = metrics.rejection_at_threshold(s[m], lab[m], threshold=tuner.w_thr.value)
    got = tuner.current
    assert (got.n_sig, got.n_bkg, got.n_bkg_pass, got.n_sig_pass) == (want.n_sig, want.n_bkg, want.n_bkg_pass,
                                                                      want.n_sig_pass)
    assert got.rejection_lo == pytest.approx(want.rejection_lo) and got.rejection_hi == pytest.approx(want.rejection_hi)
    assert float(tuner.thr_line.get_xdata()[0]) == pytest.approx(tuner.w_thr.value)


def test_mode_switch_keeps_working_point(tuner):
    tuner.w_eff.value = 0.9
    thr = tuner.current.threshold
    tuner.w_mode.value = "threshold"
    assert tuner.w_thr.value == pytest.approx(thr, abs=tuner.w_thr.step)
    tuner.w_mode.value = "efficiency"
    assert tuner.w_eff.value == pytest.approx(0.9, abs=0.0015)


def test_model_and_set_selectors(tuner, scores):
    tuner.w_model.value = "demo_cnn"
    tuner.w_set.value = "iss_test"
    s, lab, _ = _arrays(scores, "demo_cnn", "iss_test")
    want = metrics.rejection_at_efficiency(s, lab, efficiency=tuner.w_eff.value)
    assert tuner.current.n_bkg_pass == want.n_bkg_pass
    assert tuner.energy_range[0] <= float(np.min(scores["demo_cnn"]["iss_test"]["energy"]))
    # the stronger toy model rejects more protons at the same efficiency (b + 1.5 in demo_scores)
    bdt = metrics.rejection_at_efficiency(*_arrays(scores, "demo_bdt", "iss_test")[:2], efficiency=tuner.w_eff.value)
    assert tuner.current.rejection > bdt.rejection


def test_lower_limit_readout(tuner):
    tuner.w_mode.value = "threshold"
    tuner.w_thr.value = tuner.w_thr.max
    p = tuner.current
    assert p.is_lower_limit and np.isfinite(p.rejection) and "lower limit" in tuner.w_readout.value
    assert len(tuner.wp_marker.get_xdata()) == 0 and len(tuner.limit_marker.get_xdata()) == 1


def test_save_working_point_is_loadable(tuner, tmp_path):
    tuner.w_eff.value = 0.85
    tuner.w_save.click()
    wp = working_points.load_working_point(tuner.last_saved)
    assert tuner.last_saved.parent == tmp_path
    assert wp.threshold == tuner.current.threshold and wp.model == "demo_bdt" and wp.eval_set == "mc_high_test"
    assert wp.energy_range == tuner.energy_range and wp.amsnb_version


def test_from_workdir_reads_score_files(tmp_path):
    wd = write_demo_workdir(tmp_path / "wd", seed=3, n_proton=800, n_electron=200)
    t = ThresholdTuner.from_workdir(wd)
    assert set(t.w_model.options) == {"demo_bdt", "demo_cnn"}
    assert t.save_dir == wd / "05_evaluation"
    a = demo_scores(seed=3, n_proton=800, n_electron=200)["demo_bdt"]["iss_test"]
    eng = working_points.WorkingPointEngine(a["score"], a["label"])
    assert readout(eng, "efficiency", 0.9).threshold == readout(t.engine("demo_bdt", "iss_test"), "efficiency",
                                                                 0.9).threshold


def test_blitting_matches_full_draw(scores):
    """The blitted frame (background + marks) equals a full redraw of the same state."""
    t = ThresholdTuner(scores, interactive=False, blit=True)
    t.w_eff.value = 0.93
    blitted = np.asarray(t.fig.canvas.buffer_rgba()).copy()
    with t.static() as fig:
        fig.canvas.draw()
        full = np.asarray(fig.canvas.buffer_rgba()).copy()
    # the blitted threshold line lies over the histogram lines (~500 px of the 864 x 351 frame)
    assert np.mean(np.any(blitted != full, axis=-1)) < 2e-3
    assert t.wp_marker.get_animated()  # blitting resumes
    t.w_eff.value = 0.8
    assert np.any(np.asarray(t.fig.canvas.buffer_rgba()) != full)


def test_use_weights_switch(scores):
    """Event counts (seed 000) or the files' weights: with non-unit weights the two readouts differ, and each
    equals amsnb.metrics with the same choice."""
    a = {k: v.copy() for k, v in scores["demo_bdt"]["mc_high_test"].items()}
    a["weight"] = np.where(a["energy"] > 600, 3.0, 1.0).astype(np.float32)
    s = np.asarray(a["score"], np.float32)
    counts = ThresholdTuner({"m": {"s": a}}, use_weights=False).current
    weighted = ThresholdTuner({"m": {"s": a}}, use_weights=True).current
    assert counts.threshold == metrics.rejection_at_efficiency(s, a["label"], efficiency=0.9).threshold
    assert weighted.threshold == metrics.rejection_at_efficiency(s, a["label"], a["weight"], efficiency=0.9).threshold
    assert weighted.threshold != counts.threshold


def test_unlabelled_sets_are_left_out(scores):
    a = dict(scores["demo_bdt"]["iss_test"])
    a["label"] = np.full(len(a["label"]), -1, np.int8)
    t = ThresholdTuner({"demo_bdt": {"iss_target": a, "mc_high_test": scores["demo_bdt"]["mc_high_test"]}})
    assert list(t.w_set.options) == ["mc_high_test"]
    with pytest.raises(EmptySelectionError, match="label"):
        ThresholdTuner({"demo_bdt": {"iss_target": a}})


def test_the_dashboards_demo_folder_goes_when_its_process_exits():
    """The dashboard without a workdir writes demo score files to a temporary folder; it must not outlive the kernel
    (it used to leave one /tmp/amsnb_tuner_* folder per launch)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("from amsnb.widgets.threshold_tuner import demo_workdir, ThresholdTuner\n"
            "wd = demo_workdir(3, n_proton=300, n_electron=100)\n"
            "ThresholdTuner.from_workdir(wd)\n"
            "print(wd)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wd = Path(out.stdout.strip().splitlines()[-1])
    assert wd.name == "demo" and wd.parent.name.startswith("amsnb_tuner_")
    assert not wd.parent.exists()


def _flux_weighted(scores):
    a = {k: v.copy() for k, v in scores["demo_bdt"]["mc_high_test"].items()}
    a["weight"] = np.where(a["energy"] > 600, 3.0, 0.5).astype(np.float32)
    return a


@pytest.mark.parametrize("use_weights", [False, True])
def test_every_readout_line_equals_metrics_in_both_count_modes(scores, use_weights):
    """Issue 23: the tuner's readout rows are amsnb.metrics' working point on the same scores with the same count
    mode, and the rows agree with each other (efficiency = 1 - lost / all from the same sums)."""
    from amsnb.widgets.threshold_tuner import readout_rows

    a = _flux_weighted(scores)
    t = ThresholdTuner({"m": {"s": a}}, use_weights=use_weights)
    for eff in (0.9, 0.8):
        t.w_eff.value = eff
        want = metrics.rejection_at_efficiency(np.asarray(a["score"], np.float32), a["label"],
                                               a["weight"] if use_weights else None, efficiency=eff)
        got = t.current
        assert (got.threshold, got.n_bkg_pass, got.n_sig_pass) == (want.threshold, want.n_bkg_pass, want.n_sig_pass)
        assert got.rejection == pytest.approx(want.rejection) and got.efficiency == pytest.approx(want.efficiency)
        rows = dict(readout_rows(got, weighted=use_weights))
        assert rows == dict(readout_rows(want, weighted=use_weights))
        assert all(f"<b>{v}</b>" in t.w_readout.value for v in rows.values())
        lost_key = "lost electrons (weighted)" if use_weights else "lost electrons"
        lost, total = (float(x) for x in rows[lost_key].split(" (")[0].split(" of "))
        shown_eff = float(rows["electron efficiency"].split(" %")[0])
        assert shown_eff == pytest.approx(100 * (1 - lost / total), abs=0.051)
        assert ("flux-weighted" if use_weights else "event counts") in t.w_readout.value


def test_counts_switch_and_default_match_notebook_05(scores):
    """Plain event counts by default, as notebook 05 (the default profile's use_weights); the switch recomputes."""
    from amsnb.profiles import parameters

    a = _flux_weighted(scores)
    t = ThresholdTuner({"m": {"s": a}})
    assert t.use_weights is False and t.w_counts.value is False
    assert parameters("default", "05")["use_weights"] is False
    s = np.asarray(a["score"], np.float32)
    counts = metrics.rejection_at_efficiency(s, a["label"], efficiency=0.9)
    assert t.current.threshold == counts.threshold
    t.w_counts.value = True
    weighted = metrics.rejection_at_efficiency(s, a["label"], a["weight"], efficiency=0.9)
    assert t.current.threshold == weighted.threshold != counts.threshold
    assert "flux-weighted" in t.w_readout.value


def test_nuclei_scores_read_as_signal_and_background_in_rigidity(scores, tmp_path):
    """A score file stamped with a nuclei kind is not offered as an electron/proton classifier."""
    from amsnb import provenance
    from amsnb import scores as sc

    a = scores["demo_bdt"]["iss_test"]
    kind = sc.ScoreKind(signal="Z=15 nucleus", background="background", axis="|rigidity|", unit="GV")
    sc.write_scores(sc.score_path(tmp_path, "mda_P", "test"), **a, kind=kind,
                    made_by=provenance.Stamp("test", "1", {"model": "mda_P"}))
    sc.write_scores(sc.score_path(tmp_path, "bdt", "test"), **a, made_by=provenance.Stamp("test", "1"))
    t = ThresholdTuner.from_workdir(tmp_path, model="mda_P")
    assert t.kind == kind and sc.score_kind(sc.score_path(tmp_path, "bdt", "test")) == sc.ELECTRON_PROTON
    text = t.w_readout.value
    assert "Z=15 nucleus efficiency" in text and "background rejection" in text and "|rigidity|" in text
    assert "electron" not in text and "proton" not in text and "GV" in text
    assert t.w_energy.description == "|rigidity| [GV]" and t.ax_curve.get_xlabel() == "Z=15 nucleus efficiency"
    t.w_model.value = "bdt"
    assert "proton rejection" in t.w_readout.value and t.w_energy.description == "Energy [GeV]"


def test_threshold_slider_step_and_demo_save_says_temporary(tmp_path):
    wd = write_demo_workdir(tmp_path / "wd", seed=3, n_proton=800, n_electron=200)
    t = ThresholdTuner.from_workdir(wd)
    assert t.w_thr.step == 0.001
    t.w_save.click()
    assert "temporary" in t.w_status.value
