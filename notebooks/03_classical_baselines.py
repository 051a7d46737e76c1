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
# # 03 · Classical baselines: the ECAL BDT and the ECAL likelihood
#
# The deep models of notebook 04 have to beat what AMS already has: a boosted decision tree on ECAL shower-shape
# variables and an ECAL likelihood estimator (seed 000 quotes its CvT and CoAtNet at 5-7x their proton rejection on
# 1-2 TeV MC). This notebook
#
# 1. trains both on the MC training set (`mc_high`, 1-2 TeV; a hash-selected quarter of it for validation and early
#    stopping), with class weights and a small hyper-parameter search for the BDT;
# 2. shows why LightGBM (measured against XGBoost and scikit-learn's HistGradientBoosting on the same split);
# 3. shows the BDT's feature importances and the score distributions of electrons and protons on MC and ISS-like sets;
# 4. measures the proton rejection at 90 % electron efficiency in 1-2 TeV with its 68 % interval (a lower limit when
#    no proton passes).
#
# The BDT uses ECAL variables only (E/R and the TRD belong to other sub-detectors): the shape scalars, log10(E), and
# the 18 per-layer energy fractions and lateral RMS (`amsnb.ecal.baselines.BDT_FEATURES`).
#
# **Inputs**: the selected sets of notebook 02 (`sets/`, made here if missing). **Outputs**: `models/bdt/`
# (LightGBM text model + JSON), `models/likelihood/` (JSON), `scores/{bdt,likelihood}/<set>.root`,
# `03_classical_baselines/figures/*.png`, `03_classical_baselines/metrics.json`.

# %% tags=["parameters"]
profile = "default"  # smoke | binder | default | full: each parameter at None takes its value (amsnb/profiles.yaml)
workdir = None  # None: runs/<profile> of the checkout (where `amsnb run` and `make demo` write)
seed = None
ecal_scale = None  # fraction of seed 000's Table 1 MC sizes
iss_scale = None  # ISS-like labeled sets: iss_scale * 1e6 protons, * 1e5 electrons
test_protons = None  # raw protons of each test set (mc_test of its own, iss_test); 0: mc_test is split off mc_high
target_events = None  # raw events of the unlabeled DANN target iss_target (0: Table 1 at ecal_scale)
cuts = None  # cut set of the selected sets (notebook 02)
input_files = None  # your ROOT files instead of the simulation (see notebook 02)
mapping = None  # their branch-mapping YAML
train_sets = None  # the MC training set(s)
bdt_search = None  # hyper-parameter grid: "none" or "small" (8 points)
compare_libraries = None  # measure LightGBM vs XGBoost vs sklearn on the same split
retrain = None  # ignore saved models
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
from amsnb.notebook import start
from amsnb import metrics, scores, tables
from amsnb.ecal import baselines
from amsnb.ecal.datasets import DataRequest
from amsnb.plotting import cuts as cplot
from amsnb.plotting import performance as pplot

p, wd = start("03", globals())  # the profile's values for every parameter left at None
request = DataRequest.from_parameters(p)  # what the ECAL sets are made from (the same in notebooks 01-05, 08)

# %% [markdown]
# ## 1. Training (or reusing) the baselines
#
# `ensure_baseline_scores` makes the selected sets if needed, trains (or reloads the saved models when they were
# trained on the same sets with the same settings) and writes the common score files for every other set.

# %%
score_files = baselines.ensure_baseline_scores(wd, request, train_sets=p.train_sets, search=p.bdt_search,
                                               retrain=p.retrain)
bdt = baselines.load_baseline(wd, "bdt")
likelihood = baselines.load_baseline(wd, "likelihood")
print("training events:", bdt.info["n_train"], " validation:", bdt.info["n_val"])
print("chosen:", {k: bdt.info["chosen"][k] for k in ("num_leaves", "learning_rate", "min_child_samples",
                                                       "best_iteration", "val_logloss")})
[{k: t[k] for k in ("num_leaves", "learning_rate", "min_child_samples", "best_iteration", "val_rejection_90",
                    "val_rejection_is_lower_limit", "val_logloss", "seconds")} for t in bdt.info["trials"]]

# %% [markdown]
# ## 2. Which boosting library
#
# Same features, class weights, training/validation split and comparable settings (learning rate 0.05, 31 leaves,
# early stopping after 50 rounds without a 1e-4 log-loss gain). The rejection at 90 % is often a lower limit (no
# validation proton passes), so 98 % and 99.5 % efficiency and the validation log-loss are shown too.

# %%
library_rows = []
if p.compare_libraries:
    library_rows = baselines.compare_libraries(baselines.training_data(wd, p.train_sets), seed=p.seed)
library_rows

# %% [markdown]
# ## 3. Feature importances and score distributions
#
# Importance = share of the total split gain. Score histograms of the held-out MC test set and the ISS-like test set,
# with the threshold that keeps 90 % of that set's electrons.

# %%
fig = cplot.feature_importance(bdt.importances())
wd.save_figure("03", fig, "bdt_importance")
all_scores = scores.load_scores(wd, models=["bdt", "likelihood"])
eval_set = "mc_test" if "mc_test" in all_scores["bdt"] else next(iter(all_scores["bdt"]))
iss_set = "iss_test" if "iss_test" in all_scores["bdt"] else eval_set
for model in ("bdt", "likelihood"):
    for s in (eval_set, iss_set):
        d = all_scores[model][s]
        cut_90 = metrics.threshold_for_efficiency(d["score"], d["label"], efficiency=0.9)
        ax, _ = pplot.score_histograms(d["score"][d["label"] == 1], d["score"][d["label"] == 0], threshold=cut_90)
        ax.set_title(f"{model}, {s}", fontsize="medium")
        wd.save_figure("03", ax.figure, f"scores_{model}_{s}")

# %% [markdown]
# ## 4. Proton rejection at 90 % electron efficiency, 1-2 TeV
#
# Rejection = protons / protons passing (seed 000), unweighted event counts, 68 % Clopper-Pearson interval; when no
# proton passes the number is the 68 % CL lower limit. `mc_test` is the held-out MC test set, `iss_test` the ISS-like
# test set (domain shift: the BDT was trained on MC only).

# %%
table = {s: metrics.comparison_table({m: all_scores[m][s] for m in ("bdt", "likelihood")}, use_weights=False)
         for s in (eval_set, iss_set)}
for s, rows in table.items():
    print(s)
    print(tables.format_table(rows))
curves = {m: metrics.rejection_curve(all_scores[m][eval_set]["score"], all_scores[m][eval_set]["label"], name=m)
          for m in ("bdt", "likelihood")}
energy = scores.energy_text(scores.on_set(all_scores, eval_set, curves))
fig = pplot.rejection_vs_efficiency(curves, reference="bdt", title=f"{eval_set}, {energy}")
wd.save_figure("03", fig, "rejection_vs_efficiency")

# %%
points = {f"{m}_{s}": metrics.rejection_at_efficiency(all_scores[m][s]["score"], all_scores[m][s]["label"],
                                                      efficiency=0.9)
          for m in ("bdt", "likelihood") for s in (eval_set, iss_set)}
wd.save_metrics("03", {
    "rejection_90": {k: p.as_dict() for k, p in points.items()},
    "bdt_mc_test_rejection_90": points[f"bdt_{eval_set}"].rejection,
    "bdt_mc_test_is_lower_limit": points[f"bdt_{eval_set}"].is_lower_limit,
    "bdt_mc_test_protons_passing": points[f"bdt_{eval_set}"].n_bkg_pass,
    "likelihood_mc_test_rejection_90": points[f"likelihood_{eval_set}"].rejection,
    "likelihood_iss_test_rejection_90": points[f"likelihood_{iss_set}"].rejection,
    "bdt_iss_test_rejection_90": points[f"bdt_{iss_set}"].rejection,
    "auc": {m: metrics.roc_auc(all_scores[m][eval_set]["score"], all_scores[m][eval_set]["label"])
            for m in ("bdt", "likelihood")},
    "n_protons_mc_test": points[f"bdt_{eval_set}"].n_bkg,
    "bdt_chosen": bdt.info["chosen"],
    "bdt_top_features": list(bdt.importances())[:5],
    "library_comparison": library_rows,
})
{k: p.rejection_text() for k, p in points.items()}
