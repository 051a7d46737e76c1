"""Learning curves: proton rejection at a fixed electron efficiency vs the number of training events.

Seed 000 trains on 3.8e6 MC events; a 2-core run affords 1e4-1e5. Whether a model would beat the BDT at the seed's
size is a question of how its rejection grows with the training size, so this module measures that growth: for the
BDT and each deep model, one training per size (the deep models through :func:`amsnb.ecal.experiment.train_model`,
so a size already trained with the same request is reused), evaluated on ``mc_test`` and ``iss_test`` with the
rejection's interval and the count of passing protons. :func:`extrapolate` continues the last points as a power law
to a larger size and says that it is an extrapolation.

Training subsets are nested (deep models: :meth:`EcalDataset.subset` takes the head of one seeded permutation; the
BDT: the events of lowest hash), so a larger size only adds events.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..workdir import Workdir
from .datasets import TEST_SET

EVAL = (TEST_SET, "iss_test")
#: Seed 000's MC training size (its Table 1: mc_low + mc_high), the size the curves are extrapolated to.
SEED_TRAIN_EVENTS = 3.8e6


@dataclass
class CurvePoint:
    model: str
    n_train: int
    eval_set: str
    rejection: float
    rejection_lo: float
    rejection_hi: float
    is_lower_limit: bool
    n_bkg_pass: int
    n_bkg: int
    n_sig: int
    efficiency: float

    def as_dict(self) -> dict:
        return asdict(self)


def _point(model: str, n_train: int, eval_set: str, score, label, efficiency: float, cl: float) -> CurvePoint:
    from ..metrics import rejection_at_efficiency

    m = label >= 0
    p = rejection_at_efficiency(score[m], label[m], efficiency=efficiency, cl=cl)
    return CurvePoint(model, int(n_train), eval_set, p.rejection, p.rejection_lo, p.rejection_hi,
                      bool(p.is_lower_limit), int(p.n_bkg_pass), int(p.n_bkg), int(p.n_sig), float(p.efficiency))


def eval_rows(n_rows: int, max_events: int | None, seed: int = 1) -> np.ndarray:
    """The rows of a set the curves are evaluated on: all, or ``max_events`` of them drawn by one seeded
    permutation (the same rows for the BDT, read from the set file, and the deep models, read from its cache, whose
    rows are the file's in order). Inference on a 1e5-proton test set for every size and model would cost more than
    the trainings; the largest size's point is the one to compare with notebook 05's full-set numbers."""
    if not max_events or max_events >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).permutation(n_rows)[:max_events])


def bdt_curve(workdir, sizes, seed: int = 1, search: str = "small", efficiency: float = 0.9, cl: float = 0.68,
              eval_sets=EVAL, progress: bool = False, max_eval_events: int | None = None) -> list[CurvePoint]:
    """The BDT (:func:`amsnb.ecal.baselines.train_bdt`) trained on the first ``n`` events of ``mc_high`` (by event
    hash, nested) for each ``n`` in ``sizes``; sizes above the set's size are trained on all of it once. Evaluated
    on :func:`eval_rows` of each set."""
    from .baselines import read_features, train_bdt, training_data
    from .datasets import event_hash

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    train = training_data(wd)
    order = np.argsort(event_hash(train["run"], train["event"]), kind="stable")
    evals = {}
    for s in eval_sets:
        arr = read_features(wd.sets / f"{s}.root")
        rows = eval_rows(len(arr["label"]), max_eval_events, seed)
        evals[s] = {k: v[rows] for k, v in arr.items()}
    points = []
    for n in _sizes(sizes, len(order)):
        sub = {k: v[order[:n]] for k, v in train.items()}
        bdt = train_bdt(sub, search=search, seed=seed, progress=progress, what=f"mc_high, {n} events")
        for s, arr in evals.items():
            points.append(_point("bdt", n, s, bdt.score(arr), arr["label"], efficiency, cl))
    return points


def deep_curve(workdir, sets, model: str, preset: str, sizes, config, seed: int = 1, efficiency: float = 0.9,
               cl: float = 0.68, eval_sets=EVAL, device: str = "cpu",
               max_eval_events: int | None = None) -> list[CurvePoint]:
    """``model``/``preset`` trained (or reused) on ``n`` events of ``mc_high`` for each ``n`` in ``sizes``, under the
    tags ``<model>_<preset>[_da]_n<n>``; no score files are written (notebook 05 compares the published models)."""
    from ..train.trainer import predict
    from .cache import EcalDataset
    from .experiment import model_tag, prepare, train_model

    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    points = []
    full = len(prepare(wd, sets, max_train_events=None, seed=seed, progress=False).train)
    for n in _sizes(sizes, full):
        data = prepare(wd, sets, max_train_events=n, seed=seed, progress=False)
        tag = f"{model_tag(model, preset, config.use_da)}_n{n}"
        result = train_model(wd, tag, model, preset, data, config, seed=seed,
                             reuse_from=(model_tag(model, preset, config.use_da),))
        result.model.to(device)
        for s in eval_sets:
            full_set = data.evaluation[s]
            ds = EcalDataset(full_set.cache, full_set.indices[eval_rows(len(full_set), max_eval_events, seed)])
            pred = predict(result.model, ds, 512, device)
            points.append(_point(tag.rsplit("_n", 1)[0], len(data.train), s, pred["score"], ds.column("label"),
                                 efficiency, cl))
    return points


def _sizes(sizes, available: int) -> list[int]:
    """The requested sizes capped at what the set holds, each once, ascending."""
    return sorted({min(int(n), int(available)) for n in sizes})


def extrapolate(points: list[CurvePoint], model: str, eval_set: str, to_n: float = SEED_TRAIN_EVENTS,
                last: int = 3) -> dict | None:
    """A power law log R = a + b log n through the last ``last`` measured (not lower-limit) points of one curve,
    continued to ``to_n``: an extrapolation, not a measurement (``None`` if fewer than three points qualify: a line
    through two points says nothing about whether the growth is a power law)."""
    pts = sorted((p for p in points if p.model == model and p.eval_set == eval_set and not p.is_lower_limit
                  and p.rejection > 0 and math.isfinite(p.rejection)), key=lambda p: p.n_train)[-last:]
    if len(pts) < 3 or len({p.n_train for p in pts}) < 3:
        return None
    x = np.log([p.n_train for p in pts])
    y = np.log([p.rejection for p in pts])
    # weights from the interval widths in log space (a ~symmetric error of log R)
    sig = np.array([max((math.log(p.rejection_hi) - math.log(max(p.rejection_lo, 1e-12))) / 2, 1e-3) for p in pts])
    b, a = np.polyfit(x, y, 1, w=1 / sig)
    return {"model": model, "eval_set": eval_set, "to_n": float(to_n), "slope": float(b),
            "rejection": float(math.exp(a + b * math.log(to_n))), "from_n": [p.n_train for p in pts],
            "note": f"power-law extrapolation of the last {len(pts)} points to {to_n:.3g} training events; "
                    "not a measurement"}


def table(points: list[CurvePoint]) -> str:
    """Fixed-width text: one line per (model, size, set) with the rejection, its interval and the passing protons."""
    from ..tables import format_number as _fmt

    lines = [f"{'model':18} {'n_train':>8} {'set':9} {'rejection @90% [68% CL]':>28} {'passing p':>14}"]
    for p in sorted(points, key=lambda q: (q.model, q.eval_set, q.n_train)):
        rej = (f"> {_fmt(p.rejection)}" if p.is_lower_limit
               else f"{_fmt(p.rejection)} [{_fmt(p.rejection_lo)}, {_fmt(p.rejection_hi)}]")
        lines.append(f"{p.model:18} {p.n_train:8d} {p.eval_set:9} {rej:>28} {p.n_bkg_pass:>6} of {p.n_bkg:<6}")
    return "\n".join(lines)
