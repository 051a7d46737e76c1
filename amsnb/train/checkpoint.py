"""Per-epoch checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``model.safetensors`` (weights), ``state.safetensors`` (optimizer moment tensors, torch
RNG states) and ``state.json`` (epoch, best metric, history, optimizer scalars and param groups, scheduler state,
numpy/python RNG states). It is written to ``checkpoint.tmp`` and swapped in by renames, so a run killed while
writing leaves the previous complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import InputFileError

CKPT = "checkpoint"


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, st in state["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"opt.{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], js: dict) -> dict:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    for idx, st in js["scalars"].items():
        state.setdefault(int(idx), {}).update(st)
    return {"state": state, "param_groups": js["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    js = {"numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]], "python": _py_state()}
    return tensors, js


def _py_state():
    v, internal, gauss = random.getstate()
    return [v, list(internal), gauss]


def set_rng_state(tensors: dict[str, torch.Tensor], js: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    n = js["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    p = js["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def save_checkpoint(outdir: Path, model: torch.nn.Module, optimizer, scheduler, state: dict) -> Path:
    """Write ``outdir/checkpoint`` atomically (tmp folder + renames)."""
    from safetensors.torch import save_file, save_model

    outdir = Path(outdir)
    tmp, final, old = outdir / f"{CKPT}.tmp", outdir / CKPT, outdir / f"{CKPT}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    opt_t, opt_js = _split_optimizer(optimizer.state_dict())
    rng_t, rng_js = rng_state()
    save_file({**opt_t, **rng_t}, str(tmp / "state.safetensors"))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"} if scheduler is not None else None
    js = dict(state, optimizer=opt_js, scheduler=sched, rng=rng_js)
    (tmp / "state.json").write_text(json.dumps(js, default=float))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(outdir: Path) -> Path | None:
    for name in (CKPT, f"{CKPT}.old"):
        p = Path(outdir) / name
        if (p / "state.json").exists() and (p / "model.safetensors").exists():
            return p
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler, device) -> dict:
    """Restore model, optimizer, scheduler and RNG states; returns the JSON state (epoch, best, history...)."""
    from safetensors.torch import load_file, load_model

    try:
        js = json.loads((path / "state.json").read_text())
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
        tensors = load_file(str(path / "state.safetensors"))
    except Exception as exc:
        raise InputFileError(f"{path}: cannot resume from this checkpoint ({exc}); delete the folder to start "
                             "afresh, or use another outdir") from exc
    opt = _join_optimizer(tensors, js["optimizer"])
    optimizer.load_state_dict(opt)
    if scheduler is not None and js.get("scheduler"):
        scheduler.load_state_dict(dict(js["scheduler"], lr_lambdas=[None] * len(optimizer.param_groups)))
    set_rng_state(tensors, js["rng"])
    return js
