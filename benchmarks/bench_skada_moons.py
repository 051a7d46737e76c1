"""amsnb's alignment losses side by side with skada 0.6 (issue 25), on Ganin's rotated two moons.

skada is no dependency of amsnb: install it (and POT, pandas, skorch) for this script only, e.g. into a folder of
its own: ``pip install --target /tmp/skada-site --no-deps skada==0.6.0 POT pandas skorch`` and run with
``PYTHONPATH=.:/tmp/skada-site python benchmarks/bench_skada_moons.py`` (or ``benchmarks/run.py --only skada_moons``;
without skada its row says "skipped").

1. The loss on one batch: amsnb's :func:`amsnb.train.coral_loss` against ``skada.deep.losses.deepcoral_loss``
   (skada uses the unbiased covariance, amsnb the weighted biased one: equal up to (n / (n - 1))^2 for n events a
   side), and the DANN domain loss against skada's ``DANNLoss`` formula (a cross-entropy of the domain classifier).
2. Training: the same MLP (2-64-32 ReLU features, linear label head), the same two moons (600 source, 600
   unlabeled target events rotated by 20 degrees, 1000 target test events), 40 epochs, batch 64, Adam lr 3e-3, a
   constant alignment strength, seeds 0-4: target accuracy through ``amsnb.train.fit`` and through skada's
   ``DeepCoral`` / ``DANN`` / ``SourceOnly`` (skorch). The two differ in their batching (amsnb: a target batch of
   the source batch's size per step, a (seed, epoch) permutation; skada: its DomainBalancedDataLoader) and
   initialisation order, so equality is expected within the seed spread, not event by event.

skada 0.6's default DANN domain classifier ends in ``Linear(100, 1)`` followed by ``Softmax()`` over that single
output, which is 1 for every event: its BCE is constant and no gradient reaches the features, so ``DANN`` with the
default head trains the source-only model. The ``dann_sigmoid`` row gives it a sigmoid head.
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

SEEDS = range(5)
ANGLE = 20.0
EPOCHS, BATCH, LR = 40, 64, 3e-3
REG = {"coral": 100.0, "dann": 1.0}


def moons(n, seed, angle):
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.1, random_state=seed)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ((x - [0.5, 0.25]) @ rot.T).astype(np.float32), y


class Net(nn.Module):
    """The MLP of both sides; ``features`` is the layer skada's DomainAwareModule reads."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 2)

    def forward(self, x, sample_weight=None):
        return self.head(self.features(x))


def loss_check() -> tuple[float, float, float]:
    """(amsnb's CORAL x (n/(n-1))^2, skada's, the range of skada's default domain classifier output) on one batch."""
    from skada.deep.losses import deepcoral_loss
    from skada.deep.modules import DomainClassifier

    from amsnb.train import coral_loss

    g = torch.Generator().manual_seed(0)
    fs, ft = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g) * 1.3 + 0.2
    n = len(fs)
    out = DomainClassifier(32)(fs)
    return coral_loss(fs, ft).item() * (n / (n - 1)) ** 2, deepcoral_loss(fs, ft).item(), \
        float(out.max() - out.min())


def amsnb_accuracy(method, seed):
    from amsnb.models.layers import DomainAdversarialModel, mlp_head
    from amsnb.train import ArrayDataset, TrainConfig, fit, predict

    torch.manual_seed(seed)
    net = Net()
    model = DomainAdversarialModel(net.features, net.head, mlp_head(32, 2, hidden=32))
    src, tgt = ArrayDataset(*moons(600, seed, 0.0)), ArrayDataset(moons(600, 100 + seed, ANGLE)[0])
    test = ArrayDataset(*moons(1000, 200 + seed, ANGLE))
    cfg = TrainConfig(epochs=EPOCHS, batch_size=BATCH, lr=LR, lr_schedule="constant", seed=seed, progress=False,
                      patience=999, restore_best=False, use_da=method != "none",
                      alignment="dann" if method == "none" else method, lambda_schedule="constant",
                      domain_weight=REG.get(method, 1.0))
    with tempfile.TemporaryDirectory() as d:
        res = fit(model, src, None, tgt if method != "none" else None, cfg, d)
    p = predict(res.model, test)
    return float(((p["score"] >= 0.5) == (p["label"] == 1)).mean())


def sigmoid_domain_classifier(num_features):
    """skada's DomainClassifier (gradient reversal, then an MLP) with a sigmoid output, as amsnb's mlp_head(32, 2,
    hidden=32) in a one-logit form."""
    from skada.deep.modules import DomainClassifier

    head = DomainClassifier(num_features)
    head.classifier = nn.Sequential(nn.Linear(num_features, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
    return head


def skada_accuracy(method, seed):
    from skada.deep import DANN, DeepCoral, SourceOnly

    torch.manual_seed(seed)
    xs, ys = moons(600, seed, 0.0)
    xt, _ = moons(600, 100 + seed, ANGLE)
    xtest, ytest = moons(1000, 200 + seed, ANGLE)
    x = np.concatenate([xs, xt])
    y = np.concatenate([ys, np.full(len(xt), -1)])
    dom = np.concatenate([np.ones(len(xs), int), -np.ones(len(xt), int)])
    common = dict(module=Net(), layer_name="features", batch_size=BATCH, max_epochs=EPOCHS, lr=LR,
                  optimizer=torch.optim.Adam, train_split=False, verbose=0)
    if method == "coral":
        clf = DeepCoral(reg=REG["coral"], **common)
    elif method == "dann":  # skada's default domain classifier (see the module docstring)
        clf = DANN(reg=REG["dann"], num_features=32, **common)
    elif method == "dann_sigmoid":  # a working head, and reg / 2: skada sums the two sides' mean BCEs
        clf = DANN(reg=REG["dann"] / 2, domain_classifier=sigmoid_domain_classifier(32), **common)
    else:
        clf = SourceOnly(**common)
    clf.fit(x.astype(np.float32), y, sample_domain=dom)
    pred = clf.predict(xtest, sample_domain=-np.ones(len(xtest), int))
    return float((pred == ytest).mean())


RUNS = (("none", "amsnb"), ("none", "skada"), ("coral", "amsnb"), ("coral", "skada"), ("dann", "amsnb"),
        ("dann", "skada"), ("dann_sigmoid", "skada"))


def run(quick: bool = False) -> list[dict]:
    """The rows of benchmarks/run.py (skipped, with a note, where skada is not installed); ``quick``: 2 seeds."""
    try:
        import skada  # noqa: F401
    except ImportError:
        return [{"name": "skada side by side", "value": "skipped", "unit": "",
                 "note": "skada not installed: install it for this script only (see its docstring)"}]
    torch.set_num_threads(1)
    ours, theirs, spread = loss_check()
    rows = [{"name": "coral loss vs skada", "value": abs(ours - theirs) / theirs, "unit": "rel. diff",
             "note": "one 64 x 32 batch, after skada's unbiased covariance (n/(n-1))^2"},
            {"name": "skada default DANN head output range", "value": spread, "unit": "",
             "note": "Softmax over one output: constant 1, no gradient"}]
    seeds = list(SEEDS)[:2] if quick else list(SEEDS)
    for method, lib in RUNS:
        fn = amsnb_accuracy if lib == "amsnb" else skada_accuracy
        t0 = time.perf_counter()
        acc = np.array([fn(method, s) for s in seeds])
        rows.append({"name": f"moons {ANGLE:g} deg {method} {lib}", "value": float(acc.mean()),
                     "unit": "target acc", "note": f"+- {acc.std(ddof=1):.3f} over seeds {seeds}: "
                     f"{' '.join(f'{a:.3f}' for a in acc)} ({time.perf_counter() - t0:.0f} s)"})
    return rows


def main():
    try:
        import skada
    except ImportError:
        sys.exit("bench_skada_moons: skada is not installed (see the docstring: install it for this script only)")
    print(f"skada {skada.__version__}, torch {torch.__version__}")
    for r in run():
        print(f"  {r['name']:40s} {r['value']:.4g} {r['unit']:10s} {r['note']}", flush=True)


if __name__ == "__main__":
    main()
