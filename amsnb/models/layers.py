"""Generic layers of every amsnb model: gradient reversal and the domain-adversarial network around it.

``GradientReversal`` (Ganin & Lempitsky, ICML 2015, "Unsupervised domain adaptation by backpropagation") is the
identity in the forward pass and multiplies the gradient by ``-lambda_`` in the backward pass. Placed between the
feature extractor and the domain classifier, it makes the feature extractor *maximise* the domain loss while the
domain classifier itself still *minimises* it (the classifier's own parameters sit after the reversal).

:class:`DomainAdversarialModel` is model-agnostic: feature extractor -> (label head, gradient reversal -> domain
head), for any ``feature_extractor`` that maps a batch's ``x`` (an ECAL image, a PyG batch, ...) to (B, F)
features. The lambda schedules live with the trainer (:mod:`amsnb.train.schedules`).
"""

from __future__ import annotations

import torch
from torch import nn


class GradientReversal(torch.autograd.Function):
    """y = x; dL/dx = -lambda_ * dL/dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = float(lambda_)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output.neg() * ctx.lambda_, None


def grad_reverse(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    """Apply :class:`GradientReversal` with strength ``lambda_``."""
    return GradientReversal.apply(x, lambda_)


def mlp_head(in_features: int, out_features: int = 2, hidden: int = 0, dropout: float = 0.0) -> nn.Module:
    """A linear head, or Linear-ReLU-Dropout-Linear when ``hidden`` > 0 (Ganin's domain classifier is an MLP)."""
    if hidden <= 0:
        return nn.Linear(in_features, out_features)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_features))


class DomainAdversarialModel(nn.Module):
    """``model(x, lambda_=...)`` -> dict(logits, domain_logits, features, ...); domain_logits is None without a head.

    The feature extractor returns the (B, F) features, or a dict with ``"features"`` and further named per-event
    outputs (e.g. the MDA's ``"attention"``), which are passed through in the output dict (and by
    :func:`amsnb.train.predict`).
    """

    def __init__(self, feature_extractor: nn.Module, label_head: nn.Module, domain_head: nn.Module | None = None):
        super().__init__()
        self.feature_extractor = feature_extractor
        self.label_head = label_head
        self.domain_head = domain_head

    def forward(self, x, lambda_: float = 0.0) -> dict[str, torch.Tensor | None]:
        fe = self.feature_extractor(x)
        extra = {}
        if isinstance(fe, dict):
            extra = {k: v for k, v in fe.items() if k != "features"}
            fe = fe["features"]
        logits = self.label_head(fe)
        domain_logits = None
        if self.domain_head is not None:
            domain_logits = self.domain_head(grad_reverse(fe, lambda_))
        return {"logits": logits, "domain_logits": domain_logits, "features": fe, **extra}

    def label_parameters(self) -> int:
        """Parameters of the classifier path (feature extractor + label head), without the domain head."""
        return sum(p.numel() for m in (self.feature_extractor, self.label_head) for p in m.parameters())
