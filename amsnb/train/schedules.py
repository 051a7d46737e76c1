"""Lambda schedules of the domain adaptation (Ganin & Lempitsky, ICML 2015): the strength of the domain term.

The trainer calls :func:`lambda_at` once per step and hands lambda to the model's gradient reversal layer
(:mod:`amsnb.models.layers`; the reversal itself is not here); the domain losses are in :mod:`amsnb.train.losses`.
``progress`` is the step count over the *configured* run length (``TrainConfig.epochs`` times the steps per epoch),
so a run that stops early (early stopping, ``stop_after_epoch``) never reaches the end of the ramp.
"""

from __future__ import annotations

import math


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
