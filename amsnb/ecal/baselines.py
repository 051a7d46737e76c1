"""Classical ECAL e/p estimators: the bar the deep models must beat.

* **BDT**: gradient-boosted trees on ECAL shower-shape variables only (like the AMS ECAL BDT; E/R and the TRD are
  other sub-detectors' estimators and stay out): the scalar shape variables, log10 of the energy, and the per-layer
  energy fractions and lateral RMS (18 + 18). LightGBM by default (the library choice was measured, see
  ``docs/cuts.md`` and ``benchmarks/bench_cuts.py``); class weights balance electrons and protons; early stopping
  on a validation part of the training sets; a small hyper-parameter grid judged on the validation rejection at
  90 % electron efficiency. Saved as LightGBM's native text model + JSON config (no pickle).
* **Likelihood**: the classic ECAL likelihood estimator: per-variable electron and proton PDFs from histograms in
  energy bins, score = sum of log(p_e / p_p) (naive Bayes; correlations are ignored, which is why the BDT wins).
  Saved as JSON (bin edges and log-PDFs).

Both write the common score format (:mod:`amsnb.scores`, models "bdt" and "likelihood") for every evaluation
set through :func:`ensure_baseline_scores`. Score = raw margin (log-odds) for the BDT and the log-likelihood ratio:
unbounded, so float32 score files keep the resolution of the proton tail (a probability saturates at 1.0).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputFileError
from ..schema import N_LAYERS
from ..workdir import Workdir
from .datasets import SETS

#: ECAL shower-shape scalars (amsnb.schema / amsnb.ecal.reco). No tracker, TRD or geometry variables.
SHAPE_VARIABLES = ("shower_max", "shower_alpha", "lateral_rms", "f_front", "f_rear", "f_core", "s1_s3", "s3_s5",
                   "n_hit_cells")
BDT_FEATURES = (*SHAPE_VARIABLES, "log10_energy", *(f"layer_frac_{i:02d}" for i in range(N_LAYERS)),
                *(f"layer_rms_{i:02d}" for i in range(N_LAYERS)))
FEATURE_BRANCHES = (*SHAPE_VARIABLES, "energy", "layer_frac", "layer_rms")
ID_BRANCHES = ("run", "event", "label", "weight", "energy")
#: Every selected set is scored (set names are defined once, in :mod:`amsnb.ecal.datasets`).
EVAL_SETS = SETS
#: Version of the baselines' training and scoring code (bump when their output changes for the same request).
BASELINE_VERSION = "1"
MODELS = ("bdt", "likelihood")
#: Validation share of the training sets (early stopping, hyper-parameter choice), by a salted event hash.
VAL_FRACTION = 0.25
_VAL_SALT = 7919


def feature_matrix(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n, 46) float32 matrix of :data:`BDT_FEATURES`."""
    missing = [b for b in FEATURE_BRANCHES if b not in arrays]
    if missing:
        raise ConfigError(f"the BDT features need the branches {missing}; read them with "
                          f"branches={list(FEATURE_BRANCHES)}")
    cols = [np.asarray(arrays[v], np.float32) for v in SHAPE_VARIABLES]
    cols.append(np.log10(np.maximum(np.asarray(arrays["energy"], np.float64), 1e-3)).astype(np.float32))
    return np.column_stack(cols + [np.asarray(arrays["layer_frac"], np.float32),
                                   np.asarray(arrays["layer_rms"], np.float32)])


def _labeled(arrays: Mapping[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """Labeled events only; refuse a set with a single class (a classifier needs both)."""
    label = np.asarray(arrays["label"])
    keep = label >= 0
    out = {k: np.asarray(v)[keep] for k, v in arrays.items()}
    n_e, n_p = int((out["label"] == 1).sum()), int((out["label"] == 0).sum())
    if n_e == 0 or n_p == 0:
        raise ConfigError(f"{what}: {n_e} electrons and {n_p} protons (label 1 / 0); a classifier needs both "
                          "classes. Train on a labeled set with both (mc_high, mc_low), not a single-particle file")
    return out


def _event_weights(label: np.ndarray) -> np.ndarray:
    """Per-event class weights giving both classes the same total (``amsnb.metrics.balanced_class_weights``, the
    seed's weighted loss for the imbalance)."""
    from ..metrics import balanced_class_weights

    label = np.asarray(label).astype(int)
    return balanced_class_weights(label, 2)[label]


def validation_mask(run, event, fraction: float = VAL_FRACTION) -> np.ndarray:
    """Deterministic validation split by a salted event hash (independent of the mc_high/mc_test split)."""
    from .datasets import event_hash

    return event_hash(np.asarray(run).astype(np.int64) + _VAL_SALT, event) < fraction


# ------------------------------------------------------------------------------------------------ BDT
@dataclass
class BDTConfig:
    """LightGBM parameters (names as in LightGBM); ``n_estimators`` is the cap, early stopping picks the size."""

    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    n_estimators: int = 1000
    early_stopping: int = 50
    #: log-loss gains below this over ``early_stopping`` rounds count as none: on (nearly) separable samples the
    #: validation loss creeps down forever as the margins grow, without changing the ranking of events
    min_delta: float = 1e-4
    seed: int = 1


#: The small grid of :func:`train_bdt` (``search="small"``); values around LightGBM's defaults.
SEARCH_GRIDS = {
    "none": [{}],
    "small": [{"num_leaves": nl, "learning_rate": lr, "min_child_samples": mc}
              for nl in (15, 63) for lr in (0.05, 0.1) for mc in (20, 60)],
}


class BDT:
    """A trained LightGBM booster with its feature list; ``score(arrays)`` is the raw margin (log-odds)."""

    def __init__(self, booster, config: BDTConfig, info: dict | None = None):
        self.booster = booster
        self.config = config
        self.info = info or {}

    def score(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        x = feature_matrix(arrays)
        return self.booster.predict(x, raw_score=True, num_threads=1).astype(np.float64)

    def importances(self, kind: str = "gain") -> dict[str, float]:
        """Feature importance (total split gain by default), normalised to sum 1, largest first."""
        imp = self.booster.feature_importance(importance_type=kind).astype(float)
        imp = imp / imp.sum() if imp.sum() > 0 else imp
        order = np.argsort(imp)[::-1]
        return {BDT_FEATURES[i]: float(imp[i]) for i in order}

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "model.txt"))
        meta = {"kind": "bdt", "library": "lightgbm", "features": list(BDT_FEATURES), "config": asdict(self.config),
                "info": self.info}
        (folder / "config.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BDT:
        import lightgbm as lgb

        folder = Path(folder)
        meta = _read_meta(folder, "bdt")
        if meta.get("features") != list(BDT_FEATURES):
            raise ConfigError(f"{folder}/config.json: the model was trained on other features; retrain it "
                              "(ensure_baseline_scores(..., retrain=True))")
        booster = lgb.Booster(model_file=str(folder / "model.txt"))
        return cls(booster, BDTConfig(**meta["config"]), meta.get("info", {}))


def _read_meta(folder: Path, kind: str) -> dict:
    path = folder / "config.json"
    if not path.exists():
        raise InputFileError(f"{folder}: no config.json; this is not a saved amsnb {kind} model")
    meta = json.loads(path.read_text())
    if meta.get("kind") != kind:
        raise ConfigError(f"{path}: holds a '{meta.get('kind')}' model, not a '{kind}'")
    return meta


def _fit_lgb(x, y, w, xv, yv, wv, cfg: BDTConfig):
    import lightgbm as lgb

    params = {"objective": "binary", "metric": "binary_logloss", "learning_rate": cfg.learning_rate,
              "num_leaves": cfg.num_leaves, "min_child_samples": cfg.min_child_samples,
              "feature_fraction": cfg.feature_fraction, "bagging_fraction": cfg.bagging_fraction, "bagging_freq": 1,
              "lambda_l2": cfg.lambda_l2, "seed": cfg.seed, "num_threads": 1, "verbosity": -1,
              "deterministic": True, "force_col_wise": True}
    dtrain = lgb.Dataset(x, y, weight=w, feature_name=list(BDT_FEATURES), free_raw_data=False)
    dval = lgb.Dataset(xv, yv, weight=wv, reference=dtrain)
    return lgb.train(params, dtrain, num_boost_round=cfg.n_estimators, valid_sets=[dval],
                     callbacks=[lgb.early_stopping(cfg.early_stopping, min_delta=cfg.min_delta, verbose=False)])


def _split(arrays: Mapping[str, np.ndarray], what: str):
    arrays = _labeled(arrays, what)
    val = validation_mask(arrays["run"], arrays["event"])
    train = {k: v[~val] for k, v in arrays.items()}
    valid = {k: v[val] for k, v in arrays.items()}
    _labeled(train, f"{what} (training part)")
    _labeled(valid, f"{what} (validation part)")
    return train, valid


def _val_key(point, logloss: float):
    """Order candidates: higher validation rejection at 90 % efficiency, then lower log-loss (ties, limits)."""
    rej = point.rejection if not point.is_lower_limit else float(point.n_bkg)
    return (rej, -logloss)


def train_bdt(arrays: Mapping[str, np.ndarray], search: str | Sequence[dict] = "small", seed: int = 1,
              progress: bool = True, what: str = "training set") -> BDT:
    """Train the ECAL BDT on labeled events (split into training and validation parts by event hash)."""
    from tqdm.auto import tqdm

    from ..metrics import rejection_at_efficiency

    grid = SEARCH_GRIDS[search] if isinstance(search, str) else list(search)
    if isinstance(search, str) and search not in SEARCH_GRIDS:
        raise ConfigError(f"search='{search}': use one of {list(SEARCH_GRIDS)} or a list of parameter dicts")
    train, valid = _split(arrays, what)
    x, y, w = feature_matrix(train), train["label"].astype(int), _event_weights(train["label"])
    xv, yv, wv = feature_matrix(valid), valid["label"].astype(int), _event_weights(valid["label"])
    best, trials = None, []
    for params in tqdm(grid, desc="BDT search", disable=not progress, leave=False):
        cfg = BDTConfig(seed=seed, **params)
        t0 = time.perf_counter()
        booster = _fit_lgb(x, y, w, xv, yv, wv, cfg)
        seconds = time.perf_counter() - t0
        sv = booster.predict(xv, raw_score=True)
        logloss = _logloss(sv, yv, wv)
        point = rejection_at_efficiency(sv, yv, efficiency=0.9)
        trial = {**asdict(cfg), "best_iteration": booster.best_iteration, "val_rejection_90": point.rejection,
                 "val_rejection_is_lower_limit": point.is_lower_limit, "val_logloss": logloss, "seconds": seconds}
        trials.append(trial)
        if best is None or _val_key(point, logloss) > best[0]:
            best = (_val_key(point, logloss), booster, cfg, trial)
    _, booster, cfg, trial = best
    info = {"n_train": {"electrons": int((y == 1).sum()), "protons": int((y == 0).sum())},
            "n_val": {"electrons": int((yv == 1).sum()), "protons": int((yv == 0).sum())},
            "chosen": trial, "trials": trials}
    return BDT(booster, cfg, info)


def _logloss(margin: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted binary cross-entropy of raw margins (log-sigmoid form, stable for large margins)."""
    m = np.asarray(margin, np.float64)
    return float(np.average(np.logaddexp(0.0, -m) * y + np.logaddexp(0.0, m) * (1 - y), weights=w))


# ------------------------------------------------------------------------------------------------ comparison
def compare_libraries(arrays: Mapping[str, np.ndarray], libraries: Sequence[str] = ("lightgbm", "xgboost", "sklearn"),
                      seed: int = 1, efficiencies: Sequence[float] = (0.9, 0.98, 0.995)) -> list[dict]:
    """Same features, weights, split and comparable settings for LightGBM, XGBoost and sklearn's
    HistGradientBoosting (XGBoost is optional: skipped with a note when not installed): validation rejection at
    each efficiency (68 % interval; a lower limit when no proton
    passes, then the higher efficiencies discriminate), weighted log-loss, AUC, training and scoring time."""
    from ..metrics import rejection_at_efficiency, roc_auc

    train, valid = _split(arrays, "comparison set")
    x, y, w = feature_matrix(train), train["label"].astype(int), _event_weights(train["label"])
    xv, yv, wv = feature_matrix(valid), valid["label"].astype(int), _event_weights(valid["label"])
    import importlib.util

    rows = []
    for lib in libraries:
        if lib in ("xgboost", "sklearn") and importlib.util.find_spec(lib) is None:
            rows.append({"library": lib, "skipped": f"{lib} is not installed (optional: pip install {lib})"})
            continue
        t0 = time.perf_counter()
        if lib == "lightgbm":
            model = _fit_lgb(x, y, w, xv, yv, wv, BDTConfig(seed=seed))
            t1 = time.perf_counter()
            sv = model.predict(xv, raw_score=True)
            n_trees = model.best_iteration
        elif lib == "xgboost":
            import xgboost as xgb

            params = {"objective": "binary:logistic", "eval_metric": "logloss", "eta": 0.05, "max_leaves": 31,
                      "grow_policy": "lossguide", "tree_method": "hist", "subsample": 0.8, "colsample_bytree": 0.8,
                      "lambda": 1.0, "min_child_weight": 1.0, "seed": seed, "nthread": 1}
            dtr, dva = xgb.DMatrix(x, y, weight=w), xgb.DMatrix(xv, yv, weight=wv)
            stop = xgb.callback.EarlyStopping(rounds=50, min_delta=1e-4, save_best=False)
            model = xgb.train(params, dtr, 1000, evals=[(dva, "val")], callbacks=[stop], verbose_eval=False)
            t1 = time.perf_counter()
            sv = model.predict(dva, output_margin=True, iteration_range=(0, model.best_iteration + 1))
            n_trees = model.best_iteration + 1
        elif lib == "sklearn":
            from sklearn.ensemble import HistGradientBoostingClassifier

            model = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=1000, max_leaf_nodes=31,
                                                   l2_regularization=1.0, early_stopping=True, n_iter_no_change=50,
                                                   tol=1e-4,
                                                   validation_fraction=0.2, random_state=seed)
            model.fit(x, y, sample_weight=w)
            t1 = time.perf_counter()
            sv = model.decision_function(xv)
            n_trees = model.n_iter_
        else:
            raise ConfigError(f"library '{lib}': use lightgbm, xgboost or sklearn")
        t2 = time.perf_counter()
        row = {"library": lib}
        for eff in efficiencies:
            point = rejection_at_efficiency(sv, yv, efficiency=eff)
            tag = f"{round(1000 * eff) / 10:g}".replace(".", "p")
            row.update({f"rejection_{tag}": point.rejection, f"rejection_{tag}_lo": point.rejection_lo,
                        f"rejection_{tag}_hi": point.rejection_hi, f"rejection_{tag}_is_limit": point.is_lower_limit})
        row.update({"val_logloss": _logloss(sv, yv, wv), "auc": roc_auc(sv, yv), "train_s": t1 - t0,
                    "score_us_per_event": 1e6 * (t2 - t1) / len(yv), "n_trees": int(n_trees), "n_train": len(y),
                    "n_val": len(yv)})
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ likelihood
@dataclass
class Likelihood:
    """Energy-binned per-variable histogram PDFs of electrons and protons; score = sum_i log(p_e / p_p)."""

    variables: tuple[str, ...] = SHAPE_VARIABLES
    energy_edges: list[float] = field(default_factory=list)
    edges: dict[str, list[float]] = field(default_factory=dict)
    log_ratio: dict[str, list[list[float]]] = field(default_factory=dict)  # [energy bin][variable bin]
    info: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, arrays: Mapping[str, np.ndarray], n_bins: int = 40, n_energy_bins: int = 3,
            pseudo_count: float = 0.5, variables: Sequence[str] = SHAPE_VARIABLES,
            what: str = "training set") -> Likelihood:
        """Histogram each variable per class and energy bin. Bin edges are quantiles of both classes together
        (equal statistics per bin); ``pseudo_count`` per bin keeps empty bins finite (a Jeffreys-like prior)."""
        arrays = _labeled(arrays, what)
        label, energy = arrays["label"], np.asarray(arrays["energy"], np.float64)
        e_edges = np.unique(np.quantile(energy, np.linspace(0, 1, n_energy_bins + 1)))
        e_idx = np.clip(np.searchsorted(e_edges, energy, side="right") - 1, 0, len(e_edges) - 2)
        model = cls(tuple(variables), e_edges.tolist(), {}, {},
                    {"n_electrons": int((label == 1).sum()), "n_protons": int((label == 0).sum()),
                     "n_bins": n_bins, "pseudo_count": pseudo_count})
        for v in variables:
            x = np.asarray(arrays[v], np.float64)
            edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
            if len(edges) < 2:
                edges = np.array([x.min() - 0.5, x.min() + 0.5])
            idx = _bin(x, edges)
            table = []
            for b in range(len(e_edges) - 1):
                in_e = e_idx == b
                h_e = np.bincount(idx[in_e & (label == 1)], minlength=len(edges) - 1) + pseudo_count
                h_p = np.bincount(idx[in_e & (label == 0)], minlength=len(edges) - 1) + pseudo_count
                table.append((np.log(h_e / h_e.sum()) - np.log(h_p / h_p.sum())).tolist())
            model.edges[v] = edges.tolist()
            model.log_ratio[v] = table
        return model

    def score(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        energy = np.asarray(arrays["energy"], np.float64)
        e_edges = np.asarray(self.energy_edges)
        e_idx = np.clip(np.searchsorted(e_edges, energy, side="right") - 1, 0, len(e_edges) - 2)
        total = np.zeros(len(energy))
        for v in self.variables:
            table = np.asarray(self.log_ratio[v])
            total += table[e_idx, _bin(np.asarray(arrays[v], np.float64), np.asarray(self.edges[v]))]
        return total

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"kind": "likelihood", **asdict(self)}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Likelihood:
        meta = _read_meta(Path(folder), "likelihood")
        meta.pop("kind")
        meta["variables"] = tuple(meta["variables"])
        return cls(**meta)


def _bin(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index with under/overflow folded into the edge bins (a PDF tail, not a lost event)."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


# ------------------------------------------------------------------------------------------------ workflow
def read_features(path: Path) -> dict[str, np.ndarray]:
    """The BDT/likelihood input branches and the event identity of one selected set (learning curves read them too)."""
    from .. import io

    return io.read(path, branches=sorted(set(FEATURE_BRANCHES) | set(ID_BRANCHES)))


def _concat(parts: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def training_data(workdir, train_sets: Sequence[str] = ("mc_high",)) -> dict[str, np.ndarray]:
    """The BDT/likelihood input branches of the selected training sets, concatenated."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    paths = [wd.sets / f"{s}.root" for s in train_sets]
    for p in paths:
        if not p.exists():
            raise ConfigError(f"training set {p.stem}: {p} does not exist; run notebook 02 "
                              "(amsnb.ecal.datasets.ensure_ecal_sets) first")
    return _concat([read_features(p) for p in paths])


def load_baseline(workdir, name: str):
    """A saved baseline (``"bdt"`` or ``"likelihood"``) from ``workdir/models/<name>`` (neural networks:
    :func:`amsnb.models.load_model`)."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    if name not in MODELS:
        raise ConfigError(f"baseline '{name}': use one of {MODELS}")
    return (BDT if name == "bdt" else Likelihood).load(wd.models / name)


def ensure_baseline_scores(workdir, request, *, models: Sequence[str] = MODELS,
                           train_sets: Sequence[str] = ("mc_high",), search: str | Sequence[dict] = "small",
                           retrain: bool = False, progress: bool = True,
                           fresh: bool = False) -> dict[str, dict[str, Path]]:
    """Train (or reuse) the baselines on ``train_sets`` of the sets of ``request``
    (:class:`amsnb.ecal.datasets.DataRequest`, made if missing) and write their scores for every other selected set.

    Returns ``{model: {set: score file}}``. Each model folder is an :mod:`amsnb.provenance` artefact: reused when it
    was trained on the same selected events (their stamps), training sets, search, features and seed;
    ``retrain=True`` (or ``fresh``) forces training.
    """
    from .. import provenance
    from ..scores import score_path, write_scores
    from . import datasets

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ConfigError(f"models {sorted(unknown)}: the baselines are {MODELS}")
    sets = datasets.ensure_ecal_sets(wd, request, progress=progress, fresh=fresh)
    seed = request.seed
    missing = [s for s in train_sets if s not in sets]
    if missing:
        raise ConfigError(f"train_sets {missing} are not among the selected sets {sorted(sets)}")
    request = {"train_sets": list(train_sets), "search": search if isinstance(search, str) else list(search),
               "seed": seed, "features": list(BDT_FEATURES)}
    inputs = {s: provenance.identity(sets[s]) for s in train_sets}
    eval_sets = [s for s in EVAL_SETS if s in sets and s not in train_sets]
    train = None
    out = {}
    for name in models:
        folder = wd.models / name
        cls = BDT if name == "bdt" else Likelihood

        def build(path: Path, name=name) -> None:
            nonlocal train
            if train is None:
                train = training_data(wd, train_sets)
            what = f"training sets {', '.join(train_sets)}"
            t0 = time.perf_counter()
            if name == "bdt":
                model = train_bdt(train, search=search, seed=seed, progress=progress, what=what)
            else:
                fit_part, _ = _split(train, what)  # same training part as the BDT
                model = Likelihood.fit(fit_part, what=what)
            model.info.update({"train_sets": list(train_sets), "train_seconds": time.perf_counter() - t0})
            model.save(path)

        stamp = provenance.Stamp(f"amsnb.ecal.baselines.{name}", BASELINE_VERSION, request, inputs)
        provenance.ensure(folder, stamp, build, fresh=fresh or retrain, label=f"models/{name}", verb="training")
        model = cls.load(folder)
        out[name] = {}
        for s in eval_sets:
            arr = read_features(sets[s])
            path = score_path(wd, name, s)
            made_by = provenance.Stamp("amsnb.ecal.baselines.scores", BASELINE_VERSION, {"model": name, "set": s},
                                       {"model": provenance.file_input(folder),
                                        "events": provenance.file_input(sets[s])})
            write_scores(path, run=arr["run"], event=arr["event"], label=arr["label"], energy=arr["energy"],
                         weight=arr["weight"], score=model.score(arr).astype(np.float32), made_by=made_by)
            out[name][s] = path
    return out
