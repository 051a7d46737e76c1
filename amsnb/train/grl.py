"""Gradient reversal (Ganin & Lempitsky, ICML 2015, "Unsupervised domain adaptation by backpropagation").

Identity in the forward pass; multiplies the gradient by ``-lambda_`` in the backward pass. Placed between the
feature extractor and the domain classifier, it makes the feature extractor *maximise* the domain loss while the
domain classifier itself still *minimises* it (the classifier's own parameters sit after the reversal).
"""

from __future__ import annotations

import math

import torch


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


def ganin_lambda(progress: float, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky's schedule lambda(p) = 2 / (1 + exp(-gamma p)) - 1 (gamma = 10 in the paper).

    ``progress`` p runs from 0 (start) to 1 (end of the whole run, all epochs), so the domain term is switched
    on gradually while the label classifier is still noisy.
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def lambda_at(schedule: str, progress: float, lambda_max: float = 1.0) -> float:
    """Domain-loss strength at run progress ``progress`` for schedule ``"ganin"``, ``"constant"`` or ``"off"``."""
    if schedule == "ganin":
        return lambda_max * ganin_lambda(progress)
    if schedule == "constant":
        return float(lambda_max)
    if schedule == "off":
        return 0.0
    from ..errors import ConfigError

    raise ConfigError(f"lambda_schedule='{schedule}': use 'ganin', 'constant' or 'off'")
