"""Alignment methods of the trainer (TrainConfig.alignment): DeepCORAL, multi-kernel MMD, CDAN(+E) beside DANN.

Each loss is ~0 for identical source and target batches and grows with a shift; each method beats source-only on
Ganin's two-moons rotated shift; resume and DDP stay exact; the method is part of the training request."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from amsnb.errors import ConfigError
from amsnb.models.layers import DomainAdversarialModel, add_conditional_head, mlp_head
from amsnb.train import (
    ArrayDataset,
    TrainConfig,
    conditional_adversarial_loss,
    coral_loss,
    domain_adversarial_loss,
    entropy_weights,
    fit,
    mmd_loss,
    predict,
    training_request,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_FEAT = 6


def _feats(n=300, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, N_FEAT)).astype(np.float32))


def _shifted(x, s):
    """A shift of both the mean and the covariance (CORAL sees only the latter)."""
    return x * (1 + s) + s


@pytest.mark.parametrize("loss", [coral_loss, mmd_loss], ids=["coral", "mmd"])
def test_feature_losses_vanish_for_identical_batches_and_grow_with_a_shift(loss):
    x = _feats()
    assert abs(loss(x, x.clone()).item()) < 1e-6
    w = torch.rand(len(x), generator=torch.Generator().manual_seed(1))
    assert abs(loss(x, x.clone(), w, w.clone()).item()) < 1e-6
    values = [loss(x, _shifted(_feats(seed=1), s)).item() for s in (0.0, 0.25, 0.5, 1.0)]
    assert values[0] < 0.2 * values[1]  # another sample of the same distribution: small
    assert all(b > a for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("loss", [coral_loss, mmd_loss], ids=["coral", "mmd"])
def test_feature_losses_zero_weight_removes_an_event(loss):
    xs, xt = _feats(40, 0), _shifted(_feats(30, 1), 0.5)
    ws, wt = torch.rand(40, generator=torch.Generator().manual_seed(2)), torch.rand(30) + 0.1
    ws[3] = 0.0
    keep = [i for i in range(40) if i != 3]
    assert loss(xs, xt, ws, wt).item() == pytest.approx(loss(xs[keep], xt, ws[keep], wt).item(), rel=1e-5)
    assert loss(xs, xt, ws, wt).item() != pytest.approx(loss(xs, xt).item(), rel=1e-3)


def _model(seed=0, hidden=16):
    torch.manual_seed(seed)
    fe = nn.Sequential(nn.Linear(N_FEAT, hidden), nn.ReLU(), nn.Linear(hidden, 8), nn.ReLU())
    m = DomainAdversarialModel(fe, nn.Linear(8, 2), mlp_head(8, 2, hidden=8))
    add_conditional_head(m)
    return m


def _adversary_gap(method, shift, steps=150):
    """log 2 minus the domain loss of an adversary trained to separate the source from ``shift``-ed inputs (the
    feature extractor fixed): the Jensen-Shannon part the alignment removes; 0 when nothing separates them."""
    m = _model(3)
    xs = _feats(200, 5)
    xt = xs.clone() if shift is None else _shifted(_feats(200, 6), shift)
    head = m.domain_head if method == "dann" else m.conditional_head
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    key = "domain_logits" if method == "dann" else "conditional_domain_logits"
    lossfn = domain_adversarial_loss if method == "dann" else conditional_adversarial_loss
    for _ in range(steps):
        o = m(torch.cat([xs, xt]), lambda_=1.0)
        loss = lossfn(o[key][:200], o[key][200:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return math.log(2) - loss.item()


@pytest.mark.parametrize("method", ["dann", "cdan"])
def test_adversarial_losses_vanish_for_identical_batches_and_grow_with_a_shift(method):
    assert abs(_adversary_gap(method, None)) < 1e-4
    gaps = [_adversary_gap(method, s) for s in (0.0, 0.5, 1.5)]
    assert gaps[0] < 0.07 and gaps[1] > gaps[0] + 0.07 and gaps[2] > gaps[1] + 0.2, gaps  # 0.045, 0.16, 0.44


def test_cdan_adversary_sees_features_times_softmax_behind_the_reversal():
    """The conditional adversary's input is the outer product of the features and the (detached) softmax; its
    gradient reaches the feature extractor reversed and scaled by lambda, and not the label head."""
    m = _model(1)
    x = _feats(10, 2)
    o = m(x, lambda_=0.0)
    p = torch.softmax(o["logits"], 1)
    h = (p[:, :, None] * o["features"][:, None, :]).flatten(1)
    torch.testing.assert_close(o["conditional_domain_logits"], m.conditional_head(h))
    lam = 0.6
    out = m(x, lambda_=lam)["conditional_domain_logits"]
    m.zero_grad()
    conditional_adversarial_loss(out[:6], out[6:]).backward()
    grl = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert not any(n.startswith("label_head") or n.startswith("domain_head") for n in grl)
    m.zero_grad()
    f = m.feature_extractor(x)
    plain = m.conditional_head((torch.softmax(m.label_head(f), 1).detach()[:, :, None] * f[:, None, :]).flatten(1))
    conditional_adversarial_loss(plain[:6], plain[6:]).backward()
    for n, p in m.named_parameters():
        if n.startswith("feature_extractor"):
            torch.testing.assert_close(grl[n], -lam * p.grad, rtol=1e-5, atol=1e-7)
        elif n.startswith("conditional_head"):
            torch.testing.assert_close(grl[n], p.grad, rtol=1e-5, atol=1e-7)


def test_cdan_entropy_weights_favour_confident_events_and_keep_each_sides_weight():
    logits = torch.tensor([[5.0, -5.0], [0.0, 0.0], [1.0, 0.0]])
    e = entropy_weights(logits)
    assert e[0] > e[2] > e[1] and torch.all((e >= 1) & (e <= 2))
    assert e[1].item() == pytest.approx(1.5)  # H = log 2
    d = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    plain = conditional_adversarial_loss(d[:3], d[3:])
    flat = torch.zeros(3, 2)  # equal entropies: the same weights as without conditioning
    assert conditional_adversarial_loss(d[:3], d[3:], logits_source=flat, logits_target=flat).item() == \
        pytest.approx(plain.item(), rel=1e-6)
    assert conditional_adversarial_loss(d[:3], d[3:], logits_source=logits, logits_target=flat).item() != \
        pytest.approx(plain.item(), rel=1e-3)


# ------------------------------------------------------------------------------------- in the trainer
def _data(n=192, seed=0, shift=0.0, labeled=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, N_FEAT)).astype(np.float32) * (1 + shift) + shift
    x[:, 0] += 1.5 * y
    return ArrayDataset(x, y if labeled else None)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _plain_model(seed):
    torch.manual_seed(seed)
    fe = nn.Sequential(nn.Linear(N_FEAT, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
    return DomainAdversarialModel(fe, nn.Linear(8, 2), mlp_head(8, 2, hidden=8))


def test_the_alignment_is_a_validated_part_of_the_training_request():
    with pytest.raises(ConfigError, match="alignment='kl'"):
        TrainConfig(alignment="kl")
    da = dict(use_da=True)
    reqs = {a: training_request(TrainConfig(**da, alignment=a)) for a in ("dann", "coral", "mmd", "cdan", "cdan+e")}
    assert len({str(sorted(r.items())) for r in reqs.values()}) == 5
    assert "alignment" not in reqs["dann"]  # DANN requests made before the field existed stay valid
    assert training_request(TrainConfig(alignment="mmd")) == training_request(TrainConfig())  # no DA: irrelevant


@pytest.mark.parametrize("alignment", ["coral", "mmd"])
def test_feature_alignment_is_scaled_by_lambda(tmp_path, alignment):
    """lambda 0 ('off'): the feature-matching term vanishes and the run is the plain (no-DA) one exactly; with
    lambda it is another run."""
    train, target = _data(seed=1), _data(seed=2, shift=0.7, labeled=False)
    base = dict(epochs=2, batch_size=32, seed=3, progress=False, patience=99, restore_best=False)
    runs = {}
    for name, kw in {"plain": {}, "off": dict(use_da=True, alignment=alignment, lambda_schedule="off"),
                     "on": dict(use_da=True, alignment=alignment, lambda_schedule="constant", domain_weight=5.0)
                     }.items():
        m = _plain_model(4)
        res = fit(m, train, None, target if kw else None, TrainConfig(**base, **kw), tmp_path / name)
        runs[name] = _weights(m)
        if name == "on":
            assert res.history[-1]["domain_loss"] > 0 and math.isnan(res.history[-1]["domain_acc"])
    for k, v in runs["plain"].items():
        torch.testing.assert_close(runs["off"][k], v, rtol=0, atol=1e-6)
    assert any(not torch.allclose(runs["on"][k], v) for k, v in runs["plain"].items())


@pytest.mark.parametrize("alignment", ["coral", "mmd", "cdan+e"])
def test_resume_is_exact_for_every_alignment(tmp_path, alignment):
    """3 epochs straight == 2 epochs, 'killed', resumed in a fresh model (CDAN: fit adds the conditional head to
    each, before loading the checkpoint)."""
    train, val, target = _data(160, 0), _data(64, 1), _data(128, 2, shift=0.7, labeled=False)
    base = dict(epochs=3, batch_size=32, use_da=True, alignment=alignment, seed=3, progress=False, patience=99)
    m1 = _plain_model(2)
    fit(m1, train, val, target, TrainConfig(**base), tmp_path / "straight")
    assert (m1.conditional_head is not None) == alignment.startswith("cdan")
    part = fit(_plain_model(2), train, val, target, TrainConfig(**base, stop_after_epoch=2), tmp_path / "killed")
    assert not part.finished
    m3 = _plain_model(99)
    r3 = fit(m3, train, val, target, TrainConfig(**base), tmp_path / "killed")
    assert r3.finished and len(r3.history) == 3
    for k, v in _weights(m1).items():
        torch.testing.assert_close(_weights(m3)[k], v, rtol=0, atol=1e-6)


_DDP_ALIGNMENTS = ("coral", "mmd", "cdan+e")


def _ddp_cfg(alignment):
    return dict(epochs=2, batch_size=32, use_da=True, alignment=alignment, lambda_schedule="constant",
                domain_weight=3.0, seed=7, progress=False, patience=99)


def _ddp_worker(rank, world, initfile, outdir):
    import torch.distributed as dist
    from safetensors.torch import save_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{initfile}", rank=rank, world_size=world)
    try:
        for alignment in _DDP_ALIGNMENTS:  # one spawn for all (the workers' start-up is most of the time)
            m = _plain_model(4)
            fit(m, _data(256, 0), None, _data(256, 2, shift=0.7, labeled=False), TrainConfig(**_ddp_cfg(alignment)),
                f"{outdir}/{alignment}")
            if rank == 0:
                save_model(m, f"{outdir}/{alignment}/final.safetensors")
    finally:
        dist.destroy_process_group()


def test_ddp_equals_single_process_for_every_alignment(tmp_path):
    """Two gloo ranks: the global covariance (CORAL), the all-gathered kernel sums (MMD) and the global
    entropy-weight totals (CDAN+E) make DDP's averaged gradient the single-process one (weights agree to float32
    summation-order noise)."""
    from safetensors.torch import load_model

    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tmp_path / "pg"), str(tmp_path / "ddp")), nprocs=2,
                                join=True)
    init = _weights(_plain_model(4))
    for alignment in _DDP_ALIGNMENTS:
        single = _plain_model(4)
        fit(single, _data(256, 0), None, _data(256, 2, shift=0.7, labeled=False), TrainConfig(**_ddp_cfg(alignment)),
            tmp_path / "single" / alignment)
        ddp = _plain_model(0)
        if alignment.startswith("cdan"):
            add_conditional_head(ddp)
        load_model(ddp, str(tmp_path / "ddp" / alignment / "final.safetensors"))
        assert sum(float((_weights(single)[k] - v).abs().max()) for k, v in init.items()) > 1e-3, alignment
        for k, v in _weights(single).items():
            torch.testing.assert_close(_weights(ddp)[k], v, rtol=0, atol=1e-5, msg=f"{alignment} {k}")


# ------------------------------------------------------------------------------------- two moons
def _moons(n, seed, angle_deg):
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.1, random_state=seed)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ((x - [0.5, 0.25]) @ rot.T).astype(np.float32), y


#: domain_weight per method on this toy (CORAL's ||C_s - C_t||^2 / 4d^2 is small for d = 32 features).
_MOONS_WEIGHT = {"dann": 1.0, "cdan": 1.0, "coral": 100.0, "mmd": 1.0}


def _moons_accuracy(alignment, tmp_path, seed=0, angle=20.0):
    torch.manual_seed(seed)
    fe = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
    model = DomainAdversarialModel(fe, nn.Linear(32, 2), mlp_head(32, 2, hidden=32))
    src = ArrayDataset(*_moons(600, seed, 0.0))
    tgt = ArrayDataset(_moons(600, 100 + seed, angle)[0])
    test = ArrayDataset(*_moons(1000, 200 + seed, angle))
    cfg = TrainConfig(epochs=40, batch_size=64, lr=3e-3, lr_schedule="constant", seed=seed, progress=False,
                      patience=999, restore_best=False, use_da=alignment is not None,
                      alignment=alignment or "dann", domain_weight=_MOONS_WEIGHT.get(alignment, 1.0))
    res = fit(model, src, None, tgt if alignment else None, cfg, tmp_path / str(alignment))
    p = predict(res.model, test)
    return float(((p["score"] >= 0.5) == (p["label"] == 1)).mean())


@pytest.fixture(scope="module")
def moons_source_only(tmp_path_factory):
    return _moons_accuracy(None, tmp_path_factory.mktemp("moons"))


@pytest.mark.parametrize("alignment", ["dann", "coral", "mmd", "cdan"])
def test_each_method_beats_source_only_on_rotated_two_moons(alignment, moons_source_only, tmp_path):
    """Ganin's toy: the target is the two moons rotated by 20 degrees, unlabeled. Source-only reaches 0.92-0.96
    on the target over seeds 0-4; each method gained at least 0.018 on each of these seeds (0.03-0.06 on seed 0,
    the one tested; at 30 degrees the outcome of every method depends on the seed)."""
    acc = _moons_accuracy(alignment, tmp_path)
    assert moons_source_only < 0.96
    assert acc > moons_source_only + 0.015, (alignment, acc, moons_source_only)


def test_a_cdan_model_saves_and_loads_through_the_registry_without_its_adversary(tmp_path):
    """The conditional head is training-only: save_model leaves it out (the registry does not build it), keeps it
    on the model, and the saved model loads strictly and gives the same scores."""
    import amsnb.models as M

    torch.manual_seed(0)
    model = M.build("cnn", "tiny").eval()
    add_conditional_head(model)
    M.save_model(tmp_path / "m", model)
    assert model.conditional_head is not None
    again = M.load_model(tmp_path / "m").eval()
    assert again.conditional_head is None
    x = torch.rand(3, 1, 18, 72) * 50
    with torch.no_grad():
        assert torch.equal(model(x)["logits"], again(x)["logits"])
        assert model(x)["conditional_domain_logits"].shape == (3, 2)


# ------------------------------------------------------------------------------------- method x seed comparison
def _comparison_rows():
    rng = np.random.default_rng(0)
    rows = []
    for method, base in (("none", 1000.0), ("dann", 900.0), ("coral", 1100.0)):
        for seed in (1, 2, 3):
            rows.append({"method": method, "seed": seed, "mc_test_rejection": 3 * base + rng.normal(0, 50),
                         "iss_test_rejection": base + rng.normal(0, 50),
                         "mc_threshold_iss_efficiency": 0.8 + 0.01 * seed, "probe_auc": 0.8,
                         **({"dev_minus_labeled": -10.0 * seed} if seed < 3 else {})})
    return rows


def test_comparison_summary_gives_mean_and_spread_over_seeds_source_only_first():
    from amsnb.ecal.da_compare import FIGURES, method_config
    from amsnb.tables import format_seed_summary, seed_summary

    rows = _comparison_rows()
    summary = seed_summary(rows, FIGURES)
    assert [r["method"] for r in summary] == ["none", "dann", "coral"] and summary[0]["n_seeds"] == 3
    v = [r["iss_test_rejection"] for r in rows if r["method"] == "dann"]
    assert summary[1]["iss_test_rejection_mean"] == pytest.approx(np.mean(v))
    assert summary[1]["iss_test_rejection_std"] == pytest.approx(np.std(v, ddof=1))
    assert summary[2]["mc_threshold_iss_efficiency_std"] == pytest.approx(0.01)
    assert summary[0]["dev_minus_labeled_mean"] == -15.0  # the run without per-epoch predictions is left out
    assert math.isnan(summary[0]["iwv_minus_labeled_mean"])
    text = format_seed_summary(summary, FIGURES)
    assert text.splitlines()[0].startswith("method") and len(text.splitlines()) == 5
    cfg = method_config(TrainConfig(use_da=True, lambda_max=0.5), "none", 2)
    assert not cfg.use_da and cfg.seed == 2 and cfg.lambda_max == 0.5
    assert method_config(TrainConfig(), "mmd", 3).alignment == "mmd"
    with pytest.raises(ConfigError, match="'kl' is not a method"):
        method_config(TrainConfig(), "kl", 1)


def test_method_comparison_figure_is_readable():
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.plotting.layout import check_figure
    from amsnb.plotting.training import plot_method_comparison

    fig = plot_method_comparison(_comparison_rows())
    assert len(fig.axes) == 4 and not check_figure(fig, "method comparison")
