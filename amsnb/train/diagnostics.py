"""Domain diagnostics: can MC (source) and ISS (target) still be told apart from the learned features?

DANN's aim is a domain classifier at chance: accuracy ~0.5 and AUC ~0.5 on held-out source and target events.
Two views: (1) the model's own domain head on held-out sets (only with a domain head); (2) :func:`domain_probe`,
a fresh logistic regression (sklearn) scored by k-fold cross-validation on the features, which also works for a
model trained without DA ("before DA"), so the two can be compared. Plus a 2-D PCA projection of the features.
"""

from __future__ import annotations

import numpy as np


def _acc_auc(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from ..metrics import roc_auc

    return float(((score >= 0.5) == (y == 1)).mean()), roc_auc(score, y)


def domain_head_separation(source_domain_score: np.ndarray, target_domain_score: np.ndarray) -> dict[str, float]:
    """Accuracy and AUC of the model's domain head (P(target)) on held-out source and target events."""
    s, t = np.asarray(source_domain_score), np.asarray(target_domain_score)
    if np.isnan(s).all():
        return {"head_acc": float("nan"), "head_auc": float("nan")}
    score = np.concatenate([s, t])
    y = np.concatenate([np.zeros(len(s)), np.ones(len(t))])
    acc, auc = _acc_auc(score, y)
    return {"head_acc": acc, "head_auc": auc}


def domain_probe(features_source: np.ndarray, features_target: np.ndarray, seed: int = 0, folds: int = 3,
                 max_events: int = 20000) -> dict[str, float]:
    """How well a *fresh* classifier tells source from target features (0.5 = indistinguishable): the one feature
    probe of amsnb (ECAL ``domain_study``, nuclei study).

    Equal numbers of source and target events (at most ``max_events`` each, drawn with ``seed``), a standardised
    logistic regression, stratified ``folds``-fold cross-validation (shuffled with ``seed``); accuracy and ROC AUC
    (:func:`amsnb.metrics.roc_auc`) of the held-out predictions of every event. Why fresh: a model's own domain
    head is trained against its features, so only a probe works for a model trained without DA ("before DA").
    Returns ``probe_auc``, ``probe_acc``, ``probe_n_test`` (events with a held-out prediction) and ``probe_folds``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..errors import ConfigError, EmptySelectionError

    if folds < 2:
        raise ConfigError(f"domain_probe: folds={folds}; cross-validation needs at least 2 folds")
    s, t = np.asarray(features_source), np.asarray(features_target)
    n = min(len(s), len(t), max_events)
    if n < max(10, folds):
        raise EmptySelectionError(f"domain_probe: {n} events per domain; need at least {max(10, folds)}")
    rng = np.random.default_rng(seed)
    s = s[rng.choice(len(s), n, replace=False)].reshape(n, -1)
    t = t[rng.choice(len(t), n, replace=False)].reshape(n, -1)
    x = np.concatenate([s, t]).astype(np.float64)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(seed))
    score = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    acc, auc = _acc_auc(score, y)
    return {"probe_acc": acc, "probe_auc": auc, "probe_n_test": int(len(y)), "probe_folds": int(folds)}


def pca_projection(source_features: np.ndarray, target_features: np.ndarray, max_events: int = 3000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D PCA (fit on both domains, standardised) -> (source_2d, target_2d, explained_variance_ratio)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    s = source_features[rng.permutation(len(source_features))[:max_events]]
    t = target_features[rng.permutation(len(target_features))[:max_events]]
    scaler = StandardScaler().fit(np.concatenate([s, t]))
    pca = PCA(2, random_state=seed).fit(scaler.transform(np.concatenate([s, t])))
    return pca.transform(scaler.transform(s)), pca.transform(scaler.transform(t)), pca.explained_variance_ratio_
