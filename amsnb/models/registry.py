"""One registry for every amsnb model: build from a name + dataclass config, save/load as safetensors + JSON.

A model folder holds ``model.safetensors`` (weights) and ``config.json`` (registry name, the full config dataclass
as a dict, the input transform, and ``extra``: normalisation constants, training provenance...). That is enough
to rebuild the model through :func:`build`, so no pickle and no ``torch.load`` of files from elsewhere.

Models register with the :func:`register` decorator in their own module. The core models (``cnn``, ``cvt``,
``coatnet``) are imported on first use; a model of another module (e.g. the nuclei study's ``mda`` in
``amsnb.nuclei.model``) is known once that module is imported. :func:`save_model` records the builder's module in
``config.json`` (``"module"``), and :func:`load_model` imports it when the name is not registered yet, but only a
module of this package (``amsnb.*``): a file never makes us import arbitrary code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, InputFileError

_BUILDERS: dict[str, tuple[Callable[[Any], nn.Module], type]] = {}
_MODULES: dict[str, str] = {}  # registry name -> module of its builder (recorded by save_model)
_LAZY = {"cnn": "amsnb.models.cnn", "cvt": "amsnb.models.cvt", "coatnet": "amsnb.models.coatnet"}
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


def register(name: str, config_cls: type):
    """Decorator: ``@register("cvt", CvtConfig)`` on a function ``config -> nn.Module``.

    ``config_cls`` is a dataclass; an optional class attribute ``PRESETS`` maps preset names to field overrides.
    """

    def deco(fn):
        _BUILDERS[name] = (fn, config_cls)
        _MODULES[name] = fn.__module__
        return fn

    return deco


def _lookup(name: str, module: str | None = None):
    """The (builder, config class) of ``name``; imports ``_LAZY[name]`` or ``module`` (an ``amsnb.*`` module, e.g.
    the one a saved model's config.json names) if the name is not registered yet."""
    if name not in _BUILDERS and name in _LAZY:
        import_module(_LAZY[name])
    if name not in _BUILDERS and module:
        if module != "amsnb" and not module.startswith("amsnb."):
            raise ConfigError(f"model '{name}' would need module '{module}', which is not part of amsnb; import "
                              "the module that registers it yourself before loading")
        import_module(module)
    if name not in _BUILDERS:
        known = sorted(set(_BUILDERS) | set(_LAZY))
        raise ConfigError(f"model '{name}' is not registered; known models: {', '.join(known)} (a model of "
                          "another module is known once that module is imported, e.g. amsnb.nuclei.model)")
    return _BUILDERS[name]


def available() -> list[str]:
    return sorted(set(_BUILDERS) | set(_LAZY))


def presets(name: str) -> list[str]:
    _, cls = _lookup(name)
    return list(getattr(cls, "PRESETS", {}))


def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def make_config(name: str, config=None):
    """The config dataclass of model ``name`` from None (defaults), a preset name, a dict or a dataclass.

    A dict may hold ``"preset"``: the preset's values are applied first, the dict's other keys override them.
    """
    _, cls = _lookup(name)
    if isinstance(config, cls):
        return config
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    if config is None:
        config = {}
    if isinstance(config, str):
        config = {"preset": config}
    if not isinstance(config, dict):
        raise ConfigError(f"model '{name}': config must be None, a preset name, a dict or {cls.__name__}")
    config = dict(config)
    table = getattr(cls, "PRESETS", {})
    values: dict[str, Any] = {}
    preset = config.get("preset")
    if preset is not None:
        if preset not in table:
            raise ConfigError(f"model '{name}': unknown preset '{preset}'; presets: {', '.join(table) or 'none'}")
        values.update(table[preset])
    values.update(config)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"model '{name}': unknown config key(s) {unknown}; valid keys: {', '.join(sorted(fields))}")
    return cls(**{k: _tuples(v) for k, v in values.items()})


def build(name: str, config=None, seed: int | None = None, module: str | None = None) -> nn.Module:
    """Build model ``name`` (``cnn``, ``cvt``, ``coatnet``, ``mda``, ...) from its config; weights are random.

    ``seed`` makes the initial weights reproducible across processes (torch's default generator is seeded
    randomly per process) without touching the global RNG state; ``None`` draws from the global generator.
    ``module`` (an ``amsnb.*`` module) is imported first if ``name`` is not registered yet.
    The returned module carries ``amsnb_name`` and ``amsnb_config`` so :func:`save_model` can describe it.
    """
    fn, _ = _lookup(name, module)
    cfg = make_config(name, config)
    if seed is None:
        model = fn(cfg)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = fn(cfg)
    model.amsnb_name = name
    model.amsnb_config = cfg
    return model


def save_model(folder: str | os.PathLike, model: nn.Module, name: str | None = None, config=None,
               extra: dict | None = None) -> Path:
    """Write ``folder/model.safetensors`` + ``folder/config.json`` (name, builder module, config, input transform,
    extra). CDAN's conditional adversary (``conditional_head``, added by :func:`amsnb.train.fit` for
    ``alignment="cdan"``) is a training-only part that the registry does not build, so it is not saved."""
    from safetensors.torch import save_model as st_save

    name = name or getattr(model, "amsnb_name", None)
    if name is None:
        raise ConfigError("save_model: pass the registry name of the model (e.g. 'cvt')")
    cfg = make_config(name, config if config is not None else getattr(model, "amsnb_config", None))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    adversary = getattr(model, "conditional_head", None)
    try:
        if adversary is not None:
            model.conditional_head = None
        st_save(model, str(folder / WEIGHTS))
        n_parameters = sum(p.numel() for p in model.parameters())
    finally:
        if adversary is not None:
            model.conditional_head = adversary
    meta = {"format": FORMAT_VERSION, "name": name, "module": _MODULES.get(name),
            "config": dataclasses.asdict(cfg), "input_transform": getattr(model, "input_transform_doc", None),
            "n_parameters": n_parameters, "extra": extra or {}}
    tmp = folder / (CONFIG + ".part")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp, folder / CONFIG)
    return folder


def read_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / CONFIG
    if not path.exists():
        raise InputFileError(f"{path}: no model config here; a model folder is written by amsnb.models.save_model")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc}); re-save the model") from exc
    if "name" not in meta or "config" not in meta:
        raise InputFileError(f"{path}: lacks 'name' or 'config'; it was not written by amsnb.models.save_model")
    return meta


def load_model(folder: str | os.PathLike, device: str = "cpu") -> nn.Module:
    """Rebuild a saved model through the registry and load its weights (safetensors; strict).

    The builder's module recorded in config.json is imported if the model is not registered yet (``amsnb.*`` only).
    """
    from safetensors.torch import load_model as st_load

    folder = Path(folder)
    meta = read_config(folder)
    model = build(meta["name"], meta["config"], module=meta.get("module"))
    weights = folder / WEIGHTS
    if not weights.exists():
        raise InputFileError(f"{weights}: weights missing; re-save the model with amsnb.models.save_model")
    try:
        st_load(model, str(weights), strict=True, device=device)
    except RuntimeError as exc:
        raise InputFileError(f"{weights}: weights do not match the config in {folder / CONFIG}: {exc}") from exc
    model.amsnb_extra = meta.get("extra", {})
    return model.to(device)


# ------------------------------------------------------------------ conventions shared by the ECAL image models
#: Input of every image model: cell energies in MeV, shape (B, 1, N_LAYERS, N_CELLS) = (B, 1, 18, 72).
IMAGE_SHAPE = (1, 18, 72)
#: Default energy scale of the input transform: about one MIP per cell (10 HG counts at 0.873 count/MeV,
#: docs/physics.md section 1), so x = log1p(E / 11.5 MeV) is ~0.7 for a MIP and ~10 for a TeV shower core.
ENERGY_SCALE_MEV = 10.0 / 0.873


@dataclasses.dataclass
class ImageModelConfig:
    """Fields every ECAL image model shares (subclasses add their architecture)."""

    preset: str | None = None
    in_chans: int = 1
    n_classes: int = 2
    energy_scale_mev: float = ENERGY_SCALE_MEV
    domain_head: bool = True
    domain_hidden: int = 64
    #: False: the plain 18x72 image, as the seed. True: the two projections apart (schema.LAYER_VIEW: the 10 layers
    #: measuring y, the 8 measuring x), each through its own copy of the backbone, features concatenated, so no
    #: kernel mixes cells of different views (neighbouring rows of the plain image are different projections).
    views: bool = False


class EnergyTransform(nn.Module):
    """x -> log1p(clamp(x, 0) / scale): compresses the 1e-1..1e5 MeV range of cell energies for the network.

    Part of the model (not of the dataset), so a saved model applies the same transform to raw MeV images,
    in ONNX too.
    """

    def __init__(self, scale_mev: float):
        super().__init__()
        if scale_mev <= 0:
            raise ConfigError(f"energy_scale_mev={scale_mev}: must be > 0 (MeV)")
        self.scale = float(scale_mev)

    def forward(self, x):
        import torch

        return torch.log1p(torch.clamp(x, min=0.0) / self.scale)


class ImageFeatures(nn.Module):
    """EnergyTransform -> backbone -> (B, F) features; ``num_features`` = F."""

    def __init__(self, scale_mev: float, backbone: nn.Module, num_features: int):
        super().__init__()
        self.transform = EnergyTransform(scale_mev)
        self.backbone = backbone
        self.num_features = num_features

    def forward(self, x):
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.backbone(self.transform(x))


class ViewStreams(nn.Module):
    """The y-view and x-view layers of the image (schema.LAYER_VIEW), each through its own backbone; features
    concatenated (2F)."""

    def __init__(self, backbone_y: nn.Module, backbone_x: nn.Module):
        super().__init__()
        from ..schema import X_LAYERS, Y_LAYERS

        self.register_buffer("y_rows", torch.tensor(Y_LAYERS), persistent=False)
        self.register_buffer("x_rows", torch.tensor(X_LAYERS), persistent=False)
        self.y = backbone_y
        self.x = backbone_x

    def forward(self, img):
        return torch.cat([self.y(img.index_select(2, self.y_rows)), self.x(img.index_select(2, self.x_rows))], 1)


def assemble(cfg: ImageModelConfig, backbone: nn.Module | Callable[[], nn.Module], num_features: int,
             label_head: nn.Module | None = None):
    """Wrap a backbone into the DomainAdversarialModel every image model is (features, label head, domain head).

    ``backbone`` may be a factory (no arguments); it must be one where ``cfg.views`` is set (two copies are made)."""
    from .layers import DomainAdversarialModel, mlp_head

    if cfg.views:
        if not callable(backbone) or isinstance(backbone, nn.Module):
            raise ConfigError(f"{type(cfg).__name__}: views=True is not available for this model (its backbone "
                              "needs the full 18x72 image); use views=False or the cnn model")
        backbone, num_features = ViewStreams(backbone(), backbone()), 2 * num_features
        if label_head is not None:
            raise ConfigError("views=True builds its own label head on the concatenated features")
    elif callable(backbone) and not isinstance(backbone, nn.Module):
        backbone = backbone()
    features = ImageFeatures(cfg.energy_scale_mev, backbone, num_features)
    head = label_head if label_head is not None else nn.Linear(num_features, cfg.n_classes)
    domain = mlp_head(num_features, 2, cfg.domain_hidden) if cfg.domain_head else None
    model = DomainAdversarialModel(features, head, domain)
    model.input_transform_doc = f"x = log1p(max(E, 0) / {cfg.energy_scale_mev:.6g} MeV), input (B, 1, 18, 72) MeV"
    return model
