"""CoAtNet (Dai et al., NeurIPS 2021, arXiv:2106.04803) for ECAL images, through timm's MaxxVit family.

The architecture is timm's (``timm.models.maxxvit``: MBConv stages 'C' then relative-attention stages 'T');
a preset starts from one of timm's CoAtNet configs (``base``, default ``coatnet_0``, the paper's CoAtNet-0 layout)
and replaces the widths/depths, with ``in_chans=1`` and no classifier (the amsnb heads sit on the pooled features).

Input size: timm fixes the relative-position tables at build time from ``img_size`` and the model downsamples
by 32, so H and W must each be a multiple of 32; 18x72 fails. The 18x72 image (after the log transform, where an
empty cell is 0) is **zero-padded** to ``pad_to`` = 32x96, centred (7 rows above/below, 12 cells left/right).
Padding was chosen over resizing because it keeps every cell's value and the cell pitch intact (interpolation
would smear single-cell MIP tracks and the sharp electron core), and zero is physically "no deposit"; over
reconfiguring the stages because the 1 x 3 final token map of a stride-32 net on 18x72 would need non-standard
strides. Cost: 2.4x the pixels of the raw image (measured in benchmarks/bench_train.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..schema import N_CELLS, N_LAYERS
from .registry import ImageModelConfig, assemble, register


@dataclass
class CoatnetConfig(ImageModelConfig):
    base: str = "coatnet_0"  # a key of timm.models.maxxvit.model_cfgs
    embed_dim: tuple[int, ...] = (96, 192, 384, 768)
    depths: tuple[int, ...] = (2, 3, 5, 2)
    stem_width: int | tuple[int, int] = 64
    dim_head: int = 32
    pad_to: tuple[int, int] = (32, 96)
    head_hidden: int = 768  # pre-logits Linear+tanh width of timm's coatnet_0 head; 0 = pooled features directly

    PRESETS: ClassVar[dict] = {
        "tiny": dict(embed_dim=(32, 64, 96, 128), depths=(1, 1, 1, 1), stem_width=16, dim_head=16,
                     head_hidden=0),
        "small": dict(embed_dim=(48, 96, 192, 256), depths=(1, 2, 2, 1), stem_width=32, head_hidden=0),
        "coatnet0": dict(),
        "large": dict(),  # = coatnet0; the GPU preset name shared by all image models (profile "full")
    }


class PadImage(nn.Module):
    """Centre an (18, 72) image in a zero (H, W) canvas; both multiples of 32 for timm's MaxxVit."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        h, w = size
        if h % 32 or w % 32 or h < N_LAYERS or w < N_CELLS:
            raise ConfigError(f"CoatnetConfig.pad_to={size}: need multiples of 32, at least {N_LAYERS}x{N_CELLS}")
        top, left = (h - N_LAYERS) // 2, (w - N_CELLS) // 2
        self.pad = (left, w - N_CELLS - left, top, h - N_LAYERS - top)

    def forward(self, x):
        return F.pad(x, self.pad)


class CoatnetBackbone(nn.Module):
    def __init__(self, cfg: CoatnetConfig):
        super().__init__()
        from timm.models.maxxvit import MaxxVit, model_cfgs

        if cfg.base not in model_cfgs:
            raise ConfigError(f"CoatnetConfig.base='{cfg.base}' is not a timm maxxvit config; "
                              f"e.g. {', '.join(k for k in model_cfgs if k.startswith('coatnet'))}")
        if len(cfg.embed_dim) != len(cfg.depths):
            raise ConfigError(f"CoatnetConfig: embed_dim {cfg.embed_dim} and depths {cfg.depths} differ in length")
        base = model_cfgs[cfg.base]
        tcfg = dataclasses.replace(base.transformer_cfg, dim_head=cfg.dim_head)
        mcfg = dataclasses.replace(base, embed_dim=tuple(cfg.embed_dim), depths=tuple(cfg.depths),
                                   stem_width=cfg.stem_width, transformer_cfg=tcfg,
                                   head_hidden_size=cfg.head_hidden or None)
        self.pad = PadImage(tuple(cfg.pad_to))
        self.net = MaxxVit(mcfg, img_size=tuple(cfg.pad_to), in_chans=cfg.in_chans, num_classes=0)
        self.num_features = self.net.head_hidden_size

    def forward(self, x):
        return self.net.forward_head(self.net.forward_features(self.pad(x)), pre_logits=True)


@register("coatnet", CoatnetConfig)
def build_coatnet(cfg: CoatnetConfig):
    backbone = CoatnetBackbone(cfg)
    return assemble(cfg, backbone, backbone.num_features)
