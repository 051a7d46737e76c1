"""A plain CNN baseline for ECAL images: conv-BN-ReLU blocks, pooling along the cells, global average pool.

The image is 18 layers x 72 cells; early pooling is applied only along the cell axis (the longitudinal profile,
which separates electrons from protons, has just 18 samples), later blocks pool both axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from .registry import ImageModelConfig, assemble, register


@dataclass
class CnnConfig(ImageModelConfig):
    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.1

    PRESETS: ClassVar[dict] = {
        "tiny": dict(channels=(8, 16, 32)),
        "small": dict(channels=(16, 32, 64)),
        "base": dict(channels=(32, 64, 128, 256)),
        "large": dict(channels=(32, 64, 128, 256)),  # = base; the GPU preset name shared by all image models
        "tiny_views": dict(channels=(8, 16, 32), views=True),  # view-aware: one CNN per projection
        "small_views": dict(channels=(16, 32, 64), views=True),
    }


def _block(cin, cout, pool):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
              nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if pool is not None:
        layers.append(nn.MaxPool2d(pool))
    return layers


@register("cnn", CnnConfig)
def build_cnn(cfg: CnnConfig):
    """The CNN on the plain image, or with ``views=True`` one CNN per projection (registry.ViewStreams)."""

    def backbone():
        layers, cin = [], cfg.in_chans
        for i, c in enumerate(cfg.channels):
            pool = (1, 2) if i == 0 else ((2, 2) if i < len(cfg.channels) - 1 else None)
            layers += _block(cin, c, pool)
            cin = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(cfg.dropout)]
        return nn.Sequential(*layers)

    return assemble(cfg, backbone, cfg.channels[-1])
