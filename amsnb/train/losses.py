"""The losses of :func:`amsnb.train.fit`: the label loss and the domain-alignment loss(es), one function each.

Conventions every loss here keeps (the trainer and its DDP exactness rely on them):

- Per-event weights, normalised by the *global* sum of the weights (all-reduced over the ``world`` ranks of
  torchrun) and multiplied by ``world``: DDP averages the ranks' gradients, so its gradient is the single-process
  gradient of the whole global batch. With ``world=1`` nothing is reduced (no process group needed).
- An alignment loss takes the step's source and target tensors (what the model returned for the source and the
  target batch: domain logits here; features for a feature-matching loss), the per-event domain weights of each
  side (the items' ``dw``, default 1; e.g. source events weighted by class so that the source's class mix matches
  the target's) and ``world``, and returns one scalar. The trainer adds ``TrainConfig.domain_weight`` times it to
  the label loss (``trainer._domain_loss`` picks the alignment loss of a step).
- Lambda: :func:`domain_adversarial_loss` holds none; the schedule (:mod:`amsnb.train.schedules`) acts through the
  model's gradient reversal (``model(x, lambda_=...)``, :mod:`amsnb.models.layers`), which flips and scales the
  gradient reaching the feature extractor. A non-adversarial alignment loss would instead be scaled by it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _allsum(x: torch.Tensor, world: int) -> torch.Tensor:
    """``x`` summed over the ranks (``world`` > 1: an all-reduce of a copy); ``x`` itself for one process."""
    if world > 1:
        x = x.clone()
        torch.distributed.all_reduce(x)
    return x


def weighted_ce(logits, y, w, cw, world: int = 1):
    """sum_i w_i cw[y_i] CE_i / (global sum of w_i cw[y_i]); labels -1 are ignored. Scaled by ``world`` because
    DDP averages gradients over ranks."""
    mask = y >= 0
    yy = y.clamp(min=0)
    ww = w * cw.to(logits.device)[yy] * mask
    ce = F.cross_entropy(logits.float(), yy, reduction="none")
    denom = _allsum(ww.sum().detach(), world).clamp(min=1e-12)
    return (ww * ce).sum() * world / denom


def _event_weights(weights, n: int, device: torch.device) -> torch.Tensor:
    return weights.float().to(device) if weights is not None else torch.ones(n, device=device)


def domain_adversarial_loss(domain_logits_source: torch.Tensor, domain_logits_target: torch.Tensor,
                            weights_source: torch.Tensor | None = None, weights_target: torch.Tensor | None = None,
                            world: int = 1) -> torch.Tensor:
    """DANN's domain loss (Ganin & Lempitsky 2015): the weighted cross-entropy of the domain head telling source
    (label 0) from target (label 1) events, over the source and target events of the step together.

    ``weights_source`` / ``weights_target``: per-event weights (the items' ``dw``; default 1); an event of weight
    0 does not contribute. Normalised by the global weight of both sides (see the module docstring): the value is
    a weighted mean, and with ``world`` ranks DDP's averaged gradient is the single-process one. The gradient
    reaches the feature extractor reversed and scaled by lambda when the logits come from a model with gradient
    reversal (:class:`amsnb.models.layers.DomainAdversarialModel`).
    """
    device = domain_logits_source.device
    ns, nt = len(domain_logits_source), len(domain_logits_target)
    logits = torch.cat([domain_logits_source, domain_logits_target]).float()
    domain = torch.cat([torch.zeros(ns, dtype=torch.long, device=device),
                        torch.ones(nt, dtype=torch.long, device=device)])
    w = torch.cat([_event_weights(weights_source, ns, device), _event_weights(weights_target, nt, device)])
    return weighted_ce(logits, domain, w, torch.ones(2), world)
