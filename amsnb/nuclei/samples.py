"""The nuclei samples of notebooks 06 and 07: simulated MC and data-like files in the run folder, the data's charge
calibration and the MC tune, shared by both notebooks so that 07 sees exactly the events 06 trained on.

MC is simulated with the same number of events per species (the seed's per-species MC; the feed-down parents with
:data:`BKG_BOOST` times more) and reweighted to the physical abundances ("global MC"); the data-like domain is
simulated with counts proportional to the abundances, so its events are unweighted with the physical composition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import EmptySelectionError
from ..workdir import Workdir
from . import selections as selection

Arrays = dict[str, np.ndarray]


def data_counts(n_si: int, z: Sequence[int]) -> dict[int, int]:
    """Events per species for the data-like domain: proportional to the abundance, ``n_si`` silicon nuclei."""
    from .sim import ABUNDANCE

    return {int(zz): max(1, int(round(n_si * ABUNDANCE[int(zz)] / ABUNDANCE[14]))) for zz in z}


#: MC statistics multiplier of the feed-down parents of the Si, P and S selections (P, S, Cl): with measured
#: partial cross sections only ~0.4 % of them land in the window below (docs/nuclei.md), so equal statistics per
#: species would leave a few hundred background events to train on. Weights keep the physical abundance.
BKG_BOOST = {15: 5, 16: 5, 17: 5}


def ensure_samples(wd: Workdir, n_mc: int, n_data_si: int, z: Sequence[int] | None = None, seed: int = 1,
                   x_l1l2: float | None = None, progress: bool = True,
                   fresh: bool = False, boost: Mapping[int, float] | None = None) -> dict[str, dict[int, Path]]:
    """Simulate (or reuse) ``{mc,data}_Z{z}.root`` in ``wd.nuclei_data``; returns ``{"mc": {z: path}, "data": ...}``.

    Each file is an :mod:`amsnb.provenance` artefact: reused only if the same simulation code made it with the same
    number of events, species, domain, seed and detector configuration; otherwise simulated again (one line says
    why). ``x_l1l2`` (g/cm2 between L1 and L2) changes the simulation; a different value writes to a subfolder
    ``x{value}`` so scans do not overwrite each other's files. ``boost`` multiplies the MC events of some species
    (default :data:`BKG_BOOST`; ``{}`` for equal statistics); each file's weights still sum to its abundance.
    """
    from tqdm.auto import tqdm

    from .. import provenance
    from . import sim

    zs = tuple(sim.GLOBAL_Z if z is None else z)
    cfg = sim.DEFAULT_CONFIG if x_l1l2 is None else replace(sim.DEFAULT_CONFIG, x_l1l2=float(x_l1l2))
    folder = wd.nuclei_data if x_l1l2 is None or x_l1l2 == sim.DEFAULT_CONFIG.x_l1l2 else \
        wd.nuclei_data / f"x{float(x_l1l2):g}"
    boost = BKG_BOOST if boost is None else boost
    counts = {"mc": {int(zz): int(round(n_mc * boost.get(int(zz), 1))) for zz in zs},
              "data": data_counts(n_data_si, zs)}
    jobs = [(d, zz, n) for d in ("mc", "data") for zz, n in counts[d].items()]
    out: dict[str, dict[int, Path]] = {"mc": {}, "data": {}}
    version = sim.generator_digest()
    for d, zz, n in tqdm(jobs, desc="nuclei samples", disable=not progress, leave=False):
        path = folder / f"{d}_Z{zz}.root"
        s = seed * 1000 + zz + (500 if d == "data" else 0)
        stamp = provenance.Stamp("amsnb.nuclei.sim", version, {"n": n, "z": [zz], "domain": d, "seed": s,
                                                                "config": sim.config_dict(cfg)})
        provenance.ensure(path, stamp, lambda p, n=n, zz=zz, d=d, s=s:
                          sim.simulate_to_root(p, n, (zz,), d, seed=s, config=cfg, progress=False),
                          fresh=fresh, label=f"{folder.relative_to(wd.path).as_posix()}/{path.name}",
                          verb="simulating")
        out[d][zz] = path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.json").write_text(json.dumps({"counts": counts, "seed": seed, "x_l1l2": cfg.x_l1l2},
                                                    indent=2))
    return out


def load(paths: Mapping[int, Path]) -> dict[int, Arrays]:
    """Read one NUCLEI file per species: ``{Z: arrays}``."""
    from .. import io
    from ..schema import NUCLEI

    return {z: io.read(p, NUCLEI) for z, p in paths.items()}


#: Charges calibrated on data by :func:`calibrate_inputs`: inner-tracker layers L2-L8 (and their truncated mean) and
#: the upper-TOF planes. L1 is left to :func:`amsnb.nuclei.fits.tune_charge`: it is the template-fit variable.
CALIBRATED_INPUTS = ("trk_q[L2-L8]", "q_inner", "tof_q_l1", "tof_q_l2", "tof_q_upper")


def _peak(q: np.ndarray, z: float) -> float:
    """Position of the charge peak near ``z``: the median inside z +- 0.5, iterated once around the first estimate."""
    q = np.asarray(q, float)
    c = float(z)
    for half in (0.6, 0.4):
        m = (q > c - half) & (q < c + half)
        if m.sum() < 20:
            raise EmptySelectionError(f"charge calibration: {int(m.sum())} charges near Z={z}; need at least 20")
        c = float(np.median(q[m]))
    return c


def calibrate_inputs(data: Mapping[int, Mapping], mc: Mapping[int, Mapping], z_ref: int = 14,
                     ) -> tuple[dict[int, Arrays], dict[str, float]]:
    """Data-driven charge calibration of the network inputs: each inner-tracker layer (L2-L8) and each upper-TOF
    plane of the data is scaled so that its ``z_ref`` peak sits where the MC puts it (clean reference: primaries
    selected by the inner charge, > 99 % Si for z_ref = 14). Returns the calibrated data samples and the scales
    (data/MC peak ratio per layer and plane).

    Why: AMS equalises the gain of every tracker readout channel and TOF counter on flight data before any analysis
    (ams02.space, "Improvements in the Charge Resolution"); a network fed uncalibrated charges sees the 1-1.5 % scale
    differences of :data:`amsnb.nuclei.sim.DOMAINS` along the very direction that separates Z from Z+1, which no
    domain-invariant feature can remove without losing the charge (docs/nuclei.md, "Why a probe still separated the
    domains"). The L1 charge is not touched: notebook 07 tunes it with :func:`amsnb.nuclei.fits.tune_charge`.
    """
    ref_sel = selection.selection(z_ref)

    def ref(samples):
        a = samples[z_ref]
        return selection.take(a, (a["q_inner"] > ref_sel.inner[0] - 0.2) & (a["q_inner"] < ref_sel.inner[1] + 0.2))

    rm, rd = ref(mc), ref(data)
    scales: dict[str, float] = {}
    for layer in range(1, 8):
        qm, qd = rm["trk_q"][:, 0, layer], rd["trk_q"][:, 0, layer]
        scales[f"L{layer + 1}"] = _peak(qd[qd > 0], z_ref) / _peak(qm[qm > 0], z_ref)
    for k in ("tof_q_l1", "tof_q_l2"):
        scales[k] = _peak(rd[k][rd[k] > 0], z_ref) / _peak(rm[k][rm[k] > 0], z_ref)
    inner = np.array([scales[f"L{i}"] for i in range(2, 9)])
    out = {}
    for z, a in data.items():
        b = dict(a)
        q = np.asarray(a["trk_q"], np.float64).copy()
        q[:, :, 1:8] /= inner[None, None, :]
        b["trk_q"] = q.astype(np.float32)
        b["q_inner"] = (np.asarray(a["q_inner"], float) / inner.mean()).astype(np.float32)
        for k in ("tof_q_l1", "tof_q_l2"):
            b[k] = (np.asarray(a[k], float) / scales[k]).astype(np.float32)
        b["tof_q_upper"] = (np.asarray(a["tof_q_upper"], float)
                            / (0.5 * (scales["tof_q_l1"] + scales["tof_q_l2"]))).astype(np.float32)
        out[z] = b
    return out, scales


def tune_mc_inputs(mc: Mapping[int, Mapping], data: Mapping[int, Mapping], z_ref: int = 14, seed: int = 0,
                   ) -> tuple[dict[int, Arrays], dict[str, np.ndarray]]:
    """Data-driven tune of the MC network inputs on the clean ``z_ref`` sample (inner and L1 charge in the ``z_ref``
    windows; pass *calibrated* data, :func:`calibrate_inputs`). Two measured differences are put into the MC:

    * the cluster excess per layer and side (mean clusters, data - MC): each MC layer gets
      Poisson(excess x (q_layer / z_ref)^2) extra clusters, q_layer its measured charge (delta rays ~ Z^2; no truth);
    * the extra relative resolution per inner layer L2-L8, sqrt(sigma68_data^2 - sigma68_MC^2) / z_ref: MC layer
      charges are smeared by it and the inner truncated mean is recomputed.

    Returns the tuned MC samples and ``{"cluster_excess": (9, 2), "rel_smear": (9,)}``. Why: after the charge
    calibration a fresh probe still tells MC from data by the cluster counts (the data's higher delta-ray rate) and
    the layer-charge resolution, and the DANN head does not remove either (docs/nuclei.md, "What the domain
    adaptation can and cannot do"). AMS likewise tunes its MC response to flight data on clean samples.
    """
    from .sim import truncated_mean

    ref_sel = selection.selection(z_ref)

    def ref(samples):
        a = samples[z_ref]
        m = (a["q_inner"] > ref_sel.inner[0]) & (a["q_inner"] < ref_sel.inner[1]) & \
            (a["q_l1"] > ref_sel.l1[0]) & (a["q_l1"] < ref_sel.l1[1])
        return selection.take(a, m)

    rm, rd = ref(mc), ref(data)
    if min(len(rm["q_inner"]), len(rd["q_inner"])) < 100:
        raise EmptySelectionError(f"tune_mc_inputs: fewer than 100 clean Z={z_ref} events in MC or data")
    excess = np.maximum(rd["n_clusters"].astype(float).mean(0) - rm["n_clusters"].astype(float).mean(0), 0.0)

    def s68(q):
        lo, hi = np.quantile(q[q > 0], [0.16, 0.84])
        return (hi - lo) / 2

    rel = np.zeros(rm["trk_q"].shape[2])
    for layer in range(1, 8):
        d, m = s68(rd["trk_q"][:, 0, layer]), s68(rm["trk_q"][:, 0, layer])
        rel[layer] = np.sqrt(max(d * d - m * m, 0.0)) / z_ref
    out = {}
    for z, a in mc.items():
        rng = np.random.default_rng([seed, int(z), 4242])
        b = dict(a)
        q = np.asarray(a["trk_q"], np.float64).copy()
        mu = excess[None] * (np.clip(q[:, 0, :], 0, 40)[:, :, None] / z_ref) ** 2
        b["n_clusters"] = np.minimum(a["n_clusters"] + rng.poisson(mu), 3000).astype(a["n_clusters"].dtype)
        q[:, :, 1:8] *= 1.0 + rel[None, None, 1:8] * rng.standard_normal(q[:, :, 1:8].shape)
        b["trk_q"] = q.astype(np.float32)
        present = (a["trk_hit"][:, 0, 1:8] > 0)
        b["q_inner"] = np.where(a["q_inner"] > 0, truncated_mean(q[:, 0, 1:8], present), 0.0).astype(np.float32)
        out[z] = b
    return out, {"cluster_excess": excess, "rel_smear": rel}


@dataclass
class NucleiSamples:
    """The samples of notebooks 06 and 07, one dict ``{Z: arrays}`` per version.

    ``mc``: as simulated (selection efficiencies, the "as simulated" input probe); ``data_raw``: the data-like
    sample as simulated; ``data``: its inner-tracker and TOF charges calibrated on the Si peak
    (:func:`calibrate_inputs`, scales in ``input_scales``); ``mc_tuned``: the MC the network is trained and
    evaluated on, its cluster counts and inner resolution tuned to ``data`` (:func:`tune_mc_inputs`, measured
    differences in ``mc_tune``), or ``mc`` itself when the tune is off (``mc_tune`` None).
    """
    mc: dict[int, Arrays]
    data_raw: dict[int, Arrays]
    data: dict[int, Arrays]
    input_scales: dict[str, float]
    mc_tuned: dict[int, Arrays]
    mc_tune: dict[str, np.ndarray] | None = None

    def counts(self) -> dict[str, dict[int, int]]:
        """Events per species in the MC and the data-like sample."""
        return {d: {int(z): len(a["q_inner"]) for z, a in s.items()} for d, s in (("mc", self.mc),
                                                                                  ("data", self.data))}

    def summary(self) -> dict:
        """What the samples cell shows: events per species, the data calibration scales, the MC tune."""
        return {"events": self.counts(), "input_scales": {k: round(v, 4) for k, v in self.input_scales.items()},
                "mc_tune": {k: np.round(v, 3).tolist() for k, v in (self.mc_tune or {}).items()}}

    @property
    def inner_scale_mean(self) -> float:
        """Mean data/MC scale of the inner-tracker layers L2-L8 (one number for the data calibration)."""
        return float(np.mean([v for k, v in self.input_scales.items() if k.startswith("L")]))

    def input_scale_metrics(self) -> dict[str, float]:
        """``input_scale_<layer or plane>`` for metrics.json."""
        return {f"input_scale_{k}": v for k, v in self.input_scales.items()}


def prepare_samples(wd: Workdir, n_mc: int, n_data_si: int, seed: int = 1, tune_mc: bool = True,
                    ) -> NucleiSamples:
    """Notebooks 06 and 07's first step: simulate or reuse the samples (:func:`ensure_samples`), calibrate the
    data-like charges (:func:`calibrate_inputs`) and, with ``tune_mc``, tune the MC inputs to the calibrated data
    (:func:`tune_mc_inputs`). One function for both notebooks, so 07 sees the events 06's network was trained on."""
    paths = ensure_samples(wd, n_mc, n_data_si, seed=seed)
    mc, data_raw = load(paths["mc"]), load(paths["data"])
    data, scales = calibrate_inputs(data_raw, mc)
    mc_tuned, tune = tune_mc_inputs(mc, data, seed=seed) if tune_mc else (mc, None)
    return NucleiSamples(mc, data_raw, data, scales, mc_tuned, tune)
