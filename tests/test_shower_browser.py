"""The shower browser: its pure functions, its wiring, and its per-event latency (requirement: < 100 ms)."""

from __future__ import annotations

import re
import time

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from amsnb.ecal import shower_browser as sb  # noqa: E402
from amsnb.ecal import sim as ecal  # noqa: E402
from amsnb.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def sample():
    e = ecal.simulate(30, "electron", "mc", seed=1, energy_range=(200.0, 2000.0))
    p = ecal.simulate(30, "proton", "iss", seed=1, energy_range=(1000.0, 2000.0))
    return {k: np.concatenate([e[k], p[k]]) for k in e}


def test_select_events(sample):
    assert len(sb.select_events(sample)) == 60
    np.testing.assert_array_equal(sb.select_events(sample, "electron"), np.arange(30))
    np.testing.assert_array_equal(sb.select_events(sample, "proton", "iss"), np.arange(30, 60))
    assert len(sb.select_events(sample, "proton", "mc")) == 0
    sel = sb.select_events(sample, "all", "all", (1000.0, 2000.0))
    assert ((sample["energy"][sel] >= 1000) & (sample["energy"][sel] <= 2000)).all()
    with pytest.raises(ConfigError, match="particle"):
        sb.select_events(sample, "muon")


def test_event_view_contents(sample):
    v = sb.event_view(sample, 3)
    assert v["x_view"].shape == (8, 72) and v["y_view"].shape == (10, 72)
    assert v["x_view"].sum() + v["y_view"].sum() == pytest.approx(sample["ecal_edep"][3].sum(), rel=1e-5)
    assert v["longitudinal"].sum() == pytest.approx(1.0, rel=1e-5)
    centres, lat = v["lateral"]
    assert len(centres) == len(lat) and 0.9 < lat.sum() <= 1.0 + 1e-6  # most energy within 15 cm of the axis
    assert dict(v["table"])["energy"] == pytest.approx(float(sample["energy"][3]))
    assert v["title"].startswith("electron, mc")
    assert sb.event_label(2, 200, 1234.54) == "event 3 / 200, E = 1234.5 GeV"


def test_browser_wiring(sample):
    b = sb.ShowerBrowser(sample, use_widget_canvas=False)
    assert b.image.value[:8] == b"\x89PNG\r\n\x1a\n"  # the figure as an image (Voila, papermill)
    assert re.fullmatch(r"event 1 / 60, E = \d+\.\d GeV", b.w_label.value)
    b.w_next.click()
    assert b.w_label.value.startswith("event 2 / 60")
    b.w_keys.value = "p"  # keyboard: typing in the keys box steps and clears it
    assert b.w_label.value.startswith("event 1 / 60") and b.w_keys.value == ""
    b.w_keys.value = "p"  # wraps around
    assert b.w_label.value.startswith("event 60 / 60")
    b.w_class.value = "proton"
    assert b.w_label.value.startswith("event 1 / 30")
    assert "amsnb-event-label" in b.w_label._dom_classes and "amsnb-reco-table" in b.w_table._dom_classes
    assert "<table" in b.w_table.value
    b.w_domain.value = "mc"  # no MC protons in this sample
    assert b.w_label.value.startswith("no event")
    assert b.filter("electron", "mc") == 30


def test_update_latency_under_100ms(sample):
    """Median per-event update (views, profiles, table, Agg blit of the changed artists, PNG for the Image widget)
    < 100 ms, the requirement; ~20 ms on the 2-core machine (benchmarks/bench_sim.py reports the figure)."""
    b = sb.ShowerBrowser(sample, use_widget_canvas=False, blit=True)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        b.step(1)
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 0.1, times
