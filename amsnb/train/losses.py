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
- Lambda: the adversarial losses (:func:`domain_adversarial_loss`, :func:`conditional_adversarial_loss`) hold
  none; the schedule (:mod:`amsnb.train.schedules`) acts through the model's gradient reversal
  (``model(x, lambda_=...)``, :mod:`amsnb.models.layers`), which flips and scales the gradient reaching the feature
  extractor. The feature-matching losses (:func:`coral_loss`, :func:`mmd_loss`) are minimised by the features
  directly; the trainer multiplies them by lambda.
- A statistic of the whole global batch (a covariance, the pairwise kernel sums) is the all-reduced (all-gathered)
  value, with the gradient flowing through this rank's own events only; times ``world``, DDP's averaged gradient
  is again the single-process one.

The alignment a run uses is ``TrainConfig.alignment`` (:data:`ALIGNMENTS`).
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


#: The alignment methods of ``TrainConfig.alignment``: DANN (Ganin & Lempitsky 2015), DeepCORAL (Sun & Saenko
#: 2016), multi-kernel MMD (DAN, Long et al. 2015), CDAN and CDAN+E (Long et al. 2018).
ALIGNMENTS = ("dann", "coral", "mmd", "cdan", "cdan+e")


def _global(x: torch.Tensor, world: int) -> torch.Tensor:
    """The global (all-reduced) value of a per-rank sum ``x``, differentiable through this rank's part only."""
    if world == 1:
        return x
    return x + (_allsum(x.detach(), world) - x.detach())


def _gathered(x: torch.Tensor, world: int) -> torch.Tensor:
    """The rows of every rank, rank order, this rank's own rows differentiable (the others are constants)."""
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    parts[torch.distributed.get_rank()] = x
    return torch.cat(parts)


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


def coral_loss(features_source: torch.Tensor, features_target: torch.Tensor,
               weights_source: torch.Tensor | None = None, weights_target: torch.Tensor | None = None,
               world: int = 1) -> torch.Tensor:
    """DeepCORAL (Sun & Saenko, ECCV-W 2016): ||C_s - C_t||_F^2 / (4 d^2), the distance between the weighted
    feature covariances of the source and target events (d features). 0 for identical batches; the features are
    pulled together by minimising it (no gradient reversal). Weights: the per-event ``dw`` (weighted mean and
    covariance of each side, each over the global batch)."""
    def cov(f, w):
        f, w = f.float().flatten(1), _event_weights(w, len(f), f.device)
        s0 = _global(w.sum(), world).clamp(min=1e-12)
        mean = _global((w[:, None] * f).sum(0), world) / s0
        second = _global((w[:, None] * f).T @ f, world) / s0
        return second - torch.outer(mean, mean)

    cs, ct = cov(features_source, weights_source), cov(features_target, weights_target)
    d = cs.shape[0]
    return ((cs - ct) ** 2).sum() / (4 * d * d) * world


def mmd_loss(features_source: torch.Tensor, features_target: torch.Tensor,
             weights_source: torch.Tensor | None = None, weights_target: torch.Tensor | None = None,
             world: int = 1, kernel_scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Multi-kernel MMD^2 (DAN, Long et al., ICML 2015): the weighted (biased, V-statistic) squared maximum mean
    discrepancy between source and target features under the mean of Gaussian kernels exp(-|x - y|^2 / (s m)),
    m the median squared distance of all pairs of events of nonzero weight in the batch (detached), s in
    ``kernel_scales``.

    Each side's events are weighted by ``dw`` normalised to sum 1 over that side of the global batch; exactly 0 for
    identical batches, and >= 0. Minimised by the features directly (no gradient reversal)."""
    fs = _gathered(features_source.float().flatten(1), world)
    ft = _gathered(features_target.float().flatten(1), world)
    ws = _gathered(_event_weights(weights_source, len(features_source), features_source.device), world)
    wt = _gathered(_event_weights(weights_target, len(features_target), features_target.device), world)
    ws, wt = ws / ws.sum().clamp(min=1e-12), wt / wt.sum().clamp(min=1e-12)
    f = torch.cat([fs, ft])
    sq = (f * f).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * f @ f.T).clamp(min=0)
    live = torch.cat([ws, wt]) > 0
    off = d2.detach()[live][:, live][~torch.eye(int(live.sum()), dtype=torch.bool, device=f.device)]
    med = off.median().clamp(min=1e-12) if off.numel() else torch.ones((), device=f.device)
    k = sum(torch.exp(-d2 / (s * med)) for s in kernel_scales) / len(kernel_scales)
    w = torch.cat([ws, -wt])
    return (w @ k @ w) * world


def entropy_weights(logits: torch.Tensor) -> torch.Tensor:
    """CDAN+E's per-event weight 1 + exp(-H(p)) of the classifier's softmax p (detached): confident predictions
    count more in the conditional adversary (Long et al. 2018, Eq. 9)."""
    p = torch.softmax(logits.detach().float(), 1)
    h = -(p * torch.log(p.clamp(min=1e-12))).sum(1)
    return 1.0 + torch.exp(-h)


def conditional_adversarial_loss(conditional_logits_source: torch.Tensor, conditional_logits_target: torch.Tensor,
                                 weights_source: torch.Tensor | None = None,
                                 weights_target: torch.Tensor | None = None, world: int = 1,
                                 logits_source: torch.Tensor | None = None,
                                 logits_target: torch.Tensor | None = None) -> torch.Tensor:
    """CDAN (Long et al., NeurIPS 2018): DANN's domain cross-entropy, but of an adversary that sees the outer
    product of the features and the classifier's softmax (``conditional_domain_logits`` of
    :class:`amsnb.models.layers.DomainAdversarialModel`, through the gradient reversal), so class-conditional
    feature distributions are aligned instead of the marginal one.

    With the classifier's logits of both sides (CDAN+E), each event's weight ``dw`` is multiplied by
    :func:`entropy_weights` and each side rescaled to keep its total weight."""
    ws, wt = weights_source, weights_target
    if logits_source is not None and logits_target is not None:
        def conditioned(w, logits):
            w = _event_weights(w, len(logits), logits.device)
            e = w * entropy_weights(logits)
            return e * (_allsum(w.sum(), world) / _allsum(e.sum(), world).clamp(min=1e-12))

        ws, wt = conditioned(ws, logits_source), conditioned(wt, logits_target)
    return domain_adversarial_loss(conditional_logits_source, conditional_logits_target, ws, wt, world)
