"""MDA network inputs: the four per-event input blocks, the tracker hit graph (a PyG data transform), the dataset.

Inputs follow the seed's slides: tracker hit positions L1-L8 (x and y sides) and layer charges L2-L8 of the main
and second tracks, cluster counts L1-L8 per side, rigidities inner and inner+L1, and the standalone TOF variables.
The L1 charge is *not* a network input, so the L1-charge template fit of notebook 07 stays independent of the cut.
Graph building is a tested transform on its own (the PyTorch Geometric way: ``Data``/``Batch``); the GNN
only consumes the graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import EmptySelectionError

N_LAYERS_USED = 8  # L1..L8 (seed 004: "Hit Pos for L1 to L8"; L9 is outside the inputs)
NODE_FEATURES = ("pos", "z", "charge", "side", "track", "layer")
TOF_FEATURES = ("tof_beta", "tof_q_upper", "tof_q_l1", "tof_q_l2", "tof_nclus_l1", "tof_nclus_l2", "tof_nclus_total")
RIG_FEATURES = ("curv_inner", "curv_inl1", "log10_rig_inl1")
BRANCHES = ("gnn", "cnn", "rig", "tof")


# ----------------------------------------------------------------------------------------- network inputs
def event_inputs(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The four MDA inputs as float32 arrays (before normalisation).

    ``hits`` (n, 2 tracks, 8 layers, 2 sides, 6 features = NODE_FEATURES), ``mask`` (n, 2, 8, 2) hit present,
    ``clusters`` (n, 1, 8, 2) log(1 + clusters), ``rig`` (n, 3) = RIG_FEATURES, ``tof`` (n, 7) = TOF_FEATURES.
    """
    from .sim import LAYER_Z_CM

    nl = N_LAYERS_USED
    hitbits = arrays["trk_hit"][:, :, :nl]
    n = len(hitbits)
    mask = np.stack([(hitbits & 1) > 0, (hitbits & 2) > 0], axis=-1)
    hits = np.zeros((n, 2, nl, 2, len(NODE_FEATURES)), np.float32)
    hits[..., 0, 0] = arrays["trk_x"][:, :, :nl]
    hits[..., 1, 0] = arrays["trk_y"][:, :, :nl]
    hits[..., 1] = (LAYER_Z_CM[:nl] / 100.0)[None, None, :, None]
    q = arrays["trk_q"][:, :, :nl].astype(np.float32).copy()
    q[:, :, 0] = 0.0  # the L1 charge is not an input (seed: L2-L8 charges), kept for the template fit
    hits[..., 2] = q[..., None]
    hits[..., 3] = np.array([0.0, 1.0])[None, None, None, :]
    hits[..., 4] = np.array([0.0, 1.0])[None, :, None, None]
    hits[..., 5] = (np.arange(nl) / (nl - 1))[None, None, :, None]
    hits *= mask[..., None]
    clusters = np.log1p(arrays["n_clusters"][:, :nl, :].astype(np.float32))[:, None]
    r_in = arrays["rig_inner"].astype(np.float64)
    r_l1 = arrays["rig_inl1"].astype(np.float64)
    rig = np.stack([np.where(r_in != 0, 100.0 / np.where(r_in != 0, r_in, 1), 0.0),
                    np.where(r_l1 != 0, 100.0 / np.where(r_l1 != 0, r_l1, 1), 0.0),
                    np.log10(np.maximum(np.abs(r_l1), 1.0))], axis=1).astype(np.float32)
    tof = np.stack([arrays[k].astype(np.float32) for k in TOF_FEATURES], axis=1)
    return {"hits": hits, "mask": mask, "clusters": clusters, "rig": rig, "tof": tof}


def build_graph(hits, mask):
    """Hit graph of a batch: a PyG ``Batch``-like ``Data`` with ``x``, ``edge_index``, ``batch``, ``num_graphs``.

    Nodes: present hits, one per (track, layer, side), features NODE_FEATURES. Edges (both directions):
    along a track between consecutive *present* layers of the same side (a missing layer is skipped, not a hole);
    x-y side of the same track and layer; main-second track at the same layer and side. Events with no hit
    keep an empty graph (the GNN pools it to zeros).
    """
    import torch
    from torch_geometric.data import Data

    hits = torch.as_tensor(hits)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if hits.ndim == 4:
        hits, mask = hits[None], mask[None]
    b, t, nl, s = mask.shape
    flat = mask.reshape(-1)
    node_id = torch.full((flat.numel(),), -1, dtype=torch.long)
    node_id[flat] = torch.arange(int(flat.sum()))
    grid = node_id.reshape(b, t, nl, s)
    src, dst = [], []
    # along the track: next present layer of the same (event, track, side)
    nxt = torch.full((b, t, s), -1, dtype=torch.long)
    for layer in range(nl - 1, -1, -1):
        cur = grid[:, :, layer, :]
        ok = (cur >= 0) & (nxt >= 0)
        src.append(cur[ok])
        dst.append(nxt[ok])
        nxt = torch.where(cur >= 0, cur, nxt)
    # x <-> y of the same track and layer
    ok = (grid[..., 0] >= 0) & (grid[..., 1] >= 0)
    src.append(grid[..., 0][ok])
    dst.append(grid[..., 1][ok])
    # main <-> second track at the same layer and side
    if t > 1:
        ok = (grid[:, 0] >= 0) & (grid[:, 1] >= 0)
        src.append(grid[:, 0][ok])
        dst.append(grid[:, 1][ok])
    src_t = torch.cat(src)
    dst_t = torch.cat(dst)
    edge_index = torch.stack([torch.cat([src_t, dst_t]), torch.cat([dst_t, src_t])])
    x = hits.reshape(-1, hits.shape[-1])[flat].float()
    batch = torch.arange(b).repeat_interleave(t * nl * s)[flat]
    return Data(x=x, edge_index=edge_index, batch=batch, num_graphs=b, num_nodes=x.shape[0])


class NucleiDataset:
    """Map-style dataset of event dicts for :func:`amsnb.train.fit`: ``{"x": {...inputs}, "y", "w", "domain"}``.

    ``y`` is -1 for unlabeled (data) events. Items are views into pre-built tensors; :func:`collate` builds the
    hit graph per batch (vectorized), so a batch is one PyG graph plus dense tensors.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], y=None, w=None, domain=None, domain_weight=None):
        import torch

        inp = event_inputs(arrays)
        n = len(inp["rig"])
        if n == 0:
            raise EmptySelectionError("NucleiDataset: no events; the selection left an empty sample")
        self.t = {k: torch.as_tensor(v) for k, v in inp.items()}
        if domain_weight is not None:  # per-event weight of the DANN domain term (amsnb.nuclei.model.MDAModel)
            self.t["dw"] = torch.as_tensor(np.asarray(domain_weight, np.float32))
        self.y = torch.as_tensor(np.full(n, -1) if y is None else np.asarray(y), dtype=torch.long)
        self.w = torch.as_tensor(np.ones(n) if w is None else np.asarray(w), dtype=torch.float32)
        dom = arrays.get("domain") if domain is None else domain
        self.domain = torch.as_tensor(np.zeros(n) if dom is None else np.array(np.broadcast_to(dom, (n,))),
                                      dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> np.ndarray:
        return self.y.numpy()

    @property
    def identity(self) -> str:
        """A digest of the items: :func:`amsnb.train.fit` resumes a checkpoint only for the same events."""
        from ..provenance import array_digest

        return array_digest({**self.t, "y": self.y, "w": self.w, "domain": self.domain})

    def __getitem__(self, i):
        return {"x": {k: v[i] for k, v in self.t.items()}, "y": self.y[i], "w": self.w[i], "domain": self.domain[i]}

    def batch(self, idx=None) -> dict:
        """A whole collated batch (all events or ``idx``) without going through single items."""
        import torch

        idx = torch.arange(len(self)) if idx is None else torch.as_tensor(idx)
        x = {k: v[idx] for k, v in self.t.items()}
        return {"x": model_inputs(x), "y": self.y[idx], "w": self.w[idx], "domain": self.domain[idx]}


def model_inputs(x: Mapping) -> dict:
    """Stacked per-event tensors -> the MDA input dict (graph built here)."""
    out = {"graph": build_graph(x["hits"], x["mask"]), "clusters": x["clusters"], "rig": x["rig"], "tof": x["tof"]}
    if "dw" in x:
        out["dw"] = x["dw"]
    return out


def collate(items: Sequence[Mapping]) -> dict:
    """Collate NucleiDataset items into one batch: ``{"x": MDA inputs, "y", "w", "domain"}``."""
    import torch

    x = {k: torch.stack([it["x"][k] for it in items]) for k in items[0]["x"]}
    return {"x": model_inputs(x), "y": torch.stack([it["y"] for it in items]),
            "w": torch.stack([it["w"] for it in items]), "domain": torch.stack([it["domain"] for it in items])}


