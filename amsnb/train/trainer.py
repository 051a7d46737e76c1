"""Model-agnostic supervised / domain-adversarial training with resumable checkpoints (``fit``).

One code path: with ``use_da=False`` it is ordinary weighted cross-entropy training; with ``use_da=True`` each
step also draws a batch of the (unlabeled) target set and adds the domain loss on the source and target batches,
with the gradient reversed into the feature extractor (Ganin & Lempitsky 2015; the losses in ``losses``, the
lambda schedules in ``schedules``). Items may carry ``dw``, their weight in the domain loss (default 1).

Determinism and resume: the event order of epoch ``e`` is a permutation seeded by (seed, e), and the checkpoint
(written every ``checkpoint_every`` epochs and at the end of each call) holds weights, optimizer moments, scheduler
and RNG states, so a killed run continues to the same weights as an uninterrupted one. ``fit`` seeds torch with
``seed`` inside a forked RNG and restores the caller's RNG states and thread count when it returns.
Under torchrun (``WORLD_SIZE`` > 1) every rank takes an equal slice of the same global batch and the losses are
normalised by the *global* batch weight, so DDP's averaged gradient equals the single-process gradient (exactly,
up to summation order, for models without BatchNorm/dropout).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, EmptySelectionError
from .checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from .losses import (
    ALIGNMENTS,
    conditional_adversarial_loss,
    coral_loss,
    domain_adversarial_loss,
    mmd_loss,
    weighted_ce,
)
from .schedules import lambda_at

METRIC_MODES = {"rejection": "max", "auc": "max", "val_loss": "min", "val_acc": "max"}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as JSON beside the checkpoints).

    The DANN lambda ramp (``lambda_schedule="ganin"``) and the cosine learning-rate schedule run over the
    *configured* ``epochs`` (progress = step / (epochs x steps per epoch)), not over the epochs actually run: a run
    that stops early (``patience``) or is time-sliced (``stop_after_epoch``) has not reached ``lambda_max`` yet.
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # cosine (to lr_min_factor*lr over the run) | constant
    lr_min_factor: float = 0.05
    warmup_steps: int = 0
    class_weights: str | tuple[float, ...] = "balanced"  # balanced | none | explicit per class
    use_da: bool = False
    lambda_schedule: str = "ganin"  # ganin | constant | off; the ramp spans the configured `epochs` (see below)
    lambda_max: float = 1.0
    domain_weight: float = 1.0
    alignment: str = "dann"  # dann | coral | mmd | cdan | cdan+e: the alignment loss with use_da (losses.ALIGNMENTS)
    early_stopping_metric: str = "rejection"  # rejection | auc | val_loss | val_acc | a key of metric_fn's dict
    patience: int = 3
    efficiency: float = 0.9  # electron efficiency of the rejection metric (seed 000)
    device: str = "cpu"  # cpu | cuda | auto
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # on CUDA for 4-D image inputs
    num_workers: int = 0
    cpu_threads: int | None = None  # torch CPU threads (None: torch's default); 1 avoids oversubscription on a
    #                                 shared machine (benchmarks/bench_train.py measures both)
    eval_batch_size: int = 512
    max_steps_per_epoch: int | None = None
    seed: int = 1
    progress: bool = True
    resume: bool = True
    stop_after_epoch: int | None = None  # end this call after that epoch (time-sliced runs); a later call resumes
    restore_best: bool = True  # end with the best epoch's weights (False: the last epoch's)
    checkpoint_every: int = 1  # epochs between checkpoints + metrics.csv writes; 0: only at the end of each call

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"TrainConfig: epochs={self.epochs}, batch_size={self.batch_size} must be >= 1")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"TrainConfig.lr_schedule='{self.lr_schedule}': use 'cosine' or 'constant'")
        if self.lambda_schedule not in ("ganin", "constant", "off"):
            raise ConfigError(f"TrainConfig.lambda_schedule='{self.lambda_schedule}': use 'ganin', 'constant' or "
                              "'off'")
        if self.alignment not in ALIGNMENTS:
            raise ConfigError(f"TrainConfig.alignment='{self.alignment}': use one of {', '.join(ALIGNMENTS)}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"TrainConfig.checkpoint_every={self.checkpoint_every}: use >= 1 (epochs between "
                              "checkpoints) or 0 (only at the end of each call)")
        if isinstance(self.class_weights, list):
            self.class_weights = tuple(self.class_weights)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ConfigError(f"TrainConfig: unknown key(s) {bad}; valid: {', '.join(sorted(names))}")
        return cls(**d)


#: TrainConfig fields that may change between a run and its resumption (they do not change the result).
_RESUMABLE_CHANGES = {"progress", "resume", "stop_after_epoch", "num_workers", "cpu_threads", "device",
                      "eval_batch_size", "checkpoint_every"}


#: TrainConfig fields that act only with ``use_da=True``.
_DA_FIELDS = {"lambda_schedule", "lambda_max", "domain_weight", "alignment"}


def training_request(cfg: TrainConfig | dict) -> dict:
    """The training request of a config: the one definition of which TrainConfig fields make "the same training".

    All fields (defaults filled in, JSON-normalised: tuples as lists) except those that cannot change the trained
    model: the ones that may change between a run and its resumption (:data:`_RESUMABLE_CHANGES`: progress bars,
    workers, threads, device, checkpoint cadence, ``stop_after_epoch``), and without DA the DA-only ones
    (:data:`_DA_FIELDS`: a no-DA twin of a DANN run with another lambda is the same model), and ``alignment`` when
    it is ``"dann"`` (the only method before the field existed: earlier DANN requests stay valid). ``fit`` resumes a
    checkpoint only for an equal request (and the same data); the ECAL (``amsnb.ecal.experiment``) and nuclei
    (``amsnb.nuclei.training``) artefact stamps put it in their provenance request. A dict (e.g. the config saved in
    a checkpoint) is taken as it is, without filling in defaults.
    """
    d = json.loads(json.dumps(cfg if isinstance(cfg, dict) else dataclasses.asdict(cfg), default=str))
    skip = _RESUMABLE_CHANGES | (set() if d.get("use_da") else _DA_FIELDS)
    if d.get("alignment") == "dann":
        skip = skip | {"alignment"}
    return {k: v for k, v in d.items() if k not in skip}


#: The former name of :func:`training_request` (the ECAL experiment's request uses it).
result_config = training_request


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float
    stopped_early: bool
    finished: bool
    outdir: Path
    config: TrainConfig = field(repr=False, default=None)


# --------------------------------------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device='{name}' but no CUDA device is visible; use device='cpu' or 'auto'")
    return torch.device(name)


def default_collate(items: list[dict]) -> dict:
    """Stack dict items; ``x`` that are torch_geometric ``Data`` objects become a PyG ``Batch``."""
    x0 = items[0]["x"]
    if isinstance(x0, torch.Tensor):
        x = torch.stack([it["x"] for it in items])
    else:
        from torch_geometric.data import Batch

        x = Batch.from_data_list([it["x"] for it in items])
    out = {"x": x, "y": torch.tensor([int(it["y"]) for it in items], dtype=torch.long)}
    out["w"] = torch.tensor([float(it.get("w", 1.0)) for it in items], dtype=torch.float32)
    out["dw"] = torch.tensor([float(it.get("dw", 1.0)) for it in items], dtype=torch.float32)
    out["domain"] = torch.tensor([int(it.get("domain", 0)) for it in items], dtype=torch.long)
    return out


def to_device(batch, device: torch.device, channels_last: bool = False):
    """Move a batch (tensors, PyG batches, and dicts/lists of them) to ``device``; 4-D image ``x`` optionally
    channels-last."""
    if isinstance(batch, dict):
        out = {k: to_device(v, device) for k, v in batch.items()}
        x = out.get("x")
        if channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
            out["x"] = x.contiguous(memory_format=torch.channels_last)
        return out
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    if hasattr(batch, "to"):
        return batch.to(device, non_blocking=True)
    return batch


def _weights_of(batch: dict) -> torch.Tensor:
    w = batch.get("w")
    return w.float() if w is not None else torch.ones(len(batch["y"]), device=batch["y"].device)


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                  shuffle: bool = True, stream: int = 0) -> list[list[int]]:
    """This rank's index lists for one epoch: global batches of ``batch_size`` from a (seed, epoch) permutation,
    each split into ``world`` equal contiguous slices. A last global batch smaller than ``world`` is dropped."""
    if batch_size % world:
        raise ConfigError(f"batch_size={batch_size} must be a multiple of the number of processes ({world})")
    order = np.random.default_rng([seed, epoch, stream]).permutation(n) if shuffle else np.arange(n)
    out = []
    for start in range(0, n, batch_size):
        gb = order[start:start + batch_size]
        if len(gb) < world:
            break
        out.append(np.array_split(gb, world)[rank].tolist())
    return out


def dataset_labels(ds) -> np.ndarray:
    labels = getattr(ds, "labels", None)
    if labels is not None:
        return np.asarray(labels)
    return np.array([int(ds[i]["y"]) for i in range(len(ds))])


def class_weight_tensor(spec, labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """``balanced``: w_c = N / (n_classes N_c) over labeled events (seed 000: weighted CE for the imbalance)."""
    if spec == "none":
        return torch.ones(n_classes)
    if spec == "balanced":
        from ..metrics import balanced_class_weights

        return torch.tensor(balanced_class_weights(labels, n_classes), dtype=torch.float32)
    w = torch.tensor(spec, dtype=torch.float32)
    if w.numel() != n_classes:
        raise ConfigError(f"class_weights={spec}: need {n_classes} values, one per class")
    return w


class _Loader:
    """A DataLoader over precomputed index lists (batch_sampler), so the order is ours and resumable."""

    def __init__(self, ds, batches, collate_fn, cfg: TrainConfig, pin: bool):
        self.dl = torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate_fn,
                                              num_workers=cfg.num_workers, pin_memory=pin,
                                              persistent_workers=False)

    def __iter__(self):
        return iter(self.dl)

    def __len__(self):
        return len(self.dl)


_CORE_OUTPUTS = ("logits", "domain_logits", "features", "conditional_domain_logits")


def _model_out(model, x, lambda_):
    out = model(x, lambda_=lambda_)
    if isinstance(out, torch.Tensor):
        out = {"logits": out, "domain_logits": None, "features": None}
    return out


@torch.no_grad()
def predict(model: nn.Module, ds, batch_size: int = 512, device: str | torch.device = "cpu",
            collate_fn: Callable | None = None, features: bool = False, progress: bool = False,
            num_workers: int = 0) -> dict[str, np.ndarray]:
    """Outputs of ``model`` on a dataset, in dataset order.

    ``score`` = P(class 1) (the electron, the selected nucleus); for C > 2 classes also ``probs`` (n, C);
    ``domain_score`` = P(target) of the domain head (NaN without one); ``label``, ``weight``; ``features`` when
    asked for. Any other tensor the model's output dict holds (e.g. the MDA's ``attention``) is returned under its
    own name. Inputs that are not image tensors (the nuclei graphs) need their ``collate_fn``.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    collate_fn = collate_fn or default_collate
    was_training = model.training
    model.eval()
    batches = [list(range(i, min(i + batch_size, len(ds)))) for i in range(0, len(ds), batch_size)]
    dl = torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate_fn, num_workers=num_workers)
    out: dict[str, list] = {"score": [], "domain_score": [], "label": [], "weight": [], "loss_terms": []}
    probs, feats, extra = [], [], {}
    for batch in tqdm(dl, desc="predict", disable=not progress, leave=False):
        batch = to_device(batch, device)
        o = _model_out(model, batch["x"], 0.0)
        logits = o["logits"].float()
        p = torch.softmax(logits, 1)
        out["score"].append(p[:, 1].cpu().numpy())
        if p.shape[1] > 2:
            probs.append(p.cpu().numpy())
        d = o.get("domain_logits")
        out["domain_score"].append(torch.softmax(d.float(), 1)[:, 1].cpu().numpy() if d is not None
                                   else np.full(len(logits), np.nan, np.float32))
        out["label"].append(batch["y"].long().cpu().numpy())
        out["weight"].append(_weights_of(batch).cpu().numpy())
        y = batch["y"].long()
        ce = F.cross_entropy(logits, y.clamp(min=0), reduction="none") * (y >= 0)
        out["loss_terms"].append(ce.cpu().numpy())
        if features and o.get("features") is not None:
            feats.append(o["features"].float().cpu().numpy())
        for k, v in o.items():
            if k not in _CORE_OUTPUTS and isinstance(v, torch.Tensor):
                extra.setdefault(k, []).append(v.detach().float().cpu().numpy())
    model.train(was_training)
    res = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}
    if probs:
        res["probs"] = np.concatenate(probs)
    if features:
        res["features"] = np.concatenate(feats) if feats else np.zeros((0, 0))
    res.update({k: np.concatenate(v) for k, v in extra.items() if k not in res})
    return res


def default_metrics(pred: dict[str, np.ndarray], efficiency: float = 0.9) -> dict[str, float]:
    """Validation metrics: loss, accuracy, ROC AUC (:func:`amsnb.metrics.roc_auc`) and the proton rejection at
    ``efficiency`` (:func:`amsnb.metrics.rejection_at_efficiency`).

    With more than two classes (``pred["probs"]``): loss and accuracy (arg-max) only.
    """
    from ..metrics import rejection_at_efficiency, roc_auc

    lab = pred["label"]
    m = lab >= 0
    if "probs" in pred:
        return {"val_loss": float(pred["loss_terms"][m].mean()) if m.any() else float("nan"),
                "val_acc": float((pred["probs"][m].argmax(1) == lab[m]).mean()) if m.any() else float("nan")}
    out = {"val_loss": float(pred["loss_terms"][m].mean()) if m.any() else float("nan"),
           "val_acc": float(((pred["score"][m] >= 0.5) == (lab[m] == 1)).mean()) if m.any() else float("nan")}
    if m.any() and len(np.unique(lab[m])) == 2:
        out["auc"] = roc_auc(pred["score"][m], lab[m])
        rp = rejection_at_efficiency(pred["score"][m], lab[m], efficiency=efficiency)
        out["rejection"] = float(rp.rejection)
        out["rejection_lo"] = float(rp.rejection_lo)
        out["rejection_is_limit"] = float(rp.is_lower_limit)
    return out


# --------------------------------------------------------------------------------------------- fit
def fit(model: nn.Module, train, val=None, target=None, config: TrainConfig | dict | None = None,
        outdir: str | os.PathLike = "train_out", collate_fn: Callable | None = None,
        metric_fn: Callable[[dict], dict] | None = None,
        callbacks: list[Callable[[list[dict]], None]] | None = None) -> TrainResult:
    """Train ``model`` on ``train`` (dict items), validate on ``val`` every epoch, adapt to ``target`` if DA is on.

    Writes ``outdir/checkpoint/``, ``outdir/metrics.csv`` (one row per epoch) and ``outdir/best.safetensors`` (the
    best epoch of the early-stopping metric so far) every ``config.checkpoint_every`` epochs and always at the end
    of the call, plus ``outdir/train_config.json``. Resumes from an existing checkpoint when ``config.resume``.
    Returns the model with the best epoch's weights loaded (``restore_best``).

    Early stopping watches ``config.early_stopping_metric``; without it (no validation set, or one class only) the
    validation loss, else the training *label* loss (not the total loss with the adversarial domain term). The
    DANN lambda ramp and the cosine learning rate span the configured ``epochs``, not the epochs actually run.
    The number of classes is the last dimension of the model's logits. The caller's torch/numpy/python RNG
    states and torch thread count are restored on return (also on exceptions).
    ``callbacks`` are called with the history after every epoch (live curves in a notebook).
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {})
    if cfg.use_da and target is None:
        raise ConfigError("use_da=True needs a target dataset (e.g. the unlabeled iss_target set)")
    if len(train) == 0:
        raise EmptySelectionError("the training set is empty; check the selection or max_train_events")
    with _caller_state_kept():
        if cfg.cpu_threads:
            torch.set_num_threads(int(cfg.cpu_threads))
        torch.manual_seed(cfg.seed)
        run = _setup(model, train, cfg, Path(outdir), collate_fn, metric_fn)
        opt, sched = _optimizer(model, cfg, run.total_steps)
        state = _resume(run, model, opt, sched, data_identity(train, val, target if cfg.use_da else None))
        stopped_early = state["bad_epochs"] >= cfg.patience
        while state["epoch"] < cfg.epochs and not stopped_early and not _sliced(cfg, state["epoch"]):
            row = _train_epoch(run, opt, sched, state, train, target)
            if val is not None:
                row.update(run.metric_fn(predict(model, val, cfg.eval_batch_size, run.device, run.collate_fn)))
            stopped_early = _early_stopping(run, model, state, row)
            _write_epoch(run, model, opt, sched, state, row, stopped_early)
            for cb in callbacks or []:
                cb(state["history"])
        return _result(run, model, state, stopped_early)


@contextlib.contextmanager
def _caller_state_kept():
    """Run the body with the torch (CPU and CUDA), numpy and python RNG states and the torch thread count restored
    afterwards: ``fit`` seeds torch and a resumed checkpoint sets every RNG, none of which must leak out."""
    threads = torch.get_num_threads()
    np_state, py_state = np.random.get_state(), random.getstate()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@dataclass
class _Run:
    """What the steps of one ``fit`` call share: config, devices, the (DDP-wrapped) network, schedule lengths."""

    cfg: TrainConfig
    outdir: Path
    rank: int
    world: int
    device: torch.device
    net: nn.Module
    use_cl: bool
    amp: bool
    pin: bool
    collate_fn: Callable
    metric_fn: Callable
    labels: np.ndarray
    steps: int
    total_steps: int
    cw: torch.Tensor | None = None  # class weights, set on the first batch (the model's number of classes)
    board: Any = None
    best_weights: dict | None = None  # the best epoch's weights while not yet written (checkpoint_every != 1)


def _setup(model, train, cfg: TrainConfig, outdir: Path, collate_fn, metric_fn) -> _Run:
    """Output folder, device, model placement (channels-last, SyncBatchNorm + DDP under torchrun), steps."""
    outdir.mkdir(parents=True, exist_ok=True)
    rank, world = dist_info()
    device = resolve_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if cfg.use_da and cfg.alignment.startswith("cdan") and getattr(model, "conditional_head", False) is None:
        from ..models.layers import add_conditional_head

        add_conditional_head(model)  # before the optimizer, DDP and the resume: a part of the model like any other
    model.to(device)
    use_cl = cfg.channels_last and device.type == "cuda"
    if use_cl:
        model.to(memory_format=torch.channels_last)
    net = model
    if world > 1:
        if device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                                  find_unused_parameters=not (cfg.use_da and cfg.alignment == "dann"))
    steps = len(epoch_batches(len(train), cfg.batch_size, cfg.seed, 0, rank, world))
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    return _Run(cfg=cfg, outdir=outdir, rank=rank, world=world, device=device, net=net, use_cl=use_cl,
                amp=cfg.amp and device.type == "cuda", pin=device.type == "cuda",
                collate_fn=collate_fn or default_collate,
                metric_fn=metric_fn or (lambda pred: default_metrics(pred, cfg.efficiency)),
                labels=dataset_labels(train), steps=steps, total_steps=max(1, steps * cfg.epochs),
                board=_tensorboard(outdir) if rank == 0 else None)


def _optimizer(model, cfg: TrainConfig, total_steps: int):
    """Adam over the trainable parameters and the warm-up + cosine (or constant) learning-rate schedule."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                           weight_decay=cfg.weight_decay)

    def lr_factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        p = min(step / total_steps, 1.0)
        return cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * p))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)


def data_identity(train, val=None, target=None) -> dict[str, str | None]:
    """What ``fit`` trains on, for the resume check: each dataset's ``identity`` (a digest of its items, provided
    by amsnb's datasets) or, for a dataset without one, its length and a digest of its labels."""
    from ..provenance import array_digest

    def one(ds):
        if ds is None:
            return None
        ident = getattr(ds, "identity", None)
        if ident is not None:
            return str(ident)
        labels = getattr(ds, "labels", None)
        return f"len:{len(ds)}" + (f":{array_digest(np.asarray(labels))}" if labels is not None else "")

    return {"train": one(train), "val": one(val), "target": one(target)}


def _resume(run: _Run, model, opt, sched, data: dict) -> dict:
    """The training state: fresh, or restored from ``outdir``'s checkpoint if it was written with the same config
    *and the same data* (weights, optimizer, scheduler and RNG states are loaded in place); otherwise one line
    says what changed and training starts afresh in the same folder. Writes ``train_config.json``."""
    from .. import provenance

    cfg = run.cfg
    state = {"epoch": 0, "global_step": 0, "best_metric": None, "best_epoch": -1, "bad_epochs": 0, "history": [],
             "config": dataclasses.asdict(cfg), "data": data}
    ckpt = find_checkpoint(run.outdir) if cfg.resume else None
    if ckpt is not None:
        changed = _config_changes(ckpt, cfg)
        old_data = json.loads((ckpt / "state.json").read_text()).get("data")
        moved = sorted(k for k in data if (old_data or {}).get(k) != data[k])
        if moved:
            changed = ", ".join(filter(None, [changed, f"{'/'.join(moved)} data changed"]))
        if changed:
            if run.rank == 0:
                provenance.report(str(run.outdir), "compute", f"checkpoint of another run ({changed})",
                                  "training afresh")
            ckpt = None
    if ckpt is not None:
        js = load_checkpoint(ckpt, model, opt, sched, run.device)
        state.update({k: v for k, v in js.items() if k not in ("optimizer", "scheduler", "rng", "config", "data")})
    if run.rank == 0:
        (run.outdir / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    return state


def _sliced(cfg: TrainConfig, epoch: int) -> bool:
    """This call ends before ``epoch`` (time-sliced runs: ``stop_after_epoch``)."""
    return cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch


def _train_epoch(run: _Run, opt, sched, state: dict, train, target) -> dict:
    """One pass over this epoch's batches (and target batches with DA); returns the epoch's training row."""
    from tqdm.auto import tqdm

    cfg, epoch = run.cfg, state["epoch"]
    run.net.train()
    batches = epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch, run.rank, run.world)[:run.steps]
    loader = _Loader(train, batches, run.collate_fn, cfg, run.pin)
    tgt_iter = _target_stream(target, cfg, epoch, run.rank, run.world, run.collate_fn, run.pin, len(batches)) \
        if cfg.use_da else None
    sums = {"loss": 0.0, "label_loss": 0.0, "domain_loss": 0.0, "acc_n": 0.0, "acc_k": 0.0,
            "dom_n": 0.0, "dom_k": 0.0, "wait": 0.0, "lambda": 0.0}
    t0 = time.perf_counter()
    bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress or run.rank,
               leave=False)
    it = iter(loader)
    for _ in range(len(batches)):
        tw = time.perf_counter()
        batch = to_device(next(it), run.device, run.use_cl)
        batch["y"] = batch["y"].long()
        tb = to_device(next(tgt_iter), run.device, run.use_cl) if tgt_iter is not None else None
        sums["wait"] += time.perf_counter() - tw
        loss = _train_step(run, opt, sched, state, batch, tb, sums)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
    bar.close()
    dt = time.perf_counter() - t0
    nb = max(len(batches), 1)
    return {"epoch": epoch + 1, "loss": sums["loss"] / nb, "label_loss": sums["label_loss"] / nb,
            "domain_loss": sums["domain_loss"] / nb if cfg.use_da else float("nan"),
            "acc": sums["acc_k"] / max(sums["acc_n"], 1),
            "domain_acc": sums["dom_k"] / sums["dom_n"] if sums["dom_n"] else float("nan"),
            "lambda": sums["lambda"] / nb, "lr": opt.param_groups[0]["lr"], "seconds": dt,
            "images_per_s": sum(len(b) for b in batches) * run.world / max(dt, 1e-9),
            "data_wait_frac": sums["wait"] / max(dt, 1e-9)}


def _train_step(run: _Run, opt, sched, state: dict, batch: dict, tb: dict | None, sums: dict) -> float:
    """Forward (source and target), weighted label loss + domain loss, one optimizer and scheduler step; adds the
    step's numbers to ``sums`` and returns the total loss."""
    cfg, device = run.cfg, run.device
    lam = lambda_at(cfg.lambda_schedule, state["global_step"] / run.total_steps, cfg.lambda_max) \
        if cfg.use_da else 0.0
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.amp):
        o, ot = _forward_pair(run.net, batch["x"], tb["x"] if tb is not None else None, lam)
        if run.cw is None:
            run.cw = _class_weights(cfg, run.labels, o["logits"])
        label_loss = weighted_ce(o["logits"], batch["y"], _weights_of(batch), run.cw, run.world)
        loss = label_loss
        dloss = torch.zeros(())
        if tb is not None:
            dloss = _domain_loss(run, o, ot, batch, tb, sums, lam)
            loss = loss + cfg.domain_weight * dloss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    state["global_step"] += 1
    m = batch["y"] >= 0
    sums["acc_n"] += float(m.sum())
    sums["acc_k"] += float(((o["logits"].argmax(1) == batch["y"]) & m).sum())
    sums["loss"] += float(loss.detach())
    sums["label_loss"] += float(label_loss.detach())
    sums["domain_loss"] += float(dloss.detach())
    sums["lambda"] += lam
    return float(loss.detach())


def _domain_loss(run: _Run, o: dict, ot: dict, batch: dict, tb: dict, sums: dict, lam: float) -> torch.Tensor:
    """The alignment loss of a DA step (:mod:`amsnb.train.losses`) from the source and target outputs ``o``, ``ot``
    of the batches ``batch``, ``tb`` (per-event domain weights: their ``dw``); adds the adversary's hits to
    ``sums``. The one place that picks the alignment loss (``TrainConfig.alignment``): the adversarial ones
    (DANN's :func:`domain_adversarial_loss`, CDAN's :func:`conditional_adversarial_loss`) get lambda through the
    model's gradient reversal; the feature-matching ones (:func:`coral_loss`, :func:`mmd_loss`) are multiplied by
    it."""
    method, dws, dwt = run.cfg.alignment, batch.get("dw"), tb.get("dw")
    if method in ("coral", "mmd"):
        if o.get("features") is None:
            raise ConfigError(f"alignment='{method}' needs the model's features (an output dict with 'features')")
        fn = coral_loss if method == "coral" else mmd_loss
        return lam * fn(o["features"], ot["features"], dws, dwt, run.world)
    key = "domain_logits" if method == "dann" else "conditional_domain_logits"
    ds, dt = o.get(key), ot.get(key)
    if ds is None:
        raise ConfigError("use_da=True but the model has no domain head (build it with domain_head=True)"
                          if method == "dann" else f"alignment='{method}' but the model gives no "
                          "conditional_domain_logits (use amsnb.models.layers.DomainAdversarialModel)")
    sums["dom_n"] += len(ds) + len(dt)
    sums["dom_k"] += float((ds.float().argmax(1) == 0).sum() + (dt.float().argmax(1) == 1).sum())
    if method == "dann":
        return domain_adversarial_loss(ds, dt, dws, dwt, run.world)
    ent = (o["logits"], ot["logits"]) if method == "cdan+e" else (None, None)
    return conditional_adversarial_loss(ds, dt, dws, dwt, run.world, *ent)


def _class_weights(cfg: TrainConfig, labels: np.ndarray, logits: torch.Tensor) -> torch.Tensor:
    """Class weights for the number of classes the model predicts (the last dimension of its logits)."""
    n_classes = int(logits.shape[-1])
    if n_classes < 2:
        raise ConfigError(f"the model returns logits of shape {tuple(logits.shape)}: need one logit per class "
                          "(>= 2 classes)")
    lab = labels[labels >= 0]
    if len(lab) and int(lab.max()) >= n_classes:
        raise ConfigError(f"training labels go up to {int(lab.max())} but the model predicts {n_classes} classes")
    return class_weight_tensor(cfg.class_weights, labels, n_classes)


def _early_stopping(run: _Run, model, state: dict, row: dict) -> bool:
    """Book the finished epoch (history, best metric, patience counter); returns whether training stops early.
    An improvement keeps the weights as the best ones (written now or kept until the next write)."""
    cfg = run.cfg
    state["epoch"] += 1
    state["history"].append(row)
    value, mode = _monitored(row, cfg.early_stopping_metric)
    if _better(value, state["best_metric"], mode, row, state):
        state["best_metric"], state["best_epoch"], state["bad_epochs"] = value, state["epoch"], 0
        run.best_weights = None
        if run.rank == 0 and cfg.checkpoint_every != 1:
            run.best_weights = _weights_copy(model)
        elif run.rank == 0:
            from safetensors.torch import save_model as st_save

            st_save(model, str(run.outdir / "best.safetensors"))
    else:
        state["bad_epochs"] += 1
    return state["bad_epochs"] >= cfg.patience


def _write_epoch(run: _Run, model, opt, sched, state: dict, row: dict, stopped_early: bool) -> None:
    """TensorBoard scalars every epoch; the checkpoint, metrics.csv and pending best weights every
    ``checkpoint_every`` epochs and at the end of the call (so a later call resumes or returns the finished
    model). Ranks meet at a barrier under DDP."""
    cfg, epoch = run.cfg, state["epoch"]
    last = epoch >= cfg.epochs or stopped_early or _sliced(cfg, epoch)
    due = last or (cfg.checkpoint_every > 0 and epoch % cfg.checkpoint_every == 0)
    if run.rank == 0:
        if due:
            if run.best_weights is not None:
                _save_weights(run.best_weights, run.outdir / "best.safetensors")
                run.best_weights = None
            save_checkpoint(run.outdir, model, opt, sched, dict(state))
            _write_csv(run.outdir / "metrics.csv", state["history"])
        if run.board is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    run.board.add_scalar(k, v, epoch)
            run.board.flush()
    if run.world > 1:
        torch.distributed.barrier()


def _weights_copy(model) -> dict[str, torch.Tensor]:
    """A CPU copy of the state dict with one name per shared tensor (tied weights), as safetensors stores them."""
    out, seen = {}, set()
    for k, v in model.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)) if v.numel() else None
        if key is not None and key in seen:
            continue
        seen.add(key)
        out[k] = v.detach().to("cpu", copy=True)
    return out


def _save_weights(state_dict: dict, path: Path) -> None:
    """A state dict from :func:`_weights_copy` as safetensors (loadable with ``safetensors.torch.load_model``),
    written atomically."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".part")
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(tmp))
    os.replace(tmp, path)


def _result(run: _Run, model, state: dict, stopped_early: bool) -> TrainResult:
    """The TrainResult; a finished run ends with the best epoch's weights (``restore_best``)."""
    from safetensors.torch import load_model as st_load

    cfg = run.cfg
    finished = state["epoch"] >= cfg.epochs or stopped_early
    best = run.outdir / "best.safetensors"
    if finished and cfg.restore_best and best.exists():
        st_load(model, str(best), strict=True, device=str(run.device))
    return TrainResult(model=model, history=state["history"], best_epoch=state["best_epoch"],
                       best_metric=state["best_metric"], stopped_early=stopped_early, finished=finished,
                       outdir=run.outdir, config=cfg)


def _forward_pair(net, xs, xt, lam):
    """Source (and target) outputs. Tensor inputs go through one forward on the concatenation (one DDP forward
    per backward, and the target shares the BatchNorm batch as in Ganin's implementation); other inputs (PyG
    batches) go through two forwards."""
    if xt is None:
        return _model_out(net, xs, lam), None
    if isinstance(xs, torch.Tensor) and isinstance(xt, torch.Tensor):
        o = _model_out(net, torch.cat([xs, xt]), lam)
        n = len(xs)
        split = {k: (v[:n] if isinstance(v, torch.Tensor) else v) for k, v in o.items()}
        rest = {k: (v[n:] if isinstance(v, torch.Tensor) else v) for k, v in o.items()}
        return split, rest
    return _model_out(net, xs, lam), _model_out(net, xt, lam)


def _monitored(row: dict, key: str) -> tuple[float, str]:
    """The early-stopping value of an epoch and its direction; without that metric (no validation set, or a
    validation set with one class) the validation loss, else the training label loss (the total loss of a DANN
    run holds the adversarial domain term, which rises as the features become domain-invariant)."""
    if key in row:
        return row[key], METRIC_MODES.get(key, "max")
    if "val_loss" in row:
        return row["val_loss"], "min"
    return row["label_loss"], "min"


def _better(value, best, mode, row, state) -> bool:
    """Improvement of the early-stopping metric; ties (e.g. a rejection at its lower limit when no proton
    passes) are broken by a lower validation loss (training label loss without validation)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return best is None
    if best is None:
        state["best_tiebreak"] = row.get("val_loss", row["label_loss"])
        return True
    better = value > best if mode == "max" else value < best
    if value == best:
        tb = row.get("val_loss", row["label_loss"])
        better = tb < state.get("best_tiebreak", float("inf"))
    if better:
        state["best_tiebreak"] = row.get("val_loss", row["label_loss"])
    return better


def _target_stream(target, cfg, epoch, rank, world, collate_fn, pin, steps):
    """``steps`` target batches of the source's global batch size (this rank's slice): the target order is a
    chain of (seed, epoch, cycle) permutations, so a small target set is cycled and the stream is resumable."""
    if len(target) == 0:
        raise EmptySelectionError("the DANN target set is empty; check the iss_target selection")
    need = steps * cfg.batch_size
    order, cycle = [], 0
    while sum(len(o) for o in order) < need:
        order.append(np.random.default_rng([cfg.seed, epoch, 1000 + cycle]).permutation(len(target)))
        cycle += 1
    flat = np.concatenate(order)[:need]
    batches = [np.array_split(flat[k:k + cfg.batch_size], world)[rank].tolist()
               for k in range(0, need, cfg.batch_size)]
    return iter(_Loader(target, batches, collate_fn, cfg, pin))


def _config_changes(ckpt: Path, cfg: TrainConfig) -> str:
    """Fields of the checkpoint's config that differ from ``cfg`` (those of :func:`training_request`)."""
    old = training_request(json.loads((ckpt / "state.json").read_text()).get("config", {}))
    new = training_request(cfg)
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(diff)


def _tensorboard(outdir: Path):
    """A TensorBoard writer in ``outdir/tensorboard`` if the tensorboard package is installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(outdir / "tensorboard"))


def _write_csv(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_suffix(".csv.part")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def read_history(path: str | os.PathLike) -> list[dict]:
    """The metrics.csv of a run as a list of dicts (numbers as floats)."""
    with open(path) as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(f)]
