"""amsnb.metrics: exact small cases, intervals against scipy, limits, weights, per-bin thresholds; the fast engine and
working-point files (amsnb.working_points) and the tables (amsnb.tables) of its numbers."""

import json
import math

import numpy as np
import pytest
from scipy.stats import beta

from amsnb import metrics, tables, working_points
from amsnb.errors import ConfigError, EmptySelectionError, InputFileError, SchemaError


def _sample(n=4000, seed=0, frac_e=0.3):
    """Toy scores: electrons Beta(5, 2), protons Beta(2, 5), energy log-uniform 100-2000 GeV; electron scores
    shift with energy so a global threshold gives different efficiencies per bin."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < frac_e).astype(np.int8)
    energy = 100 * 20 ** rng.random(n)
    shift = 0.15 * np.log10(energy / 100)
    score = np.where(label == 1, rng.beta(5, 2, n) + shift, rng.beta(2, 5, n))
    return score, label, energy


def test_clopper_pearson_matches_scipy_beta():
    lo, hi = metrics.clopper_pearson(3, 10, cl=0.68)
    assert lo == pytest.approx(beta.ppf(0.16, 3, 8), rel=1e-12)
    assert hi == pytest.approx(beta.ppf(0.84, 4, 7), rel=1e-12)
    assert metrics.clopper_pearson(0, 10, 0.9)[0] == 0.0
    assert metrics.clopper_pearson(10, 10, 0.9)[1] == 1.0
    assert metrics.upper_limit(0, 50, 0.9) == pytest.approx(1 - 0.1 ** (1 / 50), rel=1e-10)


def test_exact_small_case_by_hand():
    # 4 electrons, 10 protons; 50 % efficiency keeps the two highest electrons (0.9, 0.8) -> threshold 0.8;
    # protons >= 0.8: 0.85 and 0.95 -> 2 of 10 pass, rejection 5; the unknown event (-1) is ignored.
    score = [0.9, 0.8, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 0.95, 0.99]
    label = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1]
    p = metrics.rejection_at_efficiency(score, label, efficiency=0.5, cl=0.68)
    assert p.threshold == pytest.approx(0.8)
    assert (p.n_sig, p.n_sig_pass, p.n_bkg, p.n_bkg_pass) == (4, 2, 10, 2)
    assert p.efficiency == 0.5 and p.rejection == 5.0 and not p.is_lower_limit
    assert p.rejection_lo == pytest.approx(1 / beta.ppf(0.84, 3, 8), rel=1e-12)
    assert p.rejection_hi == pytest.approx(1 / beta.ppf(0.16, 2, 9), rel=1e-12)
    assert p.n_sig_lost == 2


def test_no_passing_proton_is_a_finite_lower_limit():
    score = np.r_[np.linspace(0.6, 1.0, 20), np.linspace(0.0, 0.5, 200)]
    label = np.r_[np.ones(20), np.zeros(200)].astype(int)
    p = metrics.rejection_at_efficiency(score, label, efficiency=0.9, cl=0.9)
    assert p.is_lower_limit and p.n_bkg_pass == 0
    assert math.isfinite(p.rejection)
    assert p.rejection == pytest.approx(1 / (1 - 0.1 ** (1 / 200)), rel=1e-10)  # one-sided CP at 90 % CL
    assert p.rejection_hi == math.inf and p.rejection_lo == p.rejection
    assert "lower limit" in p.rejection_text()


def test_unit_weights_equal_unweighted_and_scale_invariance():
    score, label, _ = _sample()
    a = metrics.rejection_at_efficiency(score, label, efficiency=0.9)
    b = metrics.rejection_at_efficiency(score, label, np.ones(len(score)), efficiency=0.9)
    assert a == b
    c = metrics.rejection_at_efficiency(score, label, np.full(len(score), 3.7), efficiency=0.9)
    for f in ("threshold", "efficiency", "rejection", "rejection_lo", "rejection_hi"):
        assert getattr(c, f) == pytest.approx(getattr(a, f), rel=1e-9)


def test_weighted_effective_count_interval():
    # protons: 4 of weight 2 pass, 6 of weight 1 fail -> p_w = 8/14; n_eff = 14^2/(16+6)
    score = np.r_[[0.9], [0.9] * 4, [0.1] * 6]
    label = np.r_[[1], [0] * 10]
    w = np.r_[[1.0], [2.0] * 4, [1.0] * 6]
    p = metrics.rejection_at_threshold(score, label, w, threshold=0.5)
    n_eff = 14**2 / 22
    k_eff = n_eff * 8 / 14
    assert p.rejection == pytest.approx(14 / 8)
    assert p.rejection_lo == pytest.approx(1 / beta.ppf(0.84, k_eff + 1, n_eff - k_eff))
    assert p.rejection_hi == pytest.approx(1 / beta.ppf(0.16, k_eff, n_eff - k_eff + 1))
    assert (p.n_bkg, p.n_bkg_pass) == (10, 4)


def test_per_bin_thresholds_reach_target_on_independent_sample():
    """Thresholds tuned per bin on one sample give 90 % on an independent one within 3 binomial sigma
    (sigma = sqrt(0.9 * 0.1 / n_e) per bin, n_e ~ 1300-2000); the global threshold misses it at both ends because
    the electron score moves with energy (0.15 per decade), i.e. the test can fail."""
    edges = np.geomspace(100, 2000, 4)
    s1, l1, e1 = _sample(30000, seed=1)
    s2, l2, e2 = _sample(30000, seed=2)
    per_bin = metrics.rejection_vs_energy(s1, l1, e1, edges=edges, efficiency=0.9, mode="per_bin")
    glob = metrics.rejection_vs_energy(s1, l1, e1, edges=edges, efficiency=0.9, mode="global")
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        m = (e2 >= lo) & (e2 < hi) & (l2 == 1)
        sigma = math.sqrt(0.9 * 0.1 / m.sum())
        eff = np.mean(s2[m] >= per_bin.points[i].threshold)
        assert abs(eff - 0.9) < 3 * sigma
    g = glob.column("efficiency")
    assert g[0] < 0.9 - 3 * sigma and g[-1] > 0.9 + 3 * sigma
    assert len({p.threshold for p in glob.points}) == 1


def test_engine_equals_brute_force_recount():
    score, label, energy = _sample(5000, seed=3)
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(score))
    edges = np.geomspace(100, 2000.001, 9)
    eng = working_points.WorkingPointEngine(score, label, w, energy, edges=edges)
    rng = np.random.default_rng(5)
    for _ in range(25):
        i0 = int(rng.integers(0, 7))
        i1 = int(rng.integers(i0 + 1, 9))
        er = (edges[i0], edges[i1])
        m = (energy >= edges[i0]) & (energy < edges[i1])
        t = float(rng.uniform(0.1, 1.0))
        got = eng.at_threshold(t, er)
        want = metrics.rejection_at_threshold(score[m], label[m], w[m], t)
        assert (got.n_sig, got.n_sig_pass, got.n_bkg, got.n_bkg_pass) == (want.n_sig, want.n_sig_pass, want.n_bkg,
                                                                          want.n_bkg_pass)
        assert got.n_bkg_pass == int(((score >= t) & m & (label == 0)).sum())
        for f in ("efficiency", "rejection", "rejection_lo", "rejection_hi"):
            assert getattr(got, f) == pytest.approx(getattr(want, f), rel=1e-9)
        e = float(rng.uniform(0.5, 0.99))
        a = eng.at_efficiency(e, er)
        b = metrics.rejection_at_efficiency(score[m], label[m], w[m], efficiency=e)
        assert a.threshold == b.threshold and a.n_bkg_pass == b.n_bkg_pass and a.efficiency >= e * (1 - 1e-12)
    lo, hi = eng.snap((150.0, 900.0))  # outward to the bin edges
    assert lo in edges and hi in edges and lo <= 150.0 < 900.0 <= hi and np.sum((edges > lo) & (edges < hi)) == 4


def test_curve_and_table_consistent_with_points():
    score, label, _ = _sample(3000, seed=6)
    curve = metrics.rejection_curve(score, label, efficiencies=[0.8, 0.9])
    p = metrics.rejection_at_efficiency(score, label, efficiency=0.9)
    assert curve.rejection[1] == pytest.approx(p.rejection)
    assert np.all(np.diff(curve.rejection) <= 0)  # rejection falls with efficiency
    rows = metrics.comparison_table({"a": {"score": score, "label": label, "weight": np.ones(len(score))}})
    assert rows[0]["rej90"] == pytest.approx(p.rejection) and rows[0]["mis90"] == p.n_bkg_pass
    from sklearn.metrics import roc_auc_score

    assert rows[0]["auc"] == pytest.approx(roc_auc_score(label, score))
    text = tables.format_table(rows)
    assert "R@90%" in text and str(p.n_bkg_pass) in text


def test_engine_counts_passes_with_the_one_rule():
    """The engine's sorted count is metrics.passes (score >= threshold): a score equal to the threshold passes."""
    score = np.array([0.1, 0.5, 0.5, 0.5, 0.9, 0.2, 0.5, 0.7, 0.5])
    label = np.array([1, 1, 1, 0, 1, 0, 0, 0, -1])
    eng = working_points.WorkingPointEngine(score, label)
    for t in (0.05, 0.1, 0.5, np.nextafter(0.5, 1), 0.7, 0.95):
        p = eng.at_threshold(t)
        assert p.n_sig_pass == metrics.passes(score[label == 1], t).sum()
        assert p.n_bkg_pass == metrics.passes(score[label == 0], t).sum()
        assert p == metrics.rejection_at_threshold(score, label, threshold=t)


def test_tables_render_limits_and_intervals():
    """Text and HTML show an interval, or '>' for a lower limit (no proton passes); the flat form keeps the flag."""
    row = {"model": "m", "auc": 0.987654321, "n_sig": 10, "n_bkg": 100}
    for k, (rej, limit) in {"80": (12.345678, False), "90": (250000.0, False), "95": (61.0, True)}.items():
        row.update({f"rej{k}": rej, f"rej{k}_lo": rej / 2, f"rej{k}_hi": math.inf if limit else 2 * rej,
                    f"rej{k}_is_limit": limit, f"mis{k}": 0 if limit else 3, f"eff{k}": int(k) / 100})
    text = tables.format_table([row])
    assert "12.35 [6.173, 24.69]" in text and "2.500e+05 [1.250e+05, 5.000e+05]" in text and ">61" in text
    assert text.splitlines()[1].startswith("-----") and "0.98765" in text
    html = tables.table_html([row])
    assert "<th>R@95% [interval]</th>" in html and "<td>&gt; 61</td>" in html and html.endswith("</table>")
    assert tables.key_figures([row], "s")["m_s_rej95_is_limit"] is True
    assert tables.format_number(math.inf) == "inf"


def test_bad_input_raises_clear_errors():
    with pytest.raises(SchemaError, match="NaN"):
        metrics.rejection_at_efficiency([0.1, np.nan], [1, 0])
    with pytest.raises(ConfigError, match="efficiency"):
        metrics.rejection_at_efficiency([0.1, 0.2], [1, 0], efficiency=1.5)
    with pytest.raises(EmptySelectionError, match="protons"):
        metrics.rejection_at_efficiency([0.1, 0.2], [1, 1])
    with pytest.raises(SchemaError, match="weight"):
        metrics.rejection_at_efficiency([0.1, 0.2], [1, 0], weight=[1.0])


def test_working_point_roundtrip(tmp_path):
    score, label, _ = _sample(2000, seed=7)
    p = metrics.rejection_at_efficiency(score, label)
    path = working_points.save_working_point(tmp_path / "wp.json", p, model="bdt", eval_set="iss_test",
                                      energy_range=(1000, 2000))
    wp = working_points.load_working_point(path)
    assert wp.threshold == p.threshold and wp.model == "bdt" and wp.energy_range == (1000.0, 2000.0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "x"}))
    with pytest.raises(ConfigError, match="threshold"):
        working_points.load_working_point(bad)
    with pytest.raises(InputFileError):
        working_points.load_working_point(tmp_path / "missing.json")


def test_plots_draw_intervals_and_limits():
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.plotting import performance

    score, label, energy = _sample(1500, seed=8)
    curves = {"a": metrics.rejection_curve(score, label), "b": metrics.rejection_curve(score**3, label)}
    fig = performance.rejection_vs_efficiency(curves, reference="a")
    assert fig.axes[0].get_yscale() == "log"
    ec = {"a": metrics.rejection_vs_energy(score, label, energy, efficiency=0.5)}
    fig2 = performance.rejection_vs_energy(ec)
    assert len(fig2.axes[0].collections) > 0


def test_model_helpers_share_binning_and_flatten_table():
    s, lab, e = _sample(3000, seed=9)
    models = {"a": {"score": s, "label": lab, "energy": e, "weight": np.ones(len(s))},
              "b": {"score": s**2, "label": lab, "energy": e, "weight": np.ones(len(s))}}
    per_bin = metrics.rejection_vs_energy_models(models, 0.9, "per_bin", n_bins=3)
    assert np.array_equal(per_bin["a"].edges, per_bin["b"].edges) and len(per_bin["a"].edges) == 4
    # a monotonic transform of the score changes nothing: same passing protons in every bin
    assert [p.n_bkg_pass for p in per_bin["a"].points] == [p.n_bkg_pass for p in per_bin["b"].points]
    rows = tables.energy_table(per_bin)
    assert len(rows) == 6 and all(abs(r["efficiency"] - 0.9) < 0.01 for r in rows)
    flat = tables.key_figures(metrics.comparison_table(models), "iss_test")
    assert flat["a_iss_test_mis90"] == metrics.rejection_at_efficiency(s, lab).n_bkg_pass


def test_auc_with_error_hanley_mcneil():
    """The one AUC (metrics.roc_auc) and its Hanley-McNeil error: 0 for a perfect score, ~0.009 for 2k + 2k at
    chance; unknown labels are excluded; unit weights change nothing."""
    from sklearn.metrics import roc_auc_score

    perfect = np.r_[np.zeros(50), np.ones(70)]
    assert metrics.auc_with_error(perfect, perfect.astype(int)) == (1.0, 0.0)
    rng = np.random.default_rng(0)
    lab, s = rng.integers(0, 2, 4000), rng.random(4000)
    auc, err = metrics.auc_with_error(s, lab)
    assert auc == pytest.approx(roc_auc_score(lab, s)) == metrics.roc_auc(s, lab)
    assert abs(auc - 0.5) < 4 * err and 0.005 < err < 0.015
    assert metrics.auc_with_error(s, lab, np.ones(4000)) == pytest.approx((auc, err))
    assert metrics.roc_auc(np.r_[s, 0.3], np.r_[lab, -1]) == auc
    with pytest.raises(EmptySelectionError, match="both classes"):
        metrics.roc_auc(s, np.ones(4000, int))


def test_efficiency_is_clopper_pearson_on_effective_counts():
    e = metrics.efficiency(np.r_[np.ones(3, bool), np.zeros(7, bool)])
    assert e.value == 0.3 and (e.lo, e.hi) == pytest.approx(metrics.clopper_pearson(3, 10)) and e.n == 10
    assert e.err == pytest.approx(0.5 * (e.hi - e.lo)) and e.yerr == pytest.approx([0.3 - e.lo, e.hi - 0.3])
    zero = metrics.efficiency(np.zeros(20, bool))
    assert zero.value == 0.0 and zero.lo == 0.0 and zero.hi > 0.05 and zero.err > 0  # not Wald's zero error
    w = np.r_[np.full(5, 2.0), np.ones(5)]
    ew = metrics.efficiency(np.r_[np.ones(5, bool), np.zeros(5, bool)], w)
    k, n = metrics.effective_counts(w.sum(), (w**2).sum(), 10.0)
    assert ew.value == pytest.approx(10 / 15) and (ew.lo, ew.hi) == pytest.approx(metrics.clopper_pearson(k, n))
    with pytest.raises(EmptySelectionError):
        metrics.efficiency(np.zeros(0, bool))
    x = np.array([1.0, 1.5, 2.5, 2.6, 2.7, 9.0])
    b = metrics.binned_efficiency(x, x > 2.55, [1, 2, 3, 4])
    assert b.value[0] == 0.0 and b.value[1] == pytest.approx(2 / 3) and b.value[2] == 1.0  # 9.0 -> last bin
    assert b.n.tolist() == [2, 3, 1] and np.all(b.lo <= b.value) and np.all(b.value <= b.hi)
    empty = metrics.binned_efficiency(x, x > 2, [20, 30, 40])
    assert np.isfinite(empty.value).sum() == 1  # everything below the edges is clipped into the first bin


def test_balanced_class_weights():
    lab = np.r_[np.zeros(30, int), np.ones(10, int), [-1, -1]]
    w = metrics.balanced_class_weights(lab, 2)
    assert w == pytest.approx([40 / 60, 40 / 20])
    assert (w[lab[lab >= 0]]).sum() == pytest.approx(40)  # both classes carry half the total weight
    with pytest.raises(EmptySelectionError, match="every class"):
        metrics.balanced_class_weights(np.zeros(5, int), 2)


def test_threshold_transfer_measures_the_efficiency_really_reached():
    """A threshold fixed on a source set whose electron scores sit higher than on the target keeps fewer target
    electrons than asked: the table says how many (with its interval), and the rejection that goes with it."""
    rng = np.random.default_rng(3)

    def sample(shift, n_e=4000, n_p=40000):
        score = np.concatenate([rng.normal(2.0 + shift, 1.0, n_e), rng.normal(-2.0, 1.0, n_p)])
        return {"score": score, "label": np.r_[np.ones(n_e, np.int8), np.zeros(n_p, np.int8)],
                "weight": np.ones(n_e + n_p)}

    scores = {"m": {"src": sample(0.5), "tgt": sample(0.0)}, "only_src": {"src": sample(0.0)}}
    rows = metrics.threshold_transfer(scores, "src", "tgt", 0.9)
    assert [r["model"] for r in rows] == ["m"]
    r = rows[0]
    # threshold at the source's 10 % electron quantile, 2.5 - 1.2816; the target keeps P(Z > -0.7816) = 0.783
    # (binomial sd 0.0065 on 4000 electrons, plus the threshold's own spread ~0.03 x density 0.29: +-0.025)
    assert r["threshold"] == pytest.approx(2.5 - 1.2816, abs=0.05)
    assert r["efficiency"] == pytest.approx(0.783, abs=0.025)
    assert r["efficiency_lo"] < r["efficiency"] < r["efficiency_hi"]
    assert r["rejection_value"] > r["own_rejection_value"]  # a tighter cut rejects more, at lower efficiency
    assert "threshold from" in tables.format_transfer_table(rows)


def test_class_fraction_recovers_a_known_mix():
    """Adjusted classify-and-count: a 30 % signal sample is estimated at 0.30 within its binomial spread, where the
    raw passing fraction is biased by the false positives and the inefficiency."""
    rng = np.random.default_rng(4)

    def sample(n_sig, n_bkg):
        return (np.r_[rng.normal(1.0, 1.0, n_sig), rng.normal(-1.0, 1.0, n_bkg)],
                np.r_[np.ones(n_sig, int), np.zeros(n_bkg, int)])

    ref_score, ref_label = sample(20000, 20000)
    score, _ = sample(6000, 14000)
    est = metrics.class_fraction(score, ref_score, ref_label, efficiency=0.9)
    # sigma of pi ~ sqrt(f(1-f)/n)/(TPR-FPR) ~ 0.005 plus the reference's rates ~ 0.003: 4 sigma
    assert est["fraction"] == pytest.approx(0.30, abs=0.025)
    assert abs(est["passing_fraction"] - 0.30) > 0.05  # the uncorrected count is off
    assert est["tpr"] == pytest.approx(0.9, abs=0.01)
