"""Generic layers of every amsnb model: gradient reversal and the domain-adversarial network around it.

``GradientReversal`` (Ganin & Lempitsky, ICML 2015, "Unsupervised domain adaptation by backpropagation") is the
identity in the forward pass and multiplies the gradient by ``-lambda_`` in the backward pass. Placed between the
feature extractor and the domain classifier, it makes the feature extractor *maximise* the domain loss while the
domain classifier itself still *minimises* it (the classifier's own parameters sit after the reversal).

:class:`DomainAdversarialModel` is model-agnostic: feature extractor -> (label head, gradient reversal -> domain
head), for any ``feature_extractor`` that maps a batch's ``x`` (an ECAL image, a PyG batch, ...) to (B, F)
features. The lambda schedules live with the trainer (:mod:`amsnb.train.schedules`).

CDAN (Long et al., NeurIPS 2018) conditions the adversary on the classifier: an optional ``conditional_head`` sees
the outer product of the features and the (detached) softmax, behind the same reversal
(:func:`add_conditional_head`; :func:`amsnb.train.fit` adds one for ``alignment="cdan"``).
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

    def __init__(self, feature_extractor: nn.Module, label_head: nn.Module, domain_head: nn.Module | None = None,
                 conditional_head: nn.Module | None = None):
        super().__init__()
        self.feature_extractor = feature_extractor
        self.label_head = label_head
        self.domain_head = domain_head
        self.conditional_head = conditional_head

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
        return {"logits": logits, "domain_logits": domain_logits, "features": fe,
                "conditional_domain_logits": self.conditional_domain_logits(fe, logits, lambda_), **extra}

    def conditional_domain_logits(self, features: torch.Tensor, logits: torch.Tensor,
                                  lambda_: float) -> torch.Tensor | None:
        """CDAN's adversary on features (x) softmax(logits) (B, F*C), behind the gradient reversal; the softmax is
        detached, as in the authors' code (the classifier is trained by the label loss only). None without a
        conditional head."""
        if self.conditional_head is None:
            return None
        p = torch.softmax(logits.detach().float(), 1).to(features.dtype)
        h = torch.bmm(p.unsqueeze(2), features.unsqueeze(1)).flatten(1)
        return self.conditional_head(grad_reverse(h, lambda_))

    def label_parameters(self) -> int:
        """Parameters of the classifier path (feature extractor + label head), without the domain head."""
        return sum(p.numel() for m in (self.feature_extractor, self.label_head) for p in m.parameters())


def add_conditional_head(model: DomainAdversarialModel, hidden: int | None = None) -> nn.Module:
    """Give ``model`` CDAN's conditional adversary: :func:`mlp_head` from F*C inputs (F features: the label head's
    first ``Linear`` input; C classes: its last ``Linear`` output) to 2 domains, ``hidden`` units (default: those
    of the model's domain head, else 64). Returns the head (now ``model.conditional_head``)."""
    lins = [m for m in model.label_head.modules() if isinstance(m, nn.Linear)]
    if not lins:
        from ..errors import ConfigError

        raise ConfigError(f"{type(model).__name__}: the label head has no Linear layer, so the feature and class "
                          "counts of CDAN's conditional head are unknown; set model.conditional_head yourself")
    if hidden is None:
        dom = [m for m in model.domain_head.modules() if isinstance(m, nn.Linear)] if model.domain_head else []
        hidden = dom[0].out_features if len(dom) > 1 else 64
    ref = next(model.label_head.parameters())
    model.conditional_head = mlp_head(lins[0].in_features * lins[-1].out_features, 2, hidden).to(ref.device)
    return model.conditional_head
