"""MDA network: forward pass with missing layers and empty events, branch ablation, attention weights, the
normalisation saved with the weights, and one short domain-adversarial training through amsnb.train.fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amsnb import nuclei
from amsnb.errors import ConfigError
from amsnb.models import build, load_model, save_model
from amsnb.nuclei import sim
from amsnb.nuclei.model import fit_normalization  # registers "mda"
from amsnb.train import predict


@pytest.fixture(scope="module")
def ds():
    a = sim.simulate(300, (15, 16), "mc", seed=1)
    return nuclei.NucleiDataset(a, (a["z_primary"] == 15).astype(int))


def _batch(ds, n=64):
    return ds.batch(np.arange(n))["x"]


def test_forward_with_missing_layers_and_empty_events(ds):
    torch.manual_seed(0)
    model = fit_normalization(build("mda", "small"), ds).eval()
    t = dict(ds.t)
    x = {k: v[:32].clone() for k, v in t.items()}
    x["mask"][0] = False  # no hit at all
    x["mask"][1, :, 2:5] = False  # L3-L5 missing
    x["mask"][2, 1] = False  # no second track
    out = model(nuclei.model_inputs(x))
    assert out["logits"].shape == (32, 2) and torch.isfinite(out["logits"]).all()
    assert out["domain_logits"].shape == (32, 2)
    att = out["attention"]
    assert att.shape == (32, 4)
    torch.testing.assert_close(att.sum(1), torch.ones(32))


def test_branch_ablation_removes_the_branch(ds):
    torch.manual_seed(0)
    model = fit_normalization(build("mda", {"preset": "small", "branches": ("rig", "tof")}), ds).eval()
    assert set(model.feature_extractor.sub) == {"rig", "tof"}
    x = {k: v[:16].clone() for k, v in ds.t.items()}
    out1 = model(nuclei.model_inputs(x))
    x["hits"] = x["hits"] + 5.0  # tracker hits changed: an ablated GNN must not see them
    x["clusters"] = x["clusters"] * 0
    out2 = model(nuclei.model_inputs(x))
    torch.testing.assert_close(out1["logits"], out2["logits"])
    assert (out1["attention"][:, :2] == 0).all()
    with pytest.raises(ConfigError, match="branches"):
        build("mda", {"branches": ("rich",)})


def test_save_load_keeps_weights_and_normalisation(ds, tmp_path):
    torch.manual_seed(1)
    model = fit_normalization(build("mda", "small"), ds).eval()
    assert not torch.allclose(model.feature_extractor.tof_mean, torch.zeros(7))
    save_model(tmp_path / "m", model, "mda")
    again = load_model(tmp_path / "m").eval()
    b = _batch(ds, 32)
    torch.testing.assert_close(model(b)["logits"], again(b)["logits"])
    torch.testing.assert_close(again.feature_extractor.tof_std, model.feature_extractor.tof_std)


def test_short_dann_training_learns(tmp_path):
    """Two epochs on 1.2k events (P vs S fragments) with a data-like target: the label loss must fall and the AUC on
    the training events exceed 0.6 (the inner charge tails and TOF charges separate them; chance is 0.5)."""
    from sklearn.metrics import roc_auc_score

    from amsnb.train.trainer import TrainConfig, fit

    mc = {z: sim.simulate(z_n, (z,), "mc", seed=z) for z, z_n in ((15, 4000), (16, 40000))}
    ts = nuclei.training_set(mc, 15, 1200, seed=0, composition={15: 0.5, 16: 0.5})
    tr = nuclei.NucleiDataset(ts, nuclei.labels(ts, 15))
    data = sim.simulate(3000, (15, 16), "data", seed=3)
    tg = nuclei.NucleiDataset(data, None, domain=1)
    torch.manual_seed(0)
    model = fit_normalization(build("mda", "small"), tr)
    cfg = TrainConfig(epochs=2, batch_size=64, use_da=True, early_stopping_metric="val_loss", progress=False,
                      lr=3e-3)
    res = fit(model, tr, tr, tg, cfg, tmp_path / "t", collate_fn=nuclei.collate)
    h = res.history
    assert h[-1]["label_loss"] < h[0]["label_loss"] + 0.02
    assert np.isfinite(h[-1]["domain_acc"])
    p = predict(res.model, tr, 2048, collate_fn=nuclei.collate)
    assert roc_auc_score(tr.labels, p["score"]) > 0.6
    assert p["attention"].shape == (len(tr), 4) and np.isfinite(p["domain_score"]).all()
    np.testing.assert_allclose(p["attention"].sum(1), 1.0, rtol=1e-5)


def test_mda_input_sizes_come_from_its_config_and_agree_with_the_graph():
    """The model takes its input sizes from MDAConfig (no import of the data preparation's tuples); the defaults
    must match what amsnb.nuclei.graph produces."""
    from amsnb.nuclei import graph
    from amsnb.nuclei.model import MDAConfig

    cfg = MDAConfig()
    assert cfg.n_node_features == len(graph.NODE_FEATURES)
    assert cfg.n_rig_features == len(graph.RIG_FEATURES)
    assert cfg.n_tof_features == len(graph.TOF_FEATURES)
    assert cfg.n_cluster_layers == graph.N_LAYERS_USED
    assert cfg.branches == graph.BRANCHES
    m = build("mda", {"n_tof_features": 5, "n_rig_features": 2, "branches": ("rig", "tof")})
    assert m.feature_extractor.sub["tof"][0].in_features == 5 and m.feature_extractor.tof_mean.shape == (5,)
    assert m.feature_extractor.sub["rig"][0].in_features == 2


def test_domain_weights_scale_the_domain_gradient(ds):
    """Per-event domain weights ("dw") leave the forward pass unchanged and multiply each event's domain-loss
    gradient: with weights (2, 0) the gradient is twice the unweighted first event's and zero from the second."""
    torch.manual_seed(0)
    model = fit_normalization(build("mda", {"preset": "small", "domain_input": "tokens"}), ds).eval()
    x = {k: v[:2].clone() for k, v in ds.t.items()}

    def grads(w):
        model.zero_grad()
        inp = nuclei.model_inputs({**x, **({"dw": torch.tensor(w)} if w is not None else {})})
        out = model(inp, lambda_=1.0)
        out["domain_logits"][:, 0].sum().backward()
        return out["domain_logits"].detach(), model.domain_head[0].weight.grad.clone()

    d0, g0 = grads(None)
    d1, g1 = grads([1.0, 0.0])
    d2, g2 = grads([2.0, 0.0])
    torch.testing.assert_close(d0, d1)
    torch.testing.assert_close(g2, 2 * g1)
    assert not torch.allclose(g0, g1)  # the second event no longer contributes
    with pytest.raises(ConfigError, match="domain_input"):
        build("mda", {"domain_input": "all"})


def test_domain_weights_scale_cdans_conditional_gradient_too(ds):
    """With a conditional (CDAN) head, the per-event domain weights scale its gradient as they scale DANN's."""
    from amsnb.models.layers import add_conditional_head

    torch.manual_seed(0)
    model = fit_normalization(build("mda", {"preset": "small"}), ds).eval()
    add_conditional_head(model)
    x = {k: v[:2].clone() for k, v in ds.t.items()}

    def grad(w):
        model.zero_grad()
        out = model(nuclei.model_inputs({**x, "dw": torch.tensor(w)}), lambda_=1.0)
        out["conditional_domain_logits"][:, 0].sum().backward()
        return model.conditional_head[0].weight.grad.clone()

    g1, g2 = grad([1.0, 0.0]), grad([2.0, 0.0])
    torch.testing.assert_close(g2, 2 * g1)
    assert torch.count_nonzero(g1) and not torch.allclose(grad([1.0, 1.0]), g1)
