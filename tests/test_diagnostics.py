"""The one feature probe (amsnb.train.diagnostics.domain_probe) and the one training-history plot."""

from __future__ import annotations

import numpy as np
import pytest

from amsnb.errors import EmptySelectionError
from amsnb.train.diagnostics import domain_probe


def test_domain_probe_chance_and_separable():
    rng = np.random.default_rng(0)
    same = domain_probe(rng.normal(size=(600, 4)), rng.normal(size=(500, 4)), seed=1)
    assert same["probe_n_test"] == 1000 and same["probe_folds"] == 3  # balanced: 500 per domain, all held out
    assert abs(same["probe_auc"] - 0.5) < 0.07 and abs(same["probe_acc"] - 0.5) < 0.07
    shifted = domain_probe(rng.normal(size=(500, 4)), rng.normal(size=(500, 4)) + [1.5, 0, 0, 0], seed=1, folds=5)
    assert shifted["probe_auc"] > 0.8 and shifted["probe_acc"] > 0.7
    with pytest.raises(EmptySelectionError, match="events per domain"):
        domain_probe(np.zeros((5, 2)), np.ones((5, 2)))


def test_domain_probe_is_deterministic_for_a_seed():
    rng = np.random.default_rng(3)
    s, t = rng.normal(size=(300, 3)), rng.normal(size=(300, 3)) + 0.3
    assert domain_probe(s, t, seed=4) == domain_probe(s, t, seed=4)


def test_plot_history_draws_any_study_history():
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.plotting.training import plot_history

    ecal = [{"epoch": e, "loss": 1 / e, "label_loss": 0.8 / e, "val_loss": 0.9 / e, "acc": 0.8, "val_acc": 0.78,
             "auc": 0.9, "rejection": 10.0 * e} for e in range(1, 4)]
    nuclei = [{"epoch": e, "loss": 1 / e, "label_loss": 0.8 / e, "domain_loss": 0.69, "acc": 0.8, "auc": 0.85,
               "domain_acc": 0.5} for e in range(1, 4)]
    assert len(plot_history(ecal).axes) == 3
    assert len(plot_history(nuclei).axes) == 2  # no rejection recorded: that panel is left out
