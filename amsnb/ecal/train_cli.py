"""``amsnb train --config FILE``: train a registry model on ECAL sets from a YAML/JSON config; DDP under torchrun.

The same entry point serves one CPU, one GPU, or several GPUs/nodes::

    amsnb train --config run.yaml
    torchrun --nproc_per_node 4 -m amsnb.ecal.train_cli --config run.yaml

Config keys: ``model`` (registry name), ``model_config`` (preset name or dict), ``train`` / ``val`` / ``target``
(ROOT files in the ECAL schema, or cache folders), ``outdir``, ``cache_dir`` (default ``outdir/cache``),
``max_train_events``, ``val_fraction`` (when ``val`` is omitted: a split of ``train``), and ``train_config``
(fields of :class:`amsnb.train.TrainConfig`). Under torchrun the process group is initialised from the
environment (backend nccl on CUDA, gloo on CPU); only rank 0 writes files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError


def load_config(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--config {p}: no such file")
    text = p.read_text()
    if p.suffix in (".yaml", ".yml"):
        import yaml

        cfg = yaml.safe_load(text)
    else:
        cfg = json.loads(text)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{p}: the config must be a mapping (model, train, outdir, train_config, ...)")
    for key in ("model", "train", "outdir"):
        if key not in cfg:
            raise ConfigError(f"{p}: missing key '{key}'")
    return cfg


def _dataset(spec, cache_dir: Path, max_events=None, unlabeled=False):
    from .cache import EcalDataset, build_cache

    p = Path(spec)
    if p.is_dir():
        folder = p
    else:
        import hashlib

        import torch

        # one cache folder per source path (files of the same name in different folders must not collide)
        name = f"{p.stem}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:8]}"
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        if dist and torch.distributed.get_rank() != 0:
            torch.distributed.barrier()  # rank 0 builds the cache first; the others then reuse it
            folder = build_cache(p, cache_dir, progress=False, name=name)
        else:
            folder = build_cache(p, cache_dir, progress=False, name=name)
            if dist:
                torch.distributed.barrier()
    ds = EcalDataset(folder, unlabeled=unlabeled)
    return ds.subset(max_events) if max_events else ds


def run(cfg: dict):
    """Build, train and save; returns the TrainResult (rank 0 saves ``outdir/model``)."""
    import torch

    from ..models import build, save_model
    from ..train.trainer import TrainConfig, fit

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    tcfg = TrainConfig.from_dict(cfg.get("train_config", {}))
    outdir = Path(cfg["outdir"])
    cache_dir = Path(cfg.get("cache_dir", outdir / "cache"))
    train = _dataset(cfg["train"], cache_dir, cfg.get("max_train_events"))
    if cfg.get("val"):
        val = _dataset(cfg["val"], cache_dir)
    else:
        val, train = train.split(float(cfg.get("val_fraction", 0.2)), seed=tcfg.seed)
    target = _dataset(cfg["target"], cache_dir, unlabeled=True) if cfg.get("target") else None
    model = build(cfg["model"], cfg.get("model_config"), seed=tcfg.seed)
    result = fit(model, train, val, target, tcfg, outdir / "train")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    if rank == 0 and result.finished:
        save_model(outdir / "model", result.model.cpu(), cfg["model"], cfg.get("model_config"),
                   extra={"best_epoch": result.best_epoch, "best_metric": result.best_metric,
                          "train_config": cfg.get("train_config", {})})
    if distributed:
        torch.distributed.destroy_process_group()
    return result


def main(argv: list[str] | None = None) -> int:
    from ..cliargs import ArgumentParser

    ap = ArgumentParser(prog="amsnb train", description="train an amsnb model (DDP under torchrun)")
    ap.add_argument("--config", required=True, help="YAML or JSON run config (see docs/training.md)")
    args = ap.parse_args(argv)
    result = run(load_config(args.config))
    h = result.history[-1] if result.history else {}
    print(f"trained {len(result.history)} epoch(s); best epoch {result.best_epoch}, "
          f"best metric {result.best_metric}; last: {json.dumps(h, default=str)[:300]}")
    return 0


cli_main = main

if __name__ == "__main__":
    raise SystemExit(main())
