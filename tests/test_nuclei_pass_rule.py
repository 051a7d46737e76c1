"""One pass rule in the nuclei wing: an event whose score equals the threshold passes (``amsnb.metrics.passes``:
``score >= threshold``), as in every ECAL efficiency and rejection. The nuclei code used to count ``score >
threshold``; each test also shows that the old rule would have failed the same event."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from amsnb import nuclei
from amsnb.nuclei import below_l1, sim

T = 0.5  # every score of the tests sits exactly here


@pytest.fixture(scope="module")
def pooled():
    samples = {z: sim.simulate(4000, (z,), "mc", seed=70 + z) for z in (14, 15, 16, 17)}
    return nuclei.pooled_set(samples, 15, l1_cut=False)


def _at_threshold_for_signal(arrays):
    """Signal exactly at the threshold, background well below it."""
    return np.where(arrays["z_primary"] == 15, T, 0.1).astype(np.float32)


def test_cut_efficiency_counts_a_score_at_the_threshold():
    score = np.array([T, T, 0.2, 0.1], np.float32)
    label = np.array([1, 1, 0, 0])
    eff = nuclei.cut_efficiency(score, label, threshold=T)
    assert eff.signal.value == 1.0 and eff.background.value == 0.0
    assert (score[label == 1] > T).mean() == 0.0  # the old rule lost both signal events


def test_selection_efficiency_vs_rigidity_counts_a_score_at_the_threshold(pooled):
    score = _at_threshold_for_signal(pooled)
    eff = nuclei.efficiency_vs_rigidity(pooled, score, 15, threshold=T)
    sig = eff["signal"].value[np.isfinite(eff["signal"].value)]
    assert sig.size and np.all(sig == 1.0)
    assert not (score[pooled["z_primary"] == 15] > T).any()  # old rule: every bin at 0


def test_ml_cut_and_its_events_count_a_score_at_the_threshold(pooled):
    events = below_l1.ScoredEvents(15, pooled, _at_threshold_for_signal(pooled))
    row = below_l1.ml_cut_table(events, [T]).as_rows()[0]
    assert row["sig_eff"] == 1.0 and row["bkg_eff"] == 0.0 and row["below_l1_after"] == 0.0
    kept = events.passing(T)
    assert len(kept.score) == int((pooled["z_primary"] == 15).sum()) > 0
    assert not (events.score > T).any()  # old rule: nothing passes, and the after-cut fraction is undefined


def test_no_nuclei_code_compares_a_score_with_a_strict_threshold():
    """Every cut on a score goes through ``passes``; a ``> threshold`` left in a module or notebook would bring the
    second rule back."""
    root = Path(__file__).resolve().parent.parent
    files = [*sorted((root / "amsnb" / "nuclei").glob("*.py")), root / "notebooks" / "06_nuclei_mda.py",
             root / "notebooks" / "07_below_l1_background.py"]
    strict = re.compile(r"(?<![-=])>(?!=)\s*(?:p\.)?threshold\b|\bthreshold\s*<(?!=)")
    found = [f"{f.name}:{i}: {line.strip()}" for f in files
             for i, line in enumerate(f.read_text().splitlines(), 1) if strict.search(line)]
    assert not found, "score cuts outside amsnb.metrics.passes:\n" + "\n".join(found)
