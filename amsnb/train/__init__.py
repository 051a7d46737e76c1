"""Training of any torch classifier, with optional domain-adversarial adaptation (DANN, Ganin & Lempitsky 2015).

``fit(model, train, val, target=None, config=TrainConfig(...), outdir=...)`` -> :class:`TrainResult`; items are dicts
``{"x", "y", "w", "domain"}``; the model is called as ``model(x, lambda_=...)`` and returns
``{"logits", "domain_logits", "features", ...}`` (:class:`amsnb.models.layers.DomainAdversarialModel`).
See docs/training.md.
"""

from .data import ArrayDataset
from .grl import ganin_lambda, lambda_at
from .trainer import TrainConfig, TrainResult, default_collate, default_metrics, fit, predict, read_history

__all__ = ["ArrayDataset", "TrainConfig", "TrainResult", "default_collate", "default_metrics", "fit", "ganin_lambda",
           "lambda_at", "predict", "read_history"]
