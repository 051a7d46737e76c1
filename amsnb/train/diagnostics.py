"""Domain diagnostics: can MC (source) and ISS (target) still be told apart from the learned features?

DANN's aim is a domain classifier at chance: accuracy ~0.5 and AUC ~0.5 on held-out source and target events.
Two views: (1) the model's own domain head on held-out sets (only with a domain head); (2) a fresh logistic
regression (sklearn) trained on half of the features and tested on the other half, which also works for a model
trained without DA ("before DA"), so the two can be compared. Plus a 2-D PCA projection of the features.
"""

from __future__ import annotations

import numpy as np


def _acc_auc(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    return float(((score >= 0.5) == (y == 1)).mean()), float(roc_auc_score(y, score))


def domain_head_separation(source_domain_score: np.ndarray, target_domain_score: np.ndarray) -> dict[str, float]:
    """Accuracy and AUC of the model's domain head (P(target)) on held-out source and target events."""
    s, t = np.asarray(source_domain_score), np.asarray(target_domain_score)
    if np.isnan(s).all():
        return {"head_acc": float("nan"), "head_auc": float("nan")}
    score = np.concatenate([s, t])
    y = np.concatenate([np.zeros(len(s)), np.ones(len(t))])
    acc, auc = _acc_auc(score, y)
    return {"head_acc": acc, "head_auc": auc}


def feature_separation(source_features: np.ndarray, target_features: np.ndarray, seed: int = 0,
                       max_events: int = 20000) -> dict[str, float]:
    """Held-out accuracy / AUC of a logistic regression separating source from target features (balanced)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(source_features), len(target_features), max_events)
    s = source_features[rng.choice(len(source_features), n, replace=False)]
    t = target_features[rng.choice(len(target_features), n, replace=False)]
    x = np.concatenate([s, t]).astype(np.float64)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    perm = rng.permutation(len(y))
    half = len(perm) // 2
    tr, te = perm[:half], perm[half:]
    scaler = StandardScaler().fit(x[tr])
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(x[tr]), y[tr])
    score = clf.predict_proba(scaler.transform(x[te]))[:, 1]
    acc, auc = _acc_auc(score, y[te])
    return {"probe_acc": acc, "probe_auc": auc, "probe_n_test": int(len(te))}


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
