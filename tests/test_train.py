"""Trainer: gradient reversal, lambda schedule, the domain-adversarial loss, DA-off = plain training, exact resume,
DDP (gloo) = single process, the training request, ONNX export = onnxruntime, training cache round trip. Tiny models
on synthetic data so the file runs in seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from amsnb.models.layers import DomainAdversarialModel, grad_reverse, mlp_head
from amsnb.train import ArrayDataset, TrainConfig, domain_adversarial_loss, fit, ganin_lambda, predict
from amsnb.train.trainer import epoch_batches

N_FEAT = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=256, seed=0, shift=0.0, labeled=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, N_FEAT)).astype(np.float32) + shift
    x[:, 0] += 1.5 * y
    return ArrayDataset(x, y if labeled else None, domain=np.full(n, 1 if shift else 0))


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    fe = nn.Sequential(nn.Linear(N_FEAT, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 8), nn.ReLU())
    return DomainAdversarialModel(fe, nn.Linear(8, 2), mlp_head(8, 2, hidden=8))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_grl_reverses_and_scales():
    x = torch.randn(5, 3, requires_grad=True)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(3.0).expand(5, 3))


def test_reversal_only_reaches_the_feature_extractor():
    """Domain loss: the domain head's gradient is the ordinary one, the feature extractor's is reversed."""
    m = _model()
    x = torch.randn(7, N_FEAT)
    d = torch.randint(0, 2, (7,))
    grads = {}
    for lam in (0.0, 1.0):
        m.zero_grad()
        out = m(x, lambda_=lam)
        nn.functional.cross_entropy(out["domain_logits"], d).backward()
        grads[lam] = {n: p.grad.clone() if p.grad is not None else None for n, p in m.named_parameters()}
    # reference without reversal: gradient of the same loss through an un-reversed path
    m.zero_grad()
    f = m.feature_extractor(x)
    nn.functional.cross_entropy(m.domain_head(f), d).backward()
    plain = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    for n, g in plain.items():
        if n.startswith("domain_head"):
            assert torch.allclose(grads[1.0][n], g, atol=1e-7)
        elif n.startswith("feature_extractor"):
            assert torch.allclose(grads[1.0][n], -g, atol=1e-7)
            assert torch.count_nonzero(grads[0.0][n]) == 0
    assert grads[1.0]["label_head.weight"] is None


def test_lambda_schedule():
    assert ganin_lambda(0.0) == 0.0
    assert ganin_lambda(0.1) == pytest.approx(2 / (1 + math.exp(-1)) - 1, abs=1e-12)  # 0.46212
    assert ganin_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert ganin_lambda(2.0) == ganin_lambda(1.0)  # clipped to the run
    vals = [ganin_lambda(p) for p in np.linspace(0, 1, 11)]
    assert all(b > a for a, b in zip(vals, vals[1:]))


# A fixed batch of domain logits (5 source, 3 target events) and domain weights.
_DL_SOURCE = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1], [1.1, 1.0], [0.0, -2.5]])
_DL_TARGET = torch.tensor([[0.4, 0.9], [-1.5, 0.2], [0.8, -0.3]])
_DW_SOURCE = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.25])
_DW_TARGET = torch.tensor([1.0, 1.5, 0.75])


def test_domain_adversarial_loss_is_the_former_inline_loss():
    """The value the trainer's inline DANN loss gave on a fixed batch (hard-coded from the code before the loss had
    a name, float32), and the same computed the old way: the domain cross-entropy of source (0) and target (1)
    events together, weighted by dw, divided by the total weight."""
    assert domain_adversarial_loss(_DL_SOURCE, _DL_TARGET, _DW_SOURCE, _DW_TARGET).item() == 0.6343372464179993
    assert domain_adversarial_loss(_DL_SOURCE, _DL_TARGET).item() == 0.5408015251159668  # dw default 1
    ones = domain_adversarial_loss(_DL_SOURCE, _DL_TARGET, torch.ones(5), torch.ones(3))
    assert ones.item() == 0.5408015251159668
    dl, w = torch.cat([_DL_SOURCE, _DL_TARGET]), torch.cat([_DW_SOURCE, _DW_TARGET])
    dy = torch.cat([torch.zeros(5, dtype=torch.long), torch.ones(3, dtype=torch.long)])
    old = (w * nn.functional.cross_entropy(dl, dy, reduction="none")).sum() / w.sum()
    assert domain_adversarial_loss(_DL_SOURCE, _DL_TARGET, _DW_SOURCE, _DW_TARGET).item() == \
        pytest.approx(old.item(), rel=1e-6)


def test_domain_adversarial_loss_zero_weight_removes_an_event():
    """An event of domain weight 0 (source or target) contributes nothing: the loss equals the loss without it
    and its logits get no gradient."""
    for side in ("source", "target"):
        ls, lt = _DL_SOURCE.clone().requires_grad_(), _DL_TARGET.clone().requires_grad_()
        ws, wt = _DW_SOURCE.clone(), _DW_TARGET.clone()
        k = 1
        (ws if side == "source" else wt)[k] = 0.0
        loss = domain_adversarial_loss(ls, lt, ws, wt)
        keep = [i for i in range(len(ws if side == "source" else wt)) if i != k]
        if side == "source":
            without = domain_adversarial_loss(_DL_SOURCE[keep], _DL_TARGET, _DW_SOURCE[keep], _DW_TARGET)
        else:
            without = domain_adversarial_loss(_DL_SOURCE, _DL_TARGET[keep], _DW_SOURCE, _DW_TARGET[keep])
        assert loss.item() == pytest.approx(without.item(), rel=1e-6), side
        assert loss.item() != pytest.approx(domain_adversarial_loss(_DL_SOURCE, _DL_TARGET, _DW_SOURCE,
                                                                    _DW_TARGET).item(), rel=1e-3)
        loss.backward()
        g = ls.grad if side == "source" else lt.grad
        assert torch.count_nonzero(g[k]) == 0 and torch.count_nonzero(g[keep]) > 0, side


def test_domain_adversarial_loss_gradient_is_reversed_through_the_model():
    """Used on a DomainAdversarialModel's domain logits, the loss's gradient reaches the feature extractor
    reversed and scaled by lambda (the GRL), while the domain head gets the ordinary gradient."""
    m = _model(6)
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(6, N_FEAT, generator=g), torch.randn(4, N_FEAT, generator=g) + 0.5
    ws, wt = torch.rand(6, generator=g), torch.rand(4, generator=g)
    lam = 0.7
    out = m(torch.cat([xs, xt]), lambda_=lam)["domain_logits"]
    m.zero_grad()
    domain_adversarial_loss(out[:6], out[6:], ws, wt).backward()
    grl = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    plain = m.domain_head(m.feature_extractor(torch.cat([xs, xt])))  # the same path without the reversal
    domain_adversarial_loss(plain[:6], plain[6:], ws, wt).backward()
    ref = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert set(grl) == set(ref) and not any(n.startswith("label_head") for n in grl)
    fe = [n for n in ref if n.startswith("feature_extractor")]
    assert fe and all(torch.count_nonzero(ref[n]) for n in fe)
    for n in fe:
        torch.testing.assert_close(grl[n], -lam * ref[n], rtol=1e-5, atol=1e-7)
    for n in (n for n in ref if n.startswith("domain_head")):
        torch.testing.assert_close(grl[n], ref[n], rtol=0, atol=0)


def test_da_off_equals_plain_training(tmp_path):
    """use_da=False is ordinary training: same weights as a hand-written Adam loop over the same batches."""
    train = _data()
    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, lr_schedule="constant", class_weights="none", seed=5,
                      progress=False, patience=99, restore_best=False)
    m1 = _model(1)
    fit(m1, train, None, None, cfg, tmp_path / "fit")
    m2 = _model(1)
    params = list(m2.feature_extractor.parameters()) + list(m2.label_head.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    for epoch in range(2):
        for idx in epoch_batches(len(train), 32, 5, epoch):
            x, y = train.x[idx], torch.as_tensor(train.labels[idx])
            loss = nn.functional.cross_entropy(m2.label_head(m2.feature_extractor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for k, v in _weights(m1).items():
        assert torch.allclose(v, _weights(m2)[k], atol=1e-6), k


def test_resume_gives_the_same_weights(tmp_path):
    """3 epochs straight == 2 epochs, 'killed', then resumed for the 3rd (DA on, dropout on: RNG states count)."""
    train, val, target = _data(192, 0), _data(96, 1), _data(160, 2, shift=0.7, labeled=False)
    base = dict(epochs=3, batch_size=32, use_da=True, seed=3, progress=False, patience=99)
    m1 = _model(2, dropout=0.2)
    r1 = fit(m1, train, val, target, TrainConfig(**base), tmp_path / "straight")
    m2 = _model(2, dropout=0.2)
    part = fit(m2, train, val, target, TrainConfig(**base, stop_after_epoch=2), tmp_path / "killed")
    assert not part.finished and len(part.history) == 2
    m3 = _model(99, dropout=0.2)  # a fresh process: different init, everything comes from the checkpoint
    r3 = fit(m3, train, val, target, TrainConfig(**base), tmp_path / "killed")
    assert r3.finished and len(r3.history) == 3
    assert r3.best_epoch == r1.best_epoch
    for k, v in _weights(m1).items():
        assert torch.allclose(v, _weights(m3)[k], atol=1e-6, rtol=0), k
    assert (tmp_path / "killed" / "metrics.csv").read_text().count("\n") == 4


def _ddp_worker(rank, world, initfile, outdir, cfg_kw):
    import torch.distributed as dist
    from safetensors.torch import save_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{initfile}", rank=rank, world_size=world)
    try:
        m = _model(4)
        fit(m, _data(256, 0), None, _data(256, 2, shift=0.7, labeled=False), TrainConfig(**cfg_kw), outdir)
        if rank == 0:
            save_model(m, f"{outdir}/final.safetensors")
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_equal_single_process(tmp_path):
    """2 gloo processes, each half of every global batch, losses normalised by the global batch: the averaged
    gradient equals the single-process one, so weights agree to float32 summation-order noise (atol 1e-5)."""
    from safetensors.torch import load_model

    cfg_kw = dict(epochs=2, batch_size=32, use_da=True, class_weights="balanced", seed=7, progress=False,
                  patience=99)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tmp_path / "pg"), str(tmp_path / "ddp"), cfg_kw),
                                nprocs=2, join=True)
    ddp = _model(0)
    load_model(ddp, str(tmp_path / "ddp" / "final.safetensors"))
    single = _model(4)
    fit(single, _data(256, 0), None, _data(256, 2, shift=0.7, labeled=False), TrainConfig(**cfg_kw),
        tmp_path / "single")
    moved = sum(float((v - _weights(_model(4))[k]).abs().max()) for k, v in _weights(single).items())
    assert moved > 1e-3  # training did change the weights, so equality below is not trivial
    for k, v in _weights(single).items():
        assert torch.allclose(v, _weights(ddp)[k], atol=1e-5, rtol=0), k


def test_onnx_matches_onnxruntime(tmp_path):
    """Exported tiny CvT (attention, LayerNorm, dw-convs) vs onnxruntime: float32 agreement to 1e-4."""
    import amsnb.models as M
    from amsnb.export import export_model

    torch.manual_seed(0)
    model = M.build("cvt", "tiny").eval()
    real = (np.random.default_rng(0).exponential(30.0, (4, 1, 18, 72))).astype(np.float32)
    summary = export_model(tmp_path / "cvt", model, real_inputs=real, n_random=3)
    assert summary["max_abs_diff_random"] < 1e-4
    assert summary["max_abs_diff_real"] < 1e-4
    assert (tmp_path / "cvt" / "model.safetensors").exists()


def test_cache_roundtrip(tmp_path):
    """A ROOT file -> memory-mapped cache -> dataset items equal the ROOT content; reused when unchanged."""
    from amsnb import io
    from amsnb.ecal.cache import EcalDataset, build_cache
    from amsnb.schema import ECAL

    arrays = ECAL.empty(20)
    rng = np.random.default_rng(0)
    arrays["ecal_edep"][:] = rng.exponential(5.0, arrays["ecal_edep"].shape)
    arrays["label"][:] = rng.integers(0, 2, 20)
    arrays["event"][:] = np.arange(20)
    arrays["weight"][:] = 1.0
    io.write(tmp_path / "s.root", arrays, ECAL)
    folder = build_cache(tmp_path / "s.root", tmp_path / "cache", progress=False)
    mtime = (folder / "images.npy").stat().st_mtime_ns
    assert build_cache(tmp_path / "s.root", tmp_path / "cache", progress=False) == folder
    assert (folder / "images.npy").stat().st_mtime_ns == mtime
    ds = EcalDataset(folder)
    item = ds[7]
    assert item["x"].shape == (1, 18, 72)
    assert np.array_equal(item["x"][0].numpy(), arrays["ecal_edep"][7])
    assert item["y"] == arrays["label"][7]
    a, b = ds.split(0.25, seed=1)
    assert len(a) == 5 and len(b) == 15 and not set(a.indices) & set(b.indices)


def test_dict_inputs_and_missing_weights(tmp_path):
    """Model-agnostic: x may be a dict of tensors (the MDA network's inputs) and 'w' may be absent."""

    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn.Linear(3, 4), nn.Linear(2, 4), nn.Linear(4, 2)

        def forward(self, x, lambda_=0.0):
            f = torch.relu(self.a(x["tracks"]) + self.b(x["tof"]))
            return {"logits": self.head(f), "domain_logits": None, "features": f}

    class DictData(torch.utils.data.Dataset):
        labels = np.arange(40) % 2

        def __len__(self):
            return 40

        def __getitem__(self, i):
            return {"x": {"tracks": torch.full((3,), float(i % 2)), "tof": torch.ones(2)}, "y": int(i % 2)}

    def collate(items):
        return {"x": {k: torch.stack([it["x"][k] for it in items]) for k in items[0]["x"]},
                "y": torch.tensor([it["y"] for it in items])}

    res = fit(DictNet(), DictData(), DictData(), None, TrainConfig(epochs=2, batch_size=8, progress=False, lr=0.05),
              tmp_path, collate_fn=collate)
    assert res.history[-1]["auc"] == 1.0  # the label is written in the input: must be learned perfectly


def test_cli_trains_from_root_files(tmp_path):
    """`amsnb train --config` on tiny ROOT sets: caches them, trains, saves a loadable model folder."""
    import json

    from amsnb import io
    from amsnb.ecal.train_cli import main
    from amsnb.models import load_model
    from amsnb.schema import ECAL

    rng = np.random.default_rng(3)
    for name, n, labeled in (("train", 96, True), ("target", 64, False)):
        a = ECAL.empty(n)
        a["label"][:] = rng.integers(0, 2, n) if labeled else -1
        a["ecal_edep"][:] = rng.exponential(5.0, a["ecal_edep"].shape) * (1 + 20 * (a["label"] == 1))[:, None, None]
        a["event"][:] = np.arange(n)
        a["weight"][:] = 1.0
        io.write(tmp_path / name / "ecal.root", a, ECAL)  # same file name in two folders: separate caches
    cfg = {"model": "cnn", "model_config": "tiny", "train": str(tmp_path / "train" / "ecal.root"),
           "target": str(tmp_path / "target" / "ecal.root"), "outdir": str(tmp_path / "out"), "val_fraction": 0.25,
           "train_config": {"epochs": 1, "batch_size": 16, "use_da": True, "progress": False}}
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    assert main(["--config", str(tmp_path / "run.json")]) == 0
    model = load_model(tmp_path / "out" / "model")
    assert model(torch.zeros(2, 1, 18, 72))["logits"].shape == (2, 2)
    assert len([d for d in (tmp_path / "out" / "cache").iterdir() if d.is_dir()]) == 2


def test_fit_keeps_the_callers_rng_and_threads(tmp_path):
    """fit seeds torch and sets the thread count for its own run only: the caller's global torch RNG state (and
    numpy's) and torch.get_num_threads() are the same afterwards, also when training fails."""
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 1)

        def forward(self, x, lambda_=0.0):
            raise RuntimeError("boom")

    models = [_model(1, dropout=0.2), _model(1, dropout=0.2), Broken()]  # built first: they draw from the RNG
    torch.manual_seed(123)
    np.random.seed(5)
    state, np_state, threads = torch.get_rng_state(), np.random.get_state()[1].copy(), torch.get_num_threads()
    cfg = TrainConfig(epochs=2, batch_size=32, seed=9, cpu_threads=threads + 1, progress=False)
    fit(models[0], _data(), _data(96, 1), None, cfg, tmp_path / "a")
    fit(models[1], _data(), _data(96, 1), None, cfg, tmp_path / "a")  # a resumed (finished) run sets RNG states
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.get_num_threads() == threads

    with pytest.raises(RuntimeError, match="boom"):
        fit(models[2], _data(), None, None, cfg, tmp_path / "b")
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_early_stopping_without_validation_watches_the_label_loss(tmp_path):
    """No validation set, DANN on: the monitored value is the label loss, not the total loss with the adversarial
    domain term (which rises as the features become domain-invariant and used to stop DANN runs early)."""
    from amsnb.train.trainer import _monitored

    assert _monitored({"loss": 2.0, "label_loss": 0.3}, "rejection") == (0.3, "min")
    cfg = TrainConfig(epochs=4, batch_size=32, use_da=True, lambda_schedule="constant", domain_weight=5.0, seed=2,
                      patience=1, progress=False)
    res = fit(_model(3), _data(), None, _data(160, 2, shift=2.0, labeled=False), cfg, tmp_path)
    label = [r["label_loss"] for r in res.history]
    assert res.best_metric == pytest.approx(min(label))
    assert res.best_epoch == int(np.argmin(label)) + 1
    # the total loss rises after epoch 1 (the domain term grows), so watching it with patience 1 would stop at
    # epoch 2; the label loss keeps falling and the run goes on
    assert res.history[1]["loss"] > res.history[0]["loss"]
    assert all(b < a for a, b in zip(label, label[1:]))
    assert not res.stopped_early and len(res.history) == 4


def test_checkpoint_every_zero_writes_once_and_changes_nothing(tmp_path, monkeypatch):
    """checkpoint_every=0: one checkpoint (and metrics.csv, best weights) at the end of the call instead of one per
    epoch; same weights, history and best epoch; a second call resumes the finished run."""
    import amsnb.train.trainer as T

    writes = []
    real = T.save_checkpoint
    monkeypatch.setattr(T, "save_checkpoint", lambda *a, **k: writes.append(a[0]) or real(*a, **k))
    base = dict(epochs=4, batch_size=32, seed=4, progress=False, patience=99, early_stopping_metric="val_loss")
    train, val = _data(), _data(96, 1)
    m1, m2 = _model(5, dropout=0.2), _model(5, dropout=0.2)
    r1 = fit(m1, train, val, None, TrainConfig(**base), tmp_path / "every")
    assert len(writes) == 4
    writes.clear()
    r2 = fit(m2, train, val, None, TrainConfig(**base, checkpoint_every=0), tmp_path / "end")
    assert len(writes) == 1
    assert r2.best_epoch == r1.best_epoch and r2.finished
    assert [r["val_loss"] for r in r2.history] == [r["val_loss"] for r in r1.history]
    for k, v in _weights(m1).items():
        assert torch.equal(v, _weights(m2)[k]), k
    assert (tmp_path / "end" / "metrics.csv").read_text().count("\n") == 5
    assert (tmp_path / "end" / "best.safetensors").exists()
    writes.clear()
    m3 = _model(8, dropout=0.2)
    r3 = fit(m3, train, val, None, TrainConfig(**base, checkpoint_every=2), tmp_path / "end")  # resumable change
    assert not writes and r3.finished and len(r3.history) == 4
    for k, v in _weights(m1).items():
        assert torch.equal(v, _weights(m3)[k]), k


def test_three_class_model_trains_and_predicts(tmp_path):
    """The number of classes comes from the model's logits: a 3-class toy model trains; predict gives probs."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, N_FEAT)).astype(np.float32)
    x[:, 0] += 3.0 * y
    train, val = ArrayDataset(x[:240], y[:240]), ArrayDataset(x[240:], y[240:])
    torch.manual_seed(0)
    fe = nn.Sequential(nn.Linear(N_FEAT, 16), nn.ReLU())
    model = DomainAdversarialModel(fe, nn.Linear(16, 3))
    res = fit(model, train, val, None, TrainConfig(epochs=6, batch_size=32, lr=2e-2, progress=False), tmp_path)
    assert res.finished and "val_acc" in res.history[-1]
    p = predict(res.model, val)
    assert p["probs"].shape == (60, 3)
    np.testing.assert_allclose(p["probs"].sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p["score"], p["probs"][:, 1])
    assert (p["probs"].argmax(1) == y[240:]).mean() > 0.6
    two = predict(_model(0), _data(60))
    assert "probs" not in two and two["score"].shape == (60,)


def test_predict_passes_extra_outputs_through():
    """A feature extractor returning a dict: its extra outputs (e.g. attention) come out of the model and of
    predict under their own names."""

    class WithAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(N_FEAT, 8)

        def forward(self, x):
            return {"features": torch.relu(self.lin(x)), "attention": torch.softmax(x[:, :4], 1)}

    model = DomainAdversarialModel(WithAttention(), nn.Linear(8, 2), mlp_head(8, 2))
    ds = _data(50)
    p = predict(model, ds, batch_size=16)
    assert p["attention"].shape == (50, 4)
    np.testing.assert_allclose(p["attention"], torch.softmax(ds.x[:, :4], 1).numpy(), rtol=1e-6)
    assert np.isfinite(p["domain_score"]).all()


def test_lambda_schedule_off_is_accepted(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32, use_da=True, lambda_schedule="off", progress=False)
    res = fit(_model(0), _data(64), None, _data(64, 2, shift=0.7, labeled=False), cfg, tmp_path)
    assert res.history[0]["lambda"] == 0.0


def test_fit_does_not_resume_a_checkpoint_of_other_data(tmp_path, capsys):
    """The stale-reuse bug: a finished run on 200 events was returned for a call on 600 events."""
    cfg = TrainConfig(epochs=2, batch_size=50, progress=False, early_stopping_metric="val_loss")
    r200 = fit(_model(1), _data(200), _data(100, seed=9), config=cfg, outdir=tmp_path)
    capsys.readouterr()
    r600 = fit(_model(1), _data(600), _data(100, seed=9), config=cfg, outdir=tmp_path)
    assert "checkpoint of another run (train data changed), training afresh" in capsys.readouterr().out
    assert len(r600.history) == 2 and not all(torch.equal(a, b) for a, b in
                                              zip(_weights(r200.model).values(), _weights(r600.model).values()))
    again = fit(_model(5), _data(600), _data(100, seed=9), config=cfg, outdir=tmp_path)  # same data: resumed
    assert capsys.readouterr().out == ""
    assert all(torch.equal(a, b) for a, b in zip(_weights(r600.model).values(), _weights(again.model).values()))


class _WithDomainWeights(torch.utils.data.Dataset):
    """An ArrayDataset whose items carry ``dw``, their weight in the domain loss."""

    def __init__(self, ds, dw):
        self.ds, self.dw, self.labels = ds, np.asarray(dw, np.float32), ds.labels

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return {**self.ds[i], "dw": float(self.dw[i])}


def test_domain_weights_reach_the_domain_loss(tmp_path):
    """Items' ``dw`` weight the domain loss (class-mix matching, amsnb.ecal.experiment.prepare): all ones is the
    unweighted run exactly; other weights give another run."""
    train, target = _data(seed=1), _data(seed=2, shift=0.7, labeled=False)
    cfg = TrainConfig(epochs=2, batch_size=32, use_da=True, lambda_schedule="constant", seed=3, progress=False,
                      patience=99, restore_best=False)

    def run(ds, name):
        m = _model(4)
        fit(m, ds, None, target, cfg, tmp_path / name)
        return _weights(m)

    plain = run(train, "plain")
    ones = run(_WithDomainWeights(train, np.ones(len(train))), "ones")
    assert all(torch.equal(v, ones[k]) for k, v in plain.items())
    skewed = run(_WithDomainWeights(train, np.where(train.labels == 1, 0.2, 1.8)), "skewed")
    assert any(not torch.allclose(v, skewed[k]) for k, v in plain.items())


def test_a_no_da_config_ignores_the_da_fields(tmp_path, capsys):
    """The no-DA twin of a DANN run with another lambda is the same model: fit resumes (returns) it instead of
    training afresh; with DA on, lambda counts."""
    from amsnb.train import training_request
    from amsnb.train.trainer import result_config

    assert result_config is training_request  # the former name keeps working
    train = _data()
    cfg = TrainConfig(epochs=1, batch_size=64, progress=False, lambda_max=0.3)
    assert result_config(cfg) == result_config(TrainConfig(epochs=1, batch_size=64, progress=False, lambda_max=3))
    assert "lambda_max" in result_config(TrainConfig(use_da=True))
    fit(_model(1), train, None, None, cfg, tmp_path / "run")
    capsys.readouterr()
    again = fit(_model(2), train, None, None, TrainConfig(epochs=1, batch_size=64, progress=False, lambda_max=3.0),
                tmp_path / "run")
    assert "training afresh" not in capsys.readouterr().out and again.finished


def test_the_training_request_is_one_definition(tmp_path, monkeypatch):
    """training_request is what makes "the same training": defaults count whether or not they were spelled out,
    fields that cannot change the model do not, DA-only fields count only with DA; the nuclei study's provenance
    request is exactly it (as is fit's resume check and the ECAL experiment's request)."""
    from amsnb import provenance
    from amsnb.nuclei import training as study
    from amsnb.train import training_request
    from amsnb.workdir import Workdir

    assert training_request(TrainConfig()) == training_request(TrainConfig(epochs=5, batch_size=128))
    assert training_request(TrainConfig(progress=False, device="auto", stop_after_epoch=2, num_workers=3)) == \
        training_request(TrainConfig())
    assert training_request(TrainConfig(seed=2)) != training_request(TrainConfig())
    assert training_request(TrainConfig(domain_weight=3)) == training_request(TrainConfig())
    assert training_request(TrainConfig(use_da=True, domain_weight=3)) != training_request(TrainConfig(use_da=True))
    assert training_request(TrainConfig(class_weights=[1, 2])) == training_request(TrainConfig(class_weights=(1, 2)))

    class Stop(Exception):
        pass

    def nuclei_request(train_config):
        seen = {}

        def ensure(folder, stamp, build, **kw):
            seen["request"] = stamp.request
            raise Stop

        monkeypatch.setattr(provenance, "ensure", ensure)
        sets = {f"{k}_arrays": {"a": np.zeros(3)} for k in ("train", "val", "target")}
        with pytest.raises(Stop):
            study.train(Workdir(tmp_path), sets, 14, train_config)
        return seen["request"]["train_config"]

    cfg = {"epochs": 2, "lambda_max": 0.5, "progress": False}
    assert nuclei_request(cfg) == training_request(TrainConfig(**cfg, early_stopping_metric="auc"))
    assert nuclei_request({"epochs": 2}) == nuclei_request({**cfg, "batch_size": 128})
    assert nuclei_request({"epochs": 2, "use_da": True}) != nuclei_request({"epochs": 2, "use_da": True,
                                                                            "lambda_max": 0.5})
