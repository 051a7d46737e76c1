"""Classifiers of amsnb, all built through one registry (:mod:`amsnb.models.registry`).

``build("coatnet" | "cvt" | "cnn", config)`` -> a :class:`amsnb.models.layers.DomainAdversarialModel`
(feature extractor, label head, optional domain head) called as ``model(x, lambda_=...)``; models of other modules
register themselves on import (the nuclei MDA: ``import amsnb.nuclei.model``, then ``build("mda")``).
``save_model`` / ``load_model`` store safetensors weights + a JSON config. Generic layers (gradient reversal, the
domain-adversarial wrapper, MLP heads) are in :mod:`amsnb.models.layers`.
"""

from .layers import DomainAdversarialModel, GradientReversal, grad_reverse, mlp_head
from .registry import available, build, load_model, make_config, presets, read_config, register, save_model

__all__ = ["DomainAdversarialModel", "GradientReversal", "available", "build", "grad_reverse", "load_model",
           "make_config", "mlp_head", "presets", "read_config", "register", "save_model"]
