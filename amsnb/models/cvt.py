"""CvT, the Convolutional vision Transformer (Wu et al., ICCV 2021, arXiv:2103.15808), for ECAL images.

Written here (about 150 lines) rather than taken from Hugging Face ``transformers``, which is not a dependency
and would add a large install for one model. The layout follows the paper and the reference implementation
(microsoft/CvT, mirrored by HF ``CvtModel``) so that the ``cvt13`` preset has the CvT-13 parameter count:

* each of the three stages starts with a *convolutional token embedding*: Conv2d(kernel=patch, stride, padding)
  followed by LayerNorm over channels; there is no position embedding (the convolutions carry position);
* *convolutional projections*: q, k and v are each a depth-wise 3x3 Conv2d (no bias) + BatchNorm2d followed by a
  Linear; k and v use stride 2 (the paper's "squeezed" attention), q stride 1;
* pre-norm transformer blocks (attention + MLP with ratio 4, stochastic depth);
* a class token only in the last stage; its LayerNorm'ed output is the feature vector.

The seed's presets (cvt13: 64/192/384 dims, 1/2/10 blocks, 1/3/6 heads, patch 7/3/3, stride 4/2/2) reduce an
18x72 ECAL image to 1x5 tokens in stage 3. That is kept for fidelity; the small presets use stride 2/2/2 with
3x3 patches (9x36 -> 5x18 -> 3x9 tokens), which suits the 18-sample longitudinal axis better and is cheap on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from timm.layers import DropPath
from torch import nn

from .registry import ImageModelConfig, assemble, register


@dataclass
class CvtConfig(ImageModelConfig):
    embed_dim: tuple[int, ...] = (64, 192, 384)
    depth: tuple[int, ...] = (1, 2, 10)
    heads: tuple[int, ...] = (1, 3, 6)
    patch: tuple[int, ...] = (7, 3, 3)
    stride: tuple[int, ...] = (4, 2, 2)
    padding: tuple[int, ...] = (2, 1, 1)
    mlp_ratio: float = 4.0
    kv_stride: int = 2
    drop_path: float = 0.1  # in the last stage only, linearly increasing per block (reference CvT-13 config)
    qkv_bias: bool = True

    PRESETS: ClassVar[dict] = {
        "tiny": dict(embed_dim=(16, 32, 64), depth=(1, 1, 2), heads=(1, 2, 4), patch=(3, 3, 3), stride=(2, 2, 2),
                     padding=(1, 1, 1), drop_path=0.0),
        "small": dict(embed_dim=(32, 96, 192), depth=(1, 2, 4), heads=(1, 3, 6), patch=(3, 3, 3),
                      stride=(2, 2, 2), padding=(1, 1, 1)),
        "cvt13": dict(),
        "large": dict(),  # = cvt13; the GPU preset name shared by all image models (profile "full")
    }


class ConvEmbedding(nn.Module):
    def __init__(self, cin, dim, patch, stride, padding):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, stride, padding)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvProjection(nn.Module):
    """Depth-wise conv + BatchNorm on the token map, then flattened back to tokens."""

    def __init__(self, dim, stride):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, stride, 1, bias=False, groups=dim)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x):
        return self.bn(self.conv(x)).flatten(2).transpose(1, 2)


class ConvAttention(nn.Module):
    def __init__(self, dim, heads, kv_stride, qkv_bias):
        super().__init__()
        self.heads = heads
        self.scale = dim ** -0.5  # as in the reference implementation (dim_out ** -0.5)
        self.conv_q = ConvProjection(dim, 1)
        self.conv_k = ConvProjection(dim, kv_stride)
        self.conv_v = ConvProjection(dim, kv_stride)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, h, w, has_cls):
        b, _, c = x.shape
        cls, tokens = (x[:, :1], x[:, 1:]) if has_cls else (None, x)
        grid = tokens.transpose(1, 2).reshape(b, c, h, w)
        q, k, v = self.conv_q(grid), self.conv_k(grid), self.conv_v(grid)
        if has_cls:
            q, k, v = (torch.cat([cls, t], dim=1) for t in (q, k, v))

        def split(t):
            return t.reshape(b, t.shape[1], self.heads, c // self.heads).transpose(1, 2)

        q, k, v = split(self.q(q)), split(self.k(k)), split(self.v(v))
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, -1, c))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, kv_stride, qkv_bias, drop_path):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ConvAttention(dim, heads, kv_stride, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, h, w, has_cls):
        x = x + self.drop_path(self.attn(self.norm1(x), h, w, has_cls))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Stage(nn.Module):
    def __init__(self, cin, dim, depth, heads, patch, stride, padding, cfg: CvtConfig, cls_token, drop_paths):
        super().__init__()
        self.embed = ConvEmbedding(cin, dim, patch, stride, padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        if cls_token:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, cfg.mlp_ratio, cfg.kv_stride, cfg.qkv_bias, dp)
                                    for dp in drop_paths)

    def forward(self, x):
        x = self.embed(x)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        has_cls = self.cls_token is not None
        if has_cls:
            t = torch.cat([self.cls_token.expand(b, -1, -1), t], dim=1)
        for blk in self.blocks:
            t = blk(t, h, w, has_cls)
        if has_cls:
            return t[:, 1:].transpose(1, 2).reshape(b, c, h, w), t[:, 0]
        return t.transpose(1, 2).reshape(b, c, h, w), None


class CvtBackbone(nn.Module):
    """Three CvT stages; returns the LayerNorm'ed class token of the last stage, (B, embed_dim[-1])."""

    def __init__(self, cfg: CvtConfig):
        super().__init__()
        n = len(cfg.embed_dim)
        for name in ("depth", "heads", "patch", "stride", "padding"):
            if len(getattr(cfg, name)) != n:
                from ..errors import ConfigError

                raise ConfigError(f"CvtConfig.{name} has {len(getattr(cfg, name))} entries, embed_dim has {n}")
        stages, cin = [], cfg.in_chans
        for i in range(n):
            last = i == n - 1
            d = cfg.depth[i]
            dps = [cfg.drop_path * j / max(d - 1, 1) for j in range(d)] if last else [0.0] * d
            stages.append(Stage(cin, cfg.embed_dim[i], d, cfg.heads[i], cfg.patch[i], cfg.stride[i], cfg.padding[i],
                                cfg, cls_token=last, drop_paths=dps))
            cin = cfg.embed_dim[i]
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(cin)
        self.apply(_init)

    def forward(self, x):
        cls = None
        for st in self.stages:
            x, cls = st(x)
        return self.norm(cls)


def _init(m):
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@register("cvt", CvtConfig)
def build_cvt(cfg: CvtConfig):
    return assemble(cfg, CvtBackbone(cfg), cfg.embed_dim[-1])
