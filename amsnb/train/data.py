"""In-memory dataset of dict items, for arrays a user already holds (the ECAL cache has its own, amsnb.ecal.cache)."""

from __future__ import annotations

import numpy as np
import torch


class ArrayDataset(torch.utils.data.Dataset):
    """Items ``{"x": x[i], "y": y[i], "w": w[i], "domain": domain[i]}`` from arrays of equal length."""

    def __init__(self, x, y=None, w=None, domain=None):
        self.x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        n = len(self.x)
        self.labels = np.full(n, -1, np.int64) if y is None else np.asarray(y, dtype=np.int64)
        self.weights = np.ones(n, np.float32) if w is None else np.asarray(w, dtype=np.float32)
        self.domains = np.zeros(n, np.int64) if domain is None else np.asarray(domain, dtype=np.int64)
        if not (len(self.labels) == len(self.weights) == len(self.domains) == n):
            from ..errors import SchemaError

            raise SchemaError(f"ArrayDataset: x has {n} rows but y/w/domain have "
                              f"{len(self.labels)}/{len(self.weights)}/{len(self.domains)}")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def identity(self) -> str:
        """A digest of the items: :func:`amsnb.train.fit` resumes a checkpoint only for the same data."""
        from ..provenance import array_digest

        return array_digest({"x": self.x, "y": self.labels, "w": self.weights, "domain": self.domains})

    def __getitem__(self, i):
        return {"x": self.x[i], "y": int(self.labels[i]), "w": float(self.weights[i]), "domain": int(self.domains[i])}
