"""MDA: the multimodal domain-adversarial network of seed 004 (Z. Liu, AMS-Italy, Oct 2025).

Four sub-models, each matched to its input (:func:`amsnb.nuclei.event_inputs`):

1. tracker GNN (torch-geometric ``GraphConv``) on the hit graph of the main and second tracks
   (:func:`amsnb.nuclei.build_graph`), pooled per event (mean and max);
2. tracker CNN on the cluster-count image (8 layers x 2 sides);
3. MLP on the rigidities (inner, inner+L1);
4. TOF MLP (beta, upper-TOF charge, plane charges, on-time clusters, total clusters).

The four branch outputs are tokens for a multi-head self-attention with a learned positional (branch) embedding,
so each event learns how much to rely on each sub-model; the per-event attention each branch receives is returned
as ``out["attention"]`` (B, 4; zero for a switched-off branch). The fused feature feeds the signal/background head
and, through the gradient reversal of :mod:`amsnb.models.layers`, the DANN domain head (Ganin et al.,
arXiv:1505.07818). Inputs are normalised by mean/std buffers fitted on the training set
(:func:`fit_normalization`) and saved with the weights. Any branch can be switched off (``branches``) for ablations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..models.layers import DomainAdversarialModel, mlp_head
from ..models.registry import register
from .graph import BRANCHES


@dataclass
class MDAConfig:
    """Architecture of the MDA network; ``branches`` lists the enabled sub-models (ablations switch them off)."""
    preset: str | None = None
    hidden: int = 32
    gnn_layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    branches: tuple[str, ...] = BRANCHES
    n_classes: int = 2
    domain_head: bool = True
    domain_hidden: int = 32
    #: What the DANN domain head sees: "fused" (the fused feature, as the label head) or "tokens" (the fused
    #: feature and every branch token, concatenated, so the reversed gradient reaches each sub-model's output
    #: directly; the label head and the "features" output stay the fused feature).
    domain_input: str = "fused"
    #: Input sizes (the model does not import them from the data preparation; tests check they agree with
    #: amsnb.nuclei.graph's NODE_FEATURES, RIG_FEATURES, TOF_FEATURES and N_LAYERS_USED).
    n_node_features: int = 6
    n_rig_features: int = 3
    n_tof_features: int = 7
    n_cluster_layers: int = 8

    PRESETS = {"small": {"hidden": 16, "gnn_layers": 2, "heads": 2},
               "seed": {"hidden": 64, "gnn_layers": 3, "heads": 4}}


def _mlp(n_in: int, hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU())


class TrackerGNN(nn.Module):
    """Node encoder -> GraphConv x n -> [mean, max] pooling per event -> (B, hidden)."""

    def __init__(self, hidden: int, layers: int, n_node_features: int):
        super().__init__()
        from torch_geometric.nn import GraphConv

        self.encode = nn.Sequential(nn.Linear(n_node_features, hidden), nn.ReLU())
        self.convs = nn.ModuleList([GraphConv(hidden, hidden, aggr="mean") for _ in range(layers)])
        self.out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU())

    def forward(self, x, edge_index, batch, num_graphs: int):
        from torch_geometric.utils import scatter

        h = self.encode(x)
        for conv in self.convs:
            h = torch.relu(conv(h, edge_index)) + h
        mean = scatter(h, batch, dim=0, dim_size=num_graphs, reduce="mean")
        mx = scatter(h, batch, dim=0, dim_size=num_graphs, reduce="max")
        return self.out(torch.cat([mean, mx], dim=1))


class ClusterCNN(nn.Module):
    """The (1, 8 layers, 2 sides) cluster-count image: a layer-direction convolution over both sides."""

    def __init__(self, hidden: int, n_layers: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, (3, 2), padding=(1, 0)), nn.ReLU(),
                                 nn.Conv2d(16, 16, (3, 1), padding=(1, 0)), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(16 * n_layers, hidden), nn.ReLU())

    def forward(self, img):
        return self.net(img)


class MDAFeatures(nn.Module):
    """Normalisation -> enabled branches -> attention fusion -> ``{"features": (B, hidden), "attention": (B, 4)}``."""

    def __init__(self, cfg: MDAConfig):
        super().__init__()
        bad = [b for b in cfg.branches if b not in BRANCHES]
        if bad or not cfg.branches:
            raise ConfigError(f"MDA branches={list(cfg.branches)}: choose a non-empty subset of {list(BRANCHES)}")
        if cfg.hidden % cfg.heads:
            raise ConfigError(f"MDA hidden={cfg.hidden} must be divisible by heads={cfg.heads}")
        self.branches = tuple(b for b in BRANCHES if b in cfg.branches)
        if cfg.domain_input not in ("fused", "tokens"):
            raise ConfigError(f"MDA domain_input='{cfg.domain_input}': use 'fused' or 'tokens'")
        self.domain_input = cfg.domain_input
        h = cfg.hidden
        mods = {"gnn": lambda: TrackerGNN(h, cfg.gnn_layers, cfg.n_node_features),
                "cnn": lambda: ClusterCNN(h, cfg.n_cluster_layers),
                "rig": lambda: _mlp(cfg.n_rig_features, h, cfg.dropout),
                "tof": lambda: _mlp(cfg.n_tof_features, h, cfg.dropout)}
        self.sub = nn.ModuleDict({b: mods[b]() for b in self.branches})
        self.pos = nn.Parameter(torch.randn(len(BRANCHES), h) * 0.1)  # learned positional (branch) encoding
        self.attn = nn.MultiheadAttention(h, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm = nn.LayerNorm(h)
        self.num_features = h
        for name, n in (("node", cfg.n_node_features), ("rig", cfg.n_rig_features), ("tof", cfg.n_tof_features)):
            self.register_buffer(f"{name}_mean", torch.zeros(n))
            self.register_buffer(f"{name}_std", torch.ones(n))
        self.register_buffer("clus_mean", torch.zeros(1, cfg.n_cluster_layers, 2))
        self.register_buffer("clus_std", torch.ones(1, cfg.n_cluster_layers, 2))

    def forward(self, x: dict) -> dict[str, torch.Tensor]:
        tokens, idx = [], []
        for i, b in enumerate(BRANCHES):
            if b not in self.sub:
                continue
            if b == "gnn":
                g = x["graph"]
                nodes = (g.x - self.node_mean) / self.node_std
                t = self.sub[b](nodes, g.edge_index, g.batch, int(g.num_graphs))
            elif b == "cnn":
                t = self.sub[b]((x["clusters"] - self.clus_mean) / self.clus_std)
            else:
                t = self.sub[b]((x[b] - getattr(self, f"{b}_mean")) / getattr(self, f"{b}_std"))
            tokens.append(t)
            idx.append(i)
        tok = torch.stack(tokens, dim=1) + self.pos[idx][None]
        out, w = self.attn(tok, tok, tok, need_weights=True, average_attn_weights=True)
        fused = self.norm(tok + out).mean(dim=1)
        att = torch.zeros(tok.shape[0], len(BRANCHES), device=tok.device, dtype=tok.dtype)
        att[:, idx] = w.mean(dim=1)  # attention each branch receives, averaged over queries (rows sum to 1)
        out = {"features": fused, "attention": att.detach()}
        if self.domain_input == "tokens":
            full = torch.zeros(tok.shape[0], len(BRANCHES), tok.shape[2], device=tok.device, dtype=tok.dtype)
            full[:, idx] = torch.stack(tokens, dim=1)
            out["domain_features"] = torch.cat([fused, full.flatten(1)], dim=1)
        return out


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies each event's gradient by its weight."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(w)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * w.to(g.dtype).reshape(-1, *([1] * (g.ndim - 1))), None


class MDAModel(DomainAdversarialModel):
    """DomainAdversarialModel whose output dict also holds ``attention`` (B, 4): per-event weight of each branch
    (passed through from :class:`MDAFeatures`; :func:`amsnb.train.predict` returns it as ``"attention"``).

    Inputs with ``"dw"`` (per-event domain weights, :class:`amsnb.nuclei.NucleiDataset` ``domain_weight``) weight
    the domain term event by event: the gradient leaving ``domain_logits`` (and CDAN's ``conditional_domain_logits``)
    is multiplied by the weight, which is a weighted domain cross-entropy for the domain head and, through the
    gradient reversal, for the features (CORAL and MMD, which read the features, do not see these weights). The
    study uses it to give the MC side of the domain term the data's species composition (label-shift correction,
    importance-weighted DANN: Combes et al., NeurIPS 2020, arXiv:2003.04475); the forward pass is unchanged."""

    branch_names = BRANCHES

    def forward(self, x, lambda_: float = 0.0):
        """As :meth:`amsnb.models.layers.DomainAdversarialModel.forward`; the domain head reads
        ``domain_features`` when the feature extractor provides them (``domain_input="tokens"``)."""
        from ..models.layers import grad_reverse

        fe = self.feature_extractor(x)
        extra = {k: v for k, v in fe.items() if k not in ("features", "domain_features")}
        feats = fe["features"]
        out = {"logits": self.label_head(feats), "domain_logits": None, "features": feats, **extra}
        out["conditional_domain_logits"] = self.conditional_domain_logits(feats, out["logits"], lambda_)
        if self.domain_head is not None:
            out["domain_logits"] = self.domain_head(grad_reverse(fe.get("domain_features", feats), lambda_))
        dw = x.get("dw") if isinstance(x, dict) else None
        if dw is not None and torch.is_grad_enabled():
            for key in ("domain_logits", "conditional_domain_logits"):  # DANN's and CDAN's adversary alike
                if out[key] is not None:
                    out[key] = _ScaleGrad.apply(out[key], dw)
        return out


@register("mda", MDAConfig)
def build_mda(cfg: MDAConfig) -> MDAModel:
    feats = MDAFeatures(cfg)
    head = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                         nn.Linear(cfg.hidden, cfg.n_classes))
    n_dom = cfg.hidden * (1 + len(BRANCHES)) if cfg.domain_input == "tokens" else cfg.hidden
    domain = mlp_head(n_dom, 2, cfg.domain_hidden) if cfg.domain_head else None
    model = MDAModel(feats, head, domain)
    model.input_transform_doc = ("dict(graph=PyG hit graph, clusters=(B,1,8,2) log1p counts, rig=(B,3), tof=(B,7)) "
                                 "from amsnb.nuclei.event_inputs; mean/std normalisation buffers inside the model")
    return model


def fit_normalization(model: MDAModel, dataset) -> MDAModel:
    """Set the normalisation buffers from a training :class:`amsnb.nuclei.NucleiDataset` (present hits only)."""
    f = model.feature_extractor
    t = dataset.t
    nodes = t["hits"][t["mask"]]
    if len(nodes) == 0:
        raise ConfigError("fit_normalization: the training set has no tracker hits; check the selection")

    def ms(v, dim=0):
        return v.float().mean(dim), v.float().std(dim).clamp_min(1e-3)

    with torch.no_grad():
        for name, v in (("node", nodes), ("rig", t["rig"]), ("tof", t["tof"])):
            m, s = ms(v)
            getattr(f, f"{name}_mean").copy_(m)
            getattr(f, f"{name}_std").copy_(s)
        m, s = ms(t["clusters"][:, 0])
        f.clus_mean.copy_(m[None])
        f.clus_std.copy_(s[None])
    return model
