"""Classifiers of amsnb, all built through one registry (:mod:`amsnb.models.registry`).

``build("coatnet" | "cvt" | "cnn" | "mda", config)`` -> a :class:`amsnb.train.dann.DomainAdversarialModel`
(feature extractor, label head, optional domain head) called as ``model(x, lambda_=...)``;
``save_model`` / ``load_model`` store safetensors weights + a JSON config.
"""

from .registry import available, build, load_model, make_config, presets, read_config, register, save_model

__all__ = ["available", "build", "load_model", "make_config", "presets", "read_config", "register", "save_model"]
