"""Training of any torch classifier, with optional domain-adversarial adaptation (DANN, Ganin & Lempitsky 2015).

``fit(model, train, val, target=None, config=TrainConfig(...), outdir=...)`` -> :class:`TrainResult`; items are dicts
``{"x", "y", "w", "domain"}``; the model is called as ``model(x, lambda_=...)`` and returns
``{"logits", "domain_logits", "features"}`` (:class:`DomainAdversarialModel`). See docs/training.md.
"""

from .dann import DomainAdversarialModel, mlp_head
from .data import ArrayDataset
from .grl import GradientReversal, ganin_lambda, grad_reverse, lambda_at
from .trainer import TrainConfig, TrainResult, default_collate, default_metrics, fit, predict, read_history

__all__ = ["ArrayDataset", "DomainAdversarialModel", "GradientReversal", "TrainConfig", "TrainResult",
           "default_collate", "default_metrics", "fit", "ganin_lambda", "grad_reverse", "lambda_at", "mlp_head",
           "predict", "read_history"]
