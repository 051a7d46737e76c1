"""Model selection without target labels: which epoch / setting to keep when the flight data carry no labels.

An AMS analyst has almost no labeled flight events (seed 000's ISS validation set: 10 electrons, 828 protons), so a
choice made on the labeled source validation set (MC) is a choice for the wrong distribution. Two unsupervised
scorers of the field estimate the *target* risk from labeled source-validation events and unlabeled target events:

- IWV, importance-weighted validation (Sugiyama, Krauledat & Mueller, JMLR 2007): the source-validation loss with
  each event weighted by the density ratio w(x) = p_target(x) / p_source(x);
- DEV, deep embedded validation (You et al., ICML 2019): IWV with the density ratio estimated on the candidate's
  own features and the weights as a control variate (E[w] = 1), which lowers the variance of the estimate.

The density ratio comes from a domain classifier (a standardised logistic regression, as
:func:`amsnb.train.diagnostics.domain_probe`) on features: w = (n_s / n_t) P(target | x) / P(source | x), with
cross-fitted (held-out) probabilities. Lower risk is better. Candidates are the outputs of
:func:`amsnb.train.predict` (``features=True``) on the source validation and target sets, e.g. per epoch through
:class:`EpochPredictions`; :func:`selection_table` ranks them (rows of dicts, as :mod:`amsnb.tables` renders)
and :func:`selection_summary` puts each scorer's choice next to the labeled one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import numpy as np

SCORERS = ("source", "iwv", "dev")


def density_ratio(features_source: np.ndarray, features_target: np.ndarray, seed: int = 0, folds: int = 3,
                  max_events: int = 20000, clip: float = 1e-3) -> np.ndarray:
    """w(x) = p_target(x) / p_source(x) for every source event, from a domain classifier on the features.

    Logistic regression (standardised) of target (1) against source (0) events, at most ``max_events`` target
    events (drawn with ``seed``); every source event gets the held-out probability of a ``folds``-fold
    cross-fit, so a classifier that memorises the sample does not inflate the weights. Probabilities are clipped to
    [``clip``, 1 - ``clip``]; the prior ratio n_s / n_t makes E_source[w] ~ 1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..errors import EmptySelectionError

    s = np.asarray(features_source, np.float64).reshape(len(features_source), -1)
    t = np.asarray(features_target, np.float64).reshape(len(features_target), -1)
    if len(s) < folds or len(t) < folds:
        raise EmptySelectionError(f"density_ratio: {len(s)} source and {len(t)} target events; need >= {folds} each")
    rng = np.random.default_rng(seed)
    if len(t) > max_events:
        t = t[rng.choice(len(t), max_events, replace=False)]
    x, y = np.concatenate([s, t]), np.concatenate([np.zeros(len(s)), np.ones(len(t))])
    p = np.empty(len(x))
    for fit_idx, held in StratifiedKFold(folds, shuffle=True, random_state=int(seed)).split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[fit_idx], y[fit_idx])
        p[held] = clf.predict_proba(x[held])[:, 1]
    ps = np.clip(p[:len(s)], clip, 1 - clip)
    return (len(s) / len(t)) * ps / (1 - ps)


def iwv_risk(loss: np.ndarray, w: np.ndarray) -> float:
    """Importance-weighted validation risk: mean of w_i loss_i over the source-validation events."""
    return float(np.mean(np.asarray(w) * np.asarray(loss)))


def dev_risk(loss: np.ndarray, w: np.ndarray) -> float:
    """Deep embedded validation risk (You et al. 2019, Algorithm 1): mean(w L) + eta (mean(w) - 1) with the
    control-variate coefficient eta = -Cov(w L, w) / Var(w) (E_source[w] = 1 for the true ratio)."""
    w, wl = np.asarray(w, np.float64), np.asarray(w, np.float64) * np.asarray(loss, np.float64)
    var = np.var(w, ddof=1) if len(w) > 1 else 0.0
    eta = -np.cov(wl, w)[0, 1] / var if var > 0 else 0.0
    return float(wl.mean() + eta * w.mean() - eta)


def event_loss(pred: dict) -> np.ndarray:
    """The per-event risk of a :func:`amsnb.train.predict` output on labeled events: the cross-entropy
    (``loss_terms``), each event weighted by its ``weight`` relative to the mean weight."""
    m = pred["label"] >= 0
    w = np.asarray(pred["weight"], np.float64)[m]
    return np.asarray(pred["loss_terms"], np.float64)[m] * (w / w.mean())


def unlabeled_scores(source_val: dict, target: dict, seed: int = 0) -> dict[str, float]:
    """The risks (lower is better) of one candidate: ``source`` (the plain source-validation loss, the choice an
    analyst makes on MC), ``iwv`` and ``dev``. ``source_val``/``target``: :func:`amsnb.train.predict` outputs
    with ``features=True`` on the labeled source-validation set and the unlabeled target set."""
    from ..errors import ConfigError

    if "features" not in source_val or "features" not in target:
        raise ConfigError("unlabeled_scores: predict the candidates with features=True (the density ratio is "
                          "estimated on the model's features)")
    m = source_val["label"] >= 0
    loss = event_loss(source_val)
    w = density_ratio(source_val["features"][m], target["features"], seed=seed)
    return {"source": float(loss.mean()), "iwv": iwv_risk(loss, w), "dev": dev_risk(loss, w)}


def selection_table(candidates: dict[Hashable, tuple[dict, dict]], seed: int = 0) -> list[dict]:
    """One row per candidate (``candidate``: its key, an epoch or a setting) with the risks of
    :func:`unlabeled_scores` and each scorer's rank (``<scorer>_rank``, 1 = chosen; ties share the lower rank).
    ``candidates``: key -> (source_val, target) predictions."""
    from ..errors import EmptySelectionError

    if not candidates:
        raise EmptySelectionError("selection_table: no candidates (e.g. no epoch was predicted)")
    rows = [{"candidate": k, **unlabeled_scores(sv, tg, seed)} for k, (sv, tg) in candidates.items()]
    for s in SCORERS:
        for r in rows:
            r[f"{s}_rank"] = 1 + sum(o[s] < r[s] for o in rows)
    return rows


def chosen(rows: list[dict], scorer: str) -> Hashable:
    """The candidate a scorer picks from :func:`selection_table`'s rows (lowest risk; the first on a tie)."""
    return min(rows, key=lambda r: r[scorer])["candidate"]


def selection_summary(rows: list[dict], labeled: dict[Hashable, float], test: dict[Hashable, float],
                      higher_is_better: bool = True) -> list[dict]:
    """Each scorer's choice next to the labeled one: one row per scorer (``labeled``: the candidate best on the
    labeled target-validation metric, e.g. the rejection on ``iss_val``; then ``source``, ``iwv``, ``dev``) with the
    chosen candidate, its ``test`` metric (e.g. the rejection on ``iss_test``) and the difference to the labeled
    choice's."""
    pick = max if higher_is_better else min
    picks = {"labeled": pick(labeled, key=labeled.get), **{s: chosen(rows, s) for s in SCORERS}}
    ref = test[picks["labeled"]]
    return [{"scorer": s, "chosen": k, "test": test[k], "test_minus_labeled": test[k] - ref}
            for s, k in picks.items()]


class EpochPredictions:
    """A :func:`amsnb.train.fit` callback that keeps each epoch's predictions on the source-validation and target
    sets (``features=True``): ``fit(..., callbacks=[ep])``, then ``selection_table(ep.candidates)``; and on the
    ``extra`` sets (scores only, e.g. a test set to say where each choice lands): ``ep.extra[epoch][name]``.
    ``fit`` trains the model in place, so at the callback the model holds that epoch's weights (epochs before a
    resume, or all of a reused finished run, are not seen). Predictions use :func:`amsnb.train.predict` with
    ``collate_fn`` (the nuclei graphs need theirs)."""

    def __init__(self, model, source_val, target, batch_size: int = 512, device: str = "cpu",
                 collate_fn: Callable | None = None, max_target: int | None = 20000, seed: int = 0,
                 extra: dict | None = None):
        from torch.utils.data import Subset

        self.model, self.source_val, self.batch_size, self.device = model, source_val, batch_size, device
        self.collate_fn = collate_fn
        if max_target is not None and len(target) > max_target:
            idx = np.sort(np.random.default_rng(seed).choice(len(target), max_target, replace=False))
            target = Subset(target, idx.tolist())
        self.target, self.extra_sets = target, dict(extra or {})
        self.candidates: dict[int, tuple[dict, dict]] = {}
        self.extra: dict[int, dict[str, dict]] = {}

    def __call__(self, history: list[dict]) -> None:
        from .trainer import predict

        def run(ds, features=True):
            return predict(self.model, ds, self.batch_size, self.device, self.collate_fn, features=features)

        epoch = int(history[-1]["epoch"])
        self.candidates[epoch] = (run(self.source_val), run(self.target))
        self.extra[epoch] = {name: run(ds, False) for name, ds in self.extra_sets.items()}
