"""Training of any torch classifier, with optional domain adaptation (DANN, DeepCORAL, MMD, CDAN: ``alignment``).

``fit(model, train, val, target=None, config=TrainConfig(...), outdir=...)`` -> :class:`TrainResult`; items are dicts
``{"x", "y", "w", "domain"}``; the model is called as ``model(x, lambda_=...)`` and returns
``{"logits", "domain_logits", "features", ...}`` (:class:`amsnb.models.layers.DomainAdversarialModel`).
The losses are in :mod:`amsnb.train.losses`, the lambda schedules in :mod:`amsnb.train.schedules`;
:func:`training_request` says which config fields make "the same training". See docs/training.md.
"""

from .data import ArrayDataset
from .losses import (
    ALIGNMENTS,
    conditional_adversarial_loss,
    coral_loss,
    domain_adversarial_loss,
    entropy_weights,
    mmd_loss,
    weighted_ce,
)
from .schedules import ganin_lambda, lambda_at
from .trainer import (
    TrainConfig,
    TrainResult,
    default_collate,
    default_metrics,
    fit,
    predict,
    read_history,
    training_request,
)

__all__ = ["ALIGNMENTS", "ArrayDataset", "TrainConfig", "TrainResult", "default_collate", "default_metrics",
           "conditional_adversarial_loss", "coral_loss", "domain_adversarial_loss", "entropy_weights", "fit",
           "mmd_loss", "ganin_lambda", "lambda_at", "predict", "read_history",
           "training_request", "weighted_ce"]
