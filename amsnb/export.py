"""Export a trained model: safetensors weights + config JSON (amsnb.models.save_model) and ONNX.

The ONNX graph takes raw ECAL images in MeV, (batch, 1, 18, 72) with a dynamic batch axis, and returns the label
logits (the input transform is inside the model, so other frameworks need no amsnb code). Every export is checked
against onnxruntime on random and, when given, real inputs; the maximum absolute difference of the logits is
returned and written to ``export.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .models.registry import IMAGE_SHAPE, save_model


class LogitsOnly(nn.Module):
    """ONNX wants tensors out: the label logits of ``model(x)['logits']``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return out["logits"] if isinstance(out, dict) else out


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...] = IMAGE_SHAPE,
                opset: int = 18) -> Path:
    """Write ``path`` (.onnx) with input ``images`` (dynamic batch) and output ``logits``, through torch's
    ``torch.export``-based exporter (the TorchScript one is deprecated); opset 18 is its native one (no version
    conversion)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LogitsOnly(model).eval().cpu()
    example = torch.rand(2, *input_shape) * 50.0
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(wrapper, (example,), input_names=["images"], output_names=["logits"],
                                dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True,
                                external_data=False, verbose=False)
    program.save(str(path))
    return path


def check_onnx(model: nn.Module, path: str | os.PathLike, inputs: np.ndarray) -> float:
    """Max |logits_torch - logits_onnxruntime| over ``inputs`` (float32 array of model inputs)."""
    import onnxruntime as ort

    x = np.ascontiguousarray(inputs, dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"images": x})[0]
    with torch.no_grad():
        ref = LogitsOnly(model).eval().cpu()(torch.from_numpy(x)).numpy()
    if got.shape != ref.shape:
        raise ConfigError(f"{path}: ONNX output shape {got.shape} differs from torch {ref.shape}")
    return float(np.abs(got - ref).max())


def export_model(folder: str | os.PathLike, model: nn.Module, name: str | None = None, config=None,
                 extra: dict | None = None, real_inputs: np.ndarray | None = None, onnx: bool = True,
                 n_random: int = 16, seed: int = 0) -> dict:
    """Save the model folder (safetensors + config) and ``model.onnx``; returns the check summary."""
    folder = Path(folder)
    model = model.eval().cpu()
    save_model(folder, model, name, config, extra)
    summary: dict = {"folder": str(folder)}
    if onnx:
        path = export_onnx(model, folder / "model.onnx")
        rng = np.random.default_rng(seed)
        rand = (rng.exponential(20.0, (n_random, *IMAGE_SHAPE)) * (rng.random((n_random, *IMAGE_SHAPE)) < 0.3))
        summary["onnx"] = str(path)
        summary["max_abs_diff_random"] = check_onnx(model, path, rand.astype(np.float32))
        if real_inputs is not None and len(real_inputs):
            summary["max_abs_diff_real"] = check_onnx(model, path, np.asarray(real_inputs, np.float32))
    (folder / "export.json").write_text(json.dumps(summary, indent=2))
    return summary
