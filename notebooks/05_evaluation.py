# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (amsnb)
#     language: python
#     name: amsnb
# ---

# %% [markdown]
# # 05 · Evaluation: proton rejection of every model, on MC and ISS-like data
#
# Every classifier of the series (the BDT and likelihood of notebook 03, the CoAtNet/CvT models with and without
# domain adaptation of notebook 04, any score file you add) is judged the same way, as in seed 000's results:
#
# 1. proton rejection vs electron efficiency on the held-out MC test set `mc_test` (seed Figure 8) and on the
#    ISS-like test set `iss_test` (Figure 9), with a ratio panel to the BDT;
# 2. proton rejection vs energy at 90 % electron efficiency on `iss_test` (Figure 10), with one global threshold and
#    with a threshold tuned in each energy bin;
# 3. a comparison table: rejection at 80/90/95 % efficiency with intervals, misidentified protons, ROC AUC;
# 4. the threshold tuner, to choose and save a working point.
#
# Rejection = protons / protons passing (seed 000). Intervals: 68 % Clopper-Pearson; where no proton passes, the
# number is a 68 % CL lower limit, drawn as an arrow (`docs/evaluation.md`). Counts are unweighted event counts
# unless `use_weights` (the flux weights of the samples).
#
# **Inputs**: score files `scores/<model>/<set>.root` (notebooks 03, 04; missing baselines are trained here).
# **Outputs**: `05_evaluation/figures/*.png`, `05_evaluation/metrics.json` (the comparison tables),
# `05_evaluation/working_point_<model>_<set>.json`.

# %% tags=["parameters"]
profile = "default"  # smoke | binder | default | full: each parameter at None takes its value (amsnb/profiles.yaml)
workdir = None  # None: runs/<profile> of the checkout (where `amsnb run` and `make demo` write)
seed = None
ecal_scale = None  # fraction of seed 000's Table 1 MC sizes (only used if the baselines must be made)
iss_scale = None  # ISS-like labeled sets: iss_scale * 1e6 protons, * 1e5 electrons (idem)
test_protons = None  # raw protons of each test set (mc_test of its own, iss_test); 0: mc_test is split off mc_high
target_events = None  # raw events of the unlabeled DANN target iss_target (0: Table 1 at ecal_scale)
cuts = None  # cut set of the selected sets (notebook 02; idem)
input_files = None  # your ROOT files instead of the simulation (idem)
mapping = None  # their branch-mapping YAML (idem)
mc_set = None  # MC test set (Figure 8)
iss_set = None  # ISS-like test set (Figures 9, 10)
reference = None  # denominator of the ratio panels
efficiency = None  # electron efficiency of Figure 10 and of the saved working point
n_energy_bins = None  # log-spaced energy bins of Figure 10
use_weights = None  # False: event counts as in seed 000; True: flux-weighted (effective-count intervals)
cl = None  # confidence level of intervals and lower limits
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
import matplotlib.pyplot as plt
from IPython.display import HTML, display

from amsnb.notebook import start
from amsnb import metrics, scores, tables, working_points
from amsnb.ecal import baselines
from amsnb.ecal.datasets import DataRequest
from amsnb.plotting import performance as pplot
from amsnb.widgets.threshold_tuner import ThresholdTuner

p, wd = start("05", globals())  # the profile's values for every parameter left at None

# %% [markdown]
# ## 1. The score files
#
# If the workdir has no baseline scores yet (notebook 05 run on its own), `ensure_baseline_scores` makes the selected
# sets and trains the BDT and the likelihood first.

# %%
if p.reference not in scores.available(wd):
    baselines.ensure_baseline_scores(wd, DataRequest.from_parameters(p))
all_scores = scores.load_scores(wd)
mc_models = scores.on_set(all_scores, p.mc_set)
iss_models = scores.on_set(all_scores, p.iss_set)
scores.available(wd)

# %% [markdown]
# ## 2. Rejection vs efficiency (seed Figures 8 and 9)
#
# Bands: 68 % Clopper-Pearson intervals; dotted with arrows: lower limits (no proton passes). The ratio panel divides
# by the reference model at the same target efficiency.

# %%
curves_mc = metrics.rejection_curves(mc_models, cl=p.cl, use_weights=p.use_weights)
fig = pplot.rejection_vs_efficiency(curves_mc, reference=p.reference,
                                    title=f"MC test ({p.mc_set}), {scores.energy_text(mc_models)}")
wd.save_figure("05", fig, "fig8_rejection_vs_efficiency_mc")

# %%
curves_iss = metrics.rejection_curves(iss_models, cl=p.cl, use_weights=p.use_weights)
fig = pplot.rejection_vs_efficiency(curves_iss, reference=p.reference,
                                    title=f"ISS-like test ({p.iss_set}), {scores.energy_text(iss_models)}",
                                    text="ISS-like")
wd.save_figure("05", fig, "fig9_rejection_vs_efficiency_iss")

# %% [markdown]
# ## 3. Rejection vs energy at fixed electron efficiency (seed Figure 10)
#
# Left: one threshold for the whole set (the efficiency then drifts from bin to bin as the score distributions change
# with energy). Right: a threshold tuned in each bin to reach the target efficiency there, as an analysis would.

# %%
energy_global = metrics.rejection_vs_energy_models(iss_models, p.efficiency, "global", n_bins=p.n_energy_bins, cl=p.cl,
                                                   use_weights=p.use_weights)
energy_per_bin = metrics.rejection_vs_energy_models(iss_models, p.efficiency, "per_bin", n_bins=p.n_energy_bins,
                                                    cl=p.cl, use_weights=p.use_weights)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 6), sharey=True)
pplot.rejection_vs_energy(energy_global, title=f"{p.iss_set}, global threshold", text="ISS-like", ax=ax1)
pplot.rejection_vs_energy(energy_per_bin, title=f"{p.iss_set}, per-bin threshold", text="ISS-like", ax=ax2)
wd.save_figure("05", fig, "fig10_rejection_vs_energy_iss")

# %% [markdown]
# Efficiency actually reached per bin with the global threshold (the per-bin thresholds reach the target by
# construction):

# %%
{m: c.column("efficiency").round(3).tolist() for m, c in energy_global.items()}

# %% [markdown]
# ## 4. Comparison table
#
# Rejection with its 68 % interval (`>` marks a lower limit), misidentified protons at each efficiency, ROC AUC
# (`sklearn.metrics.roc_auc_score`).

# %%
table_mc = metrics.comparison_table(mc_models, cl=p.cl, use_weights=p.use_weights)
table_iss = metrics.comparison_table(iss_models, cl=p.cl, use_weights=p.use_weights)
display(HTML(f"<h4>{p.mc_set}</h4>" + tables.table_html(table_mc) + f"<h4>{p.iss_set}</h4>"
             + tables.table_html(table_iss)))
print(tables.format_table(table_iss))

# %% [markdown]
# ## 5. Threshold transfer
#
# An analysis fixes the threshold before it looks at the flight data: on MC (`mc_test`) or, as seed 000 does, on the
# labeled ISS-like validation set (`iss_val`), and applies it to `iss_test`. The table gives the electron efficiency
# that threshold really reaches there (68 % interval), the rejection that goes with it (with the passing protons), and
# the rejection with the threshold tuned on `iss_test`'s own electrons (the comparison tables above) for reference.

# %%
transfer = [row for source in (p.mc_set, "iss_val")
            for row in metrics.threshold_transfer(all_scores, source, p.iss_set, p.efficiency, cl=p.cl,
                                                  use_weights=p.use_weights)]
print(tables.format_transfer_table(transfer))

# %% [markdown]
# ## 6. Threshold tuner
#
# Choose the model, the set, a target efficiency or a threshold and an energy range; the readout and the marks follow.
# *Save working point* writes `05_evaluation/working_point_<model>_<set>.json` for downstream use
# (`working_points.load_working_point`). Here the reference model's working point at the target efficiency on the
# ISS-like set is saved as the default.

# %%
tuner = ThresholdTuner(all_scores, model=p.reference, eval_set=p.iss_set, efficiency=p.efficiency, cl=p.cl,
                       use_weights=p.use_weights, save_dir=wd.notebook("05"))
display(tuner)
working_point = working_points.load_working_point(tuner.save())
with tuner.static() as fig:
    wd.save_figure("05", fig, "threshold_tuner")
    display(fig)
working_point

# %% [markdown]
# ## 7. Key figures

# %%
wd.save_metrics("05", {
    "models": sorted(all_scores),
    "table": {p.mc_set: table_mc, p.iss_set: table_iss},
    "rejection_vs_energy": {"global": tables.energy_table(energy_global),
                            "per_bin": tables.energy_table(energy_per_bin)},
    "working_point": vars(working_point),
    "threshold_transfer": transfer,
    **tables.key_figures(table_mc, p.mc_set),
    **tables.key_figures(table_iss, p.iss_set),
})
