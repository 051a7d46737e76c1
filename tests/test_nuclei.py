"""Nuclei analysis pieces: the hit-graph transform (edges, masking of missing layers), selections, the seed's
training composition, clear errors for empty selections and absent species, efficiencies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amsnb import nuclei
from amsnb.errors import ConfigError, EmptySelectionError
from amsnb.nuclei import sim


def _edges(g):
    return {(int(a), int(b)) for a, b in g.edge_index.t()}


def test_graph_skips_missing_layers_and_links_sides_and_tracks():
    nl = nuclei.N_LAYERS_USED
    mask = np.zeros((2, nl, 2), bool)
    mask[0, [0, 1, 3], 0] = True  # main track x side: L1, L2, L4 (L3 missing)
    mask[0, [0, 1], 1] = True  # main track y side: L1, L2
    mask[1, 3, 0] = True  # second track: x side of L4
    hits = np.random.default_rng(0).normal(size=(2, nl, 2, len(nuclei.NODE_FEATURES))).astype(np.float32)
    g = nuclei.build_graph(hits, mask)
    assert g.num_nodes == mask.sum() == 6
    flat = np.flatnonzero(mask.ravel())  # node ids follow (track, layer, side) order
    nid = {tuple(np.unravel_index(f, mask.shape)): i for i, f in enumerate(flat)}
    e = _edges(g)
    assert (nid[0, 1, 0], nid[0, 3, 0]) in e  # L2 -> L4 across the missing L3
    assert (nid[0, 0, 0], nid[0, 1, 0]) in e and (nid[0, 0, 1], nid[0, 1, 1]) in e
    assert (nid[0, 0, 0], nid[0, 0, 1]) in e  # x <-> y of the same layer
    assert (nid[0, 3, 0], nid[1, 3, 0]) in e  # main <-> second track at L4
    assert (nid[0, 0, 0], nid[0, 3, 0]) not in e  # only consecutive present layers
    assert all((b, a) in e for a, b in e)  # undirected
    assert len(e) == 2 * 6  # x: L1-L2, L2-L4; y: L1-L2; x-y: L1, L2; tracks: L4
    np.testing.assert_allclose(g.x.numpy(), hits.reshape(-1, hits.shape[-1])[flat])


def test_graph_batch_keeps_events_apart_and_allows_empty_events():
    a = sim.simulate(40, (15, 16), "mc", seed=1)
    inp = nuclei.event_inputs(a)
    inp["mask"][3] = False  # an event without any hit
    g = nuclei.build_graph(inp["hits"], inp["mask"])
    src, dst = g.edge_index
    assert torch.equal(g.batch[src], g.batch[dst])
    assert g.num_nodes == int(inp["mask"].sum()) and g.num_graphs == 40
    assert not (g.batch == 3).any()


def test_event_inputs_hide_the_l1_charge():
    a = sim.simulate(200, (15,), "mc", seed=2)
    inp = nuclei.event_inputs(a)
    assert (inp["hits"][:, :, 0, :, 2] == 0).all()  # L1 charge not a network input (seed: L2-L8 charges)
    assert (inp["hits"][:, 0, 1:, :, 2][inp["mask"][:, 0, 1:]] > 0).all()
    assert inp["clusters"].shape == (200, 1, 8, 2) and inp["tof"].shape == (200, 7) and inp["rig"].shape == (200, 3)


@pytest.fixture(scope="module")
def samples():
    return {z: sim.simulate(15000, (z,), "mc", seed=10 + z) for z in (14, 15, 16, 17)}


def test_selection_windows_and_categories(samples):
    m = nuclei.select_mask(samples[15], 15)
    a = samples[15]
    assert ((a["q_inner"][m] >= 14.55) & (a["q_inner"][m] < 15.45) & (np.abs(a["q_l1"][m] - 15) <= 0.5)).all()
    assert 0.3 < m.mean() < 0.6  # fragmentation (~45 % of P interact somewhere) and charge tails
    p = nuclei.pooled_set(samples, 15, l1_cut=False)
    cat = nuclei.category(p, 15)
    assert set(np.unique(cat)) <= {"signal", "below_l1", "above_l1", "lighter"}
    assert (p["z_primary"][cat == "below_l1"] > 15).all() and (p["survived_l1"][cat == "below_l1"] == 1).all()
    assert (np.abs(p["q_l1"][cat == "below_l1"] - 16.5) < 2).mean() > 0.9  # L1 shows the parent (Z >= 16)


def test_training_set_has_the_seed_composition(samples):
    ts = nuclei.training_set(samples, 14, 400, seed=1)  # Si: 50 % Si, 40.5 % P, 9.5 % S
    n = len(ts["q_inner"])
    frac = {z: (ts["z_primary"] == z).sum() / n for z in (14, 15, 16)}
    assert frac[14] == pytest.approx(0.5, abs=0.01) and frac[15] == pytest.approx(0.405, abs=0.01)
    assert frac[16] == pytest.approx(0.095, abs=0.01)
    assert nuclei.select_mask(ts, 14).all()
    counts = nuclei.unique_counts(ts)
    assert counts[14][0] == counts[14][1]  # the abundant species is never duplicated


def test_absent_species_and_empty_selection_are_reported(samples):
    with pytest.raises(EmptySelectionError, match="Z=14"):
        nuclei.training_set({z: samples[z] for z in (15, 16)}, 15, 500)
    few = {z: nuclei.take(samples[z], np.arange(50)) for z in (14, 15, 16)}
    with pytest.raises(EmptySelectionError, match="species Z=14"):
        nuclei.training_set(few, 15, 500)  # no Si among 50 events passes the P selection
    with pytest.warns(UserWarning, match="left out"):
        ts = nuclei.training_set(few, 15, 500, strict=False)
    assert 14 not in set(ts["z_primary"])
    with pytest.raises(EmptySelectionError, match="pooled Si sample"):
        nuclei.pooled_set({26: nuclei.take(samples[17], np.arange(0))}, 14)


def test_efficiency_vs_rigidity(samples):
    p = nuclei.pooled_set(samples, 15)
    sig = (p["z_primary"] == 15).astype(float)
    eff = nuclei.efficiency_vs_rigidity(p, sig, 15, threshold=0.5)
    s, b = eff["signal"], eff["background"]
    assert np.allclose(s.value[np.isfinite(s.value)], 1.0) and np.allclose(b.value[np.isfinite(b.value)], 0.0)
    ok = np.isfinite(b.value) & (b.n > 0)
    assert np.all(b.hi[ok] > 0) and np.all(b.lo[ok] == 0)  # Clopper-Pearson: no zero-width interval at zero
    assert np.all(s.lo[ok & np.isfinite(s.value)] < 1) and np.all(s.hi[np.isfinite(s.value)] == 1)
    assert set(eff["per_z"]) <= {14, 16, 17}


def test_ml_cut_table_with_a_perfect_score(samples):
    from amsnb.nuclei import below_l1

    p = nuclei.pooled_set(samples, 15, l1_cut=False)
    perfect = (p["z_primary"] == 15).astype(float)
    table = below_l1.ml_cut_table(below_l1.ScoredEvents(15, p, perfect), [0.5])
    rows = table.as_rows()
    assert rows[0]["sig_eff"] == 1.0 and rows[0]["bkg_eff"] == 0.0 and rows[0]["below_l1_after"] == 0.0
    assert rows[0]["bkg_eff_lo"] == 0.0 and rows[0]["bkg_eff_err"] > 0  # Clopper-Pearson, not Wald: nonzero at 0
    assert rows[0]["sig_eff_hi"] == 1.0 and rows[0]["sig_eff_lo"] < 1.0
    assert 0.005 < rows[0]["below_l1_before"] < 0.6  # ~2 % with the partial cross sections of docs/nuclei.md
    assert table.metrics() == {"ml_sig_eff_0.5": 1.0, "ml_bkg_eff_0.5": 0.0, "below_l1_after_0.5": 0.0,
                               "below_l1_before_ml": rows[0]["below_l1_before"]}


def test_input_calibration_recovers_the_data_scales():
    """calibrate_inputs finds the data/MC peak ratio per inner layer and TOF plane on Si: the sim's 1.012 (tracker)
    and 0.985 (TOF) plus the data's 25 % higher delta-ray rate, which moves the peak by ~+0.2 % (tracker) and
    ~+0.6 % (TOF); 20k Si each: peak positions known to ~0.05 %, accept +-0.004. L1 is left alone."""
    from amsnb.nuclei.samples import calibrate_inputs

    mc = {14: sim.simulate(20000, (14,), "mc", seed=1)}
    da = {14: sim.simulate(20000, (14,), "data", seed=2)}
    cal, scales = calibrate_inputs(da, mc)
    for layer in range(2, 9):
        assert scales[f"L{layer}"] == pytest.approx(1.014, abs=0.004)
    assert scales["tof_q_l1"] == pytest.approx(0.991, abs=0.004)
    np.testing.assert_array_equal(cal[14]["q_l1"], da[14]["q_l1"])
    # the per-layer peaks agree; the truncated mean keeps +0.2 % from the data's wider delta-ray tail
    assert np.median(cal[14]["q_inner"]) == pytest.approx(np.median(mc[14]["q_inner"]), abs=0.04)


def test_held_out_probe_sets_and_domain_weights(samples):
    """make_datasets: the probe's MC events are disjoint from the training/validation events and have the global
    MC's composition; its data events are disjoint from the DANN target; the domain weights give the training set
    the global MC's composition (weighted shares equal to 1e-6)."""
    from amsnb.nuclei.training import event_keys as k
    from amsnb.nuclei.training import make_datasets

    data = {z: sim.simulate(len(a["q_inner"]), (z,), "data", seed=50 + z) for z, a in samples.items()}
    sets = make_datasets(samples, data, 15, 400, seed=1, n_target=200)
    train_val = np.concatenate([k(sets.train_arrays), k(sets.val_arrays)])
    assert not np.isin(k(sets.probe_mc_arrays), train_val).any()
    assert not np.isin(k(sets.probe_data_arrays), k(sets.target_arrays)).any()
    assert len(sets.target_arrays["q_inner"]) <= 200
    glob = nuclei.pooled_set(samples, 15)
    tr, w = sets.train_arrays, sets.train_arrays["domain_weight"]
    assert w.mean() == pytest.approx(1.0, rel=1e-5)
    zs = np.unique(tr["z_primary"])
    ref = np.array([glob["weight"][glob["z_primary"] == z].sum() for z in zs])
    got = np.array([w[tr["z_primary"] == z].sum() for z in zs])
    np.testing.assert_allclose(got / got.sum(), ref / ref.sum(), atol=1e-6)
    assert "dw" in sets.train.t and "dw" not in sets.target.t


def test_mc_tune_adds_the_measured_cluster_excess():
    """tune_mc_inputs on Si: the measured excess (data 25 % more delta-ray clusters, 0.0035 x 14^2 x 0.25 = 0.17 per
    layer-side, x 1.3 on x) is added to the MC, so tuned MC and data agree in mean clusters per layer-side to
    ~0.03 (10k events, Poisson sigma ~0.015); the extra inner resolution is ~1 % and the truncated mean follows."""
    from amsnb.nuclei.samples import calibrate_inputs, tune_mc_inputs

    mc = {14: sim.simulate(20000, (14,), "mc", seed=1)}
    da, _ = calibrate_inputs({14: sim.simulate(20000, (14,), "data", seed=2)}, mc)
    tuned, info = tune_mc_inputs(mc, da, seed=3)
    assert info["cluster_excess"][1:8].mean() == pytest.approx(0.17 * 1.15, abs=0.04)
    assert 0.003 < info["rel_smear"][1:8].mean() < 0.02 and info["rel_smear"][0] == 0
    sel = nuclei.SELECTIONS[14]
    pick = [nuclei.take(a, (a["q_inner"] > sel.inner[0]) & (a["q_inner"] < sel.inner[1])) for a in (tuned[14], da[14])]
    diff = pick[0]["n_clusters"][:, 1:8].mean(0) - pick[1]["n_clusters"][:, 1:8].mean(0)
    assert np.abs(diff).max() < 0.06
    assert (tuned[14]["q_l1"] == mc[14]["q_l1"]).all()  # L1 (the template-fit variable) untouched


def test_alignment_comparison_on_a_selection(samples, tmp_path):
    """mda_study.compare_alignments: one MDA per (method, seed) on the selection's events, figures on the held-out
    probe sets; a second call reuses the trained model and gives the same row; seed_summary summarises them."""
    from types import SimpleNamespace

    from amsnb.nuclei import mda_study
    from amsnb.nuclei.training import make_datasets
    from amsnb.tables import seed_summary
    from amsnb.workdir import Workdir

    data = {z: sim.simulate(len(a["q_inner"]), (z,), "data", seed=50 + z) for z, a in samples.items()}
    result = SimpleNamespace(sets=make_datasets(samples, data, 15, 300, seed=1, n_target=200), z=15)
    tc = {"epochs": 1, "batch_size": 64, "progress": False, "cpu_threads": 1}
    wd = Workdir(tmp_path)
    rows = mda_study.compare_alignments(wd, result, tc, {"preset": "small"}, methods=("none", "coral"), seeds=(2,))
    assert [(r["method"], r["seed"]) for r in rows] == [("none", 2), ("coral", 2)]
    for r in rows:  # the toy's held-out MC holds signal only (no background): its rejection is NaN, not an error
        assert np.isnan(r["mc_test_rejection"]) and r["iss_test_rejection"] > 1
        assert 0.0 < r["mc_threshold_iss_efficiency"] <= 1.0 and 0.4 < r["probe_auc"] <= 1.0 and 0 < r["val_auc"] < 1
    assert (tmp_path / "models" / "mda_P_cmp_coral_s2").is_dir()
    again = mda_study.compare_alignments(wd, result, tc, {"preset": "small"}, methods=("coral",), seeds=(2,))
    np.testing.assert_equal(again[0], rows[1])  # NaN == NaN here
    summary = seed_summary(rows, mda_study.COMPARISON_FIGURES)
    assert [s["method"] for s in summary] == ["none", "coral"] and summary[1]["n_seeds"] == 1
    assert summary[1]["probe_auc_mean"] == rows[1]["probe_auc"] and np.isnan(summary[1]["probe_auc_std"])
    with pytest.raises(ConfigError, match="'kl' is not a method"):
        mda_study.compare_alignments(wd, result, tc, methods=("kl",))
