"""Model selection without target labels (amsnb.train.selection): on a synthetic covariate shift the importance-
weighted scorers (IWV, DEV) rank the model that is better on the target first, where the plain source-validation
loss ranks the other one first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amsnb.train.selection import (
    EpochPredictions,
    chosen,
    density_ratio,
    dev_risk,
    iwv_risk,
    selection_summary,
    selection_table,
)


def _sample(n, rng, x0_mean, x0_std):
    """Covariate shift: p(y | x) is the same everywhere (y = 1 above the parabola x1 = x0^2 / 2); the domains differ
    in where x0 lies (source around 0, target around 2)."""
    x = np.column_stack([rng.normal(x0_mean, x0_std, n), rng.normal(x0_mean, 1.0, n)])
    y = (x[:, 1] > 0.5 * x[:, 0] ** 2).astype(np.int64)
    return x, y


def _pred(x, y, line):
    """A candidate: the tangent of the parabola at x0 = ``line`` as the decision boundary (soft)."""
    a = line
    z = 3.0 * (x[:, 1] - (a * x[:, 0] - 0.5 * a * a))
    p = 1 / (1 + np.exp(-z))
    ce = -np.log(np.clip(np.where(y == 1, p, 1 - p), 1e-12, None))
    return {"score": p, "label": y, "weight": np.ones(len(y)), "loss_terms": ce, "features": x}


def _candidates(seed):
    rng = np.random.default_rng(seed)
    xs, ys = _sample(3000, rng, 0.0, 1.0)
    xt, yt = _sample(3000, rng, 2.0, 0.6)
    cands = {"source-tangent": (_pred(xs, ys, 0.0), _pred(xt, np.full(len(xt), -1), 0.0)),
             "target-tangent": (_pred(xs, ys, 2.0), _pred(xt, np.full(len(xt), -1), 2.0))}
    target_risk = {k: float(_pred(xt, yt, a)["loss_terms"].mean()) for k, a in
                   (("source-tangent", 0.0), ("target-tangent", 2.0))}
    return cands, target_risk


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unlabeled_scorers_rank_the_model_better_on_the_target_first(seed):
    cands, target_risk = _candidates(seed)
    assert target_risk["target-tangent"] < 0.5 * target_risk["source-tangent"]  # the truth
    rows = selection_table(cands, seed=seed)
    assert chosen(rows, "source") == "source-tangent"  # what a choice on the source (MC) validation gives
    assert chosen(rows, "iwv") == "target-tangent" and chosen(rows, "dev") == "target-tangent"
    by = {r["candidate"]: r for r in rows}
    assert by["target-tangent"]["dev_rank"] == 1 and by["source-tangent"]["iwv_rank"] == 2
    summary = selection_summary(rows, labeled={"source-tangent": 0.1, "target-tangent": 0.9},
                                test={"source-tangent": 3.0, "target-tangent": 10.0})
    assert [r["scorer"] for r in summary] == ["labeled", "source", "iwv", "dev"]
    assert summary[3]["test_minus_labeled"] == 0 and summary[1]["test_minus_labeled"] == -7.0


def test_density_ratio_is_the_gaussian_ratio():
    """N(0,1) source, N(1,1) target: w(x) = exp(x - 1/2); the cross-fitted logistic estimate follows it."""
    rng = np.random.default_rng(0)
    s, t = rng.normal(0, 1, (4000, 1)), rng.normal(1, 1, (4000, 1))
    w = density_ratio(s, t)
    assert w.mean() == pytest.approx(1.0, abs=0.05)
    true = np.exp(s[:, 0] - 0.5)
    inner = np.abs(s[:, 0]) < 1.5
    assert np.median(np.abs(np.log(w[inner] / true[inner]))) < 0.1


def test_dev_is_iwv_with_a_control_variate():
    rng = np.random.default_rng(1)
    loss, w = rng.exponential(1.0, 500), rng.exponential(1.0, 500)
    assert iwv_risk(loss, np.ones(500)) == pytest.approx(loss.mean())
    assert dev_risk(loss, np.ones(500)) == pytest.approx(loss.mean())  # constant weights: no correction
    eta = -np.cov(w * loss, w)[0, 1] / np.var(w, ddof=1)
    assert dev_risk(loss, w) == pytest.approx(iwv_risk(loss, w) + eta * (w.mean() - 1))
    # the control variate lowers the spread of the estimate over resamples
    iw, dv = [], []
    for k in range(200):
        r = np.random.default_rng(100 + k)
        ww = r.exponential(1.0, 200)
        ll = ww * 0.5 + r.exponential(1.0, 200)  # loss correlated with the weight
        iw.append(iwv_risk(ll, ww))
        dv.append(dev_risk(ll, ww))
    assert np.std(dv) < 0.8 * np.std(iw)


def test_epoch_predictions_collects_each_epoch(tmp_path):
    from torch import nn

    from amsnb.models.layers import DomainAdversarialModel, mlp_head
    from amsnb.train import ArrayDataset, TrainConfig, fit

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 4)).astype(np.float32), rng.integers(0, 2, 120)
    x[:, 0] += 2 * y
    torch.manual_seed(0)
    model = DomainAdversarialModel(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 2), mlp_head(8))
    val, target = ArrayDataset(x[:60], y[:60]), ArrayDataset(x[60:] + 0.5)
    ep = EpochPredictions(model, val, target, max_target=40, extra={"test": ArrayDataset(x[:30], y[:30])})
    fit(model, ArrayDataset(x, y), val, None, TrainConfig(epochs=3, batch_size=32, progress=False, patience=9),
        tmp_path, callbacks=[ep])
    assert sorted(ep.candidates) == [1, 2, 3]
    sv, tg = ep.candidates[2]
    assert sv["features"].shape == (60, 8) and tg["features"].shape == (40, 8)
    assert ep.extra[3]["test"]["score"].shape == (30,) and "features" not in ep.extra[3]["test"]
    rows = selection_table(ep.candidates)
    assert [r["candidate"] for r in rows] == [1, 2, 3] and {r["dev_rank"] for r in rows} <= {1, 2, 3}
