"""Learning curves: the power-law extrapolation recovers a known growth, refuses to extrapolate from too little,
and the sizes are capped at what the training set holds (the integration runs in notebook 08's smoke test)."""

from __future__ import annotations

import math

import pytest

from amsnb.ecal.learning import CurvePoint, _sizes, extrapolate, table


def _pt(n, r, limit=False, model="cnn_small", s="mc_test"):
    return CurvePoint(model, n, s, r, r * 0.8, r * 1.25, limit, 0 if limit else 10, 10000, 1000, 0.9)


def test_extrapolation_recovers_a_power_law_and_says_what_it_is():
    pts = [_pt(n, 3.0 * n ** 0.5) for n in (1000, 3000, 10000, 30000)]
    ex = extrapolate(pts, "cnn_small", "mc_test", to_n=3.8e6)
    assert ex["slope"] == pytest.approx(0.5, abs=1e-6)
    assert ex["rejection"] == pytest.approx(3.0 * math.sqrt(3.8e6), rel=1e-6)
    assert ex["from_n"] == [3000, 10000, 30000] and "not a measurement" in ex["note"]


def test_no_extrapolation_from_lower_limits_or_two_points():
    assert extrapolate([_pt(1000, 10), _pt(3000, 20)], "cnn_small", "mc_test") is None
    assert extrapolate([_pt(1000, 10), _pt(3000, 20), _pt(10000, 500, limit=True)], "cnn_small", "mc_test") is None
    assert extrapolate([_pt(n, n) for n in (1, 2, 3)], "other", "mc_test") is None


def test_sizes_are_capped_once_and_sorted():
    assert _sizes([30000, 1000, 3000, 100000], 20000) == [1000, 3000, 20000]


def test_table_marks_lower_limits():
    text = table([_pt(1000, 500, limit=True), _pt(1000, 20)])
    assert "> 500" in text and "20 [16, 25]" in text
