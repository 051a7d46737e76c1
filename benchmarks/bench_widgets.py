"""Widget responsiveness. Threshold tuner: the working-point engine (``amsnb.working_points.WorkingPointEngine``) and
one full slider update of ``amsnb.widgets.threshold_tuner.ThresholdTuner`` (readout + artists + blit + PNG for the
widget). Cut explorer: one slider release (cut flow + N-1 of the whole sample, redraw, PNG), and the pure
recomputation (:func:`amsnb.ecal.cut_explorer.explore`) alone.

Target (issue 6): with 1e6 events, readout + plot update <= 50 ms. Sample: :func:`demo_scores` (Beta toy scores,
20 % electrons), energies log-uniform 200-2000 GeV, 12 energy bins. Each figure is the median of repeated queries
at random slider positions.
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def _median_ms(fn, args_list) -> float:
    times = []
    for a in args_list:
        t = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def run(quick: bool = False) -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.widgets.threshold_tuner import ThresholdTuner, demo_scores
    from amsnb.working_points import WorkingPointEngine

    n = 200_000 if quick else 1_000_000
    reps = 15 if quick else 40
    scores = demo_scores(seed=3, n_proton=int(0.8 * n), n_electron=int(0.2 * n))
    arr = scores["demo_bdt"]["mc_high_test"]
    rng = np.random.default_rng(0)
    note = f"{n:.0e} events, median of {reps}"
    out = []

    t = time.perf_counter()
    eng = WorkingPointEngine(arr["score"], arr["label"], arr["weight"], arr["energy"],
                             edges=np.geomspace(200, 2000.0001, 13))
    out.append(dict(name="engine build (sort + cumulative sums)", value=1e3 * (time.perf_counter() - t), unit="ms",
                    note=f"{n:.0e} events, once per model/set"))
    ranges = [None, (300.0, 1200.0)]
    thr = rng.uniform(0.2, 0.9, reps)
    effs = rng.uniform(0.6, 0.99, reps)
    sig, w = arr["label"] == 1, arr["weight"]

    def naive(x):  # the same-run reference: a vectorised recount of every event per threshold
        passing = arr["score"] >= x
        return w[passing & sig].sum() / w[sig].sum(), w[passing & ~sig].sum()

    ref = _median_ms(naive, thr)
    out.append(dict(name="reference: naive recount at a threshold (all events, numpy)", value=ref, unit="ms",
                    note=note + "; the floor the engine is compared with"))
    for er in ranges:
        tag = "full range" if er is None else "energy sub-range"
        t_thr = _median_ms(lambda x, er=er: eng.at_threshold(x, er), thr)
        t_eff = _median_ms(lambda x, er=er: eng.at_efficiency(x, er), effs)
        out.append(dict(name=f"readout at threshold ({tag})", value=t_thr, unit="ms",
                        note=f"{note}; {t_thr / max(ref, 1e-9):.2f}x the naive recount's time"))
        out.append(dict(name=f"readout at target efficiency ({tag})", value=t_eff, unit="ms",
                        note=f"{note}; {t_eff / max(ref, 1e-9):.2f}x the naive recount's time"))

    tuner = ThresholdTuner({"demo_bdt": {"mc_high_test": arr}}, interactive=False)
    # the PNG fallback (no kernel or no ipympl): blit the marks on the Agg canvas, send the buffer as a PNG to an
    # ipywidgets.Image. In a kernel with ipympl (JupyterLab, Voila) see "ipympl canvas" below.

    def slider_eff(x):
        tuner.w_eff.value = round(float(x), 3)

    t_slider = _median_ms(slider_eff, effs)
    out.append(dict(name="slider update: readout + blit + PNG to Image widget (efficiency)",
                    value=t_slider, unit="ms", note=f"{note}; target <= 50 ms; {t_slider / max(ref, 1e-9):.1f}x the "
                    "naive recount's time"))
    tuner.w_mode.value = "threshold"

    def slider_thr(x):
        tuner.w_thr.value = float(x)

    out.append(dict(name="slider update: readout + blit + PNG to Image widget (threshold)",
                    value=_median_ms(slider_thr, thr), unit="ms", note=note + "; target <= 50 ms"))
    full = ThresholdTuner({"demo_bdt": {"mc_high_test": arr}}, interactive=False, blit=False)
    full.w_mode.value = "threshold"

    def slider_full(x):
        full.w_thr.value = float(x)

    out.append(dict(name="same without blitting: readout + full draw + PNG",
                    value=_median_ms(slider_full, thr[:10]), unit="ms", note=f"{n:.0e} events, median of 10; why "
                    "the tuner blits"))

    def energy(i):
        tuner.w_energy.index = (int(i) % 4, 12 - int(i) % 5)

    out.append(dict(name="energy-range change: curve + histograms recomputed + draw",
                    value=_median_ms(energy, range(min(reps, 8))), unit="ms", note=f"{n:.0e} events, median of "
                    f"{min(reps, 8)}; not per threshold move"))
    out.extend(ipympl_canvas(arr, effs))
    out.extend(cut_explorer(quick))
    return out


def ipympl_canvas(arr, effs) -> list[dict]:
    """The tuner's slider update on an ipympl canvas, as after the browser has shown it (kernel side: readout, blit,
    diff image encoded and handed to the comm): what decides ipympl over the PNG fallback."""
    try:
        import ipympl.backend_nbagg  # noqa: F401
    except ImportError:
        return []
    from amsnb.widgets.threshold_tuner import ThresholdTuner

    tuner = ThresholdTuner({"demo_bdt": {"mc_high_test": arr}}, interactive=True)
    canvas = tuner.fig.canvas
    sent = []
    canvas.syncing_data_url = False  # what the browser's "initialized" message does
    canvas.send = lambda *a, buffers=None, **k: sent.append(sum(len(b) for b in (buffers or [])))
    canvas.handle_draw({})  # the browser's first draw request: full draw, background cached

    def slider_eff(x):
        tuner.w_eff.value = round(float(x), 3)

    ms = _median_ms(slider_eff, effs)
    return [dict(name="slider update on the ipympl canvas: readout + blit + diff image", value=ms, unit="ms",
                 note=f"{statistics.median(sent[-10:]) / 1e3:.1f} kB per update (PNG fallback: a whole frame)")]


def cut_explorer(quick: bool) -> list[dict]:
    """The cut explorer recounts every event per release (no precomputed cumulative sums: any cut may move)."""
    from amsnb.ecal.cut_explorer import CutExplorer, demo_sample, explore

    n = 20_000 if quick else 100_000
    reps = 10
    events = demo_sample(n, seed=5)
    ex = CutExplorer(events, "default", set_name="mc_high", cut="e_over_r")
    lows = np.linspace(0.3, 0.9, reps)
    note = f"{n:.0e} simulated events (default cut set, 7 cuts), median of {reps}"
    return [dict(name="cut explorer: cut flow + N-1 recount (explore)", unit="ms", note=note,
                 value=_median_ms(lambda lo: explore(events, ex.cutset, "e_over_r", lo, 5.0, "mc_high"), lows)),
            dict(name="cut explorer: slider release (recount + redraw + PNG)", unit="ms", note=note,
                 value=_median_ms(lambda lo: setattr(ex.lo, "value", float(lo)), lows))]


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(f"{r['name']:<62s} {r['value']:10.2f} {r['unit']:<3s} {r['note']}")
