"""Domain-adversarial network: feature extractor -> (label head, gradient reversal -> domain head).

Model-agnostic (any ``feature_extractor`` returning a (B, F) tensor from a batch's ``x``: an ECAL image, a PyG
batch, ...). The reversal sits only in front of the domain head (Ganin & Lempitsky 2015): the domain head learns
to tell MC from ISS, the feature extractor learns to make that impossible.
"""

from __future__ import annotations

import torch
from torch import nn

from .grl import grad_reverse


def mlp_head(in_features: int, out_features: int = 2, hidden: int = 0, dropout: float = 0.0) -> nn.Module:
    """A linear head, or Linear-ReLU-Dropout-Linear when ``hidden`` > 0 (Ganin's domain classifier is an MLP)."""
    if hidden <= 0:
        return nn.Linear(in_features, out_features)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_features))


class DomainAdversarialModel(nn.Module):
    """``model(x, lambda_=...)`` -> dict(logits, domain_logits, features); domain_logits is None without a head."""

    def __init__(self, feature_extractor: nn.Module, label_head: nn.Module, domain_head: nn.Module | None = None):
        super().__init__()
        self.feature_extractor = feature_extractor
        self.label_head = label_head
        self.domain_head = domain_head

    def forward(self, x, lambda_: float = 0.0) -> dict[str, torch.Tensor | None]:
        features = self.feature_extractor(x)
        logits = self.label_head(features)
        domain_logits = None
        if self.domain_head is not None:
            domain_logits = self.domain_head(grad_reverse(features, lambda_))
        return {"logits": logits, "domain_logits": domain_logits, "features": features}

    def label_parameters(self) -> int:
        """Parameters of the classifier path (feature extractor + label head), without the domain head."""
        return sum(p.numel() for m in (self.feature_extractor, self.label_head) for p in m.parameters())
