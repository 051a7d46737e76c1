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
# # 06 · Nuclei: the MDA network for Si, P and S (seed 004)
#
# Heavy-nuclei fluxes are limited by fragmentation backgrounds: a Z+1 nucleus that fragments between tracker L1 and L2
# shows the parent's charge in L1 and the fragment's charge in the inner tracker. Seed 004 trains a *multimodal
# domain-adversarial* (MDA) network on low-level tracker and TOF variables to separate a selected species (signal)
# from the other nuclei passing the same selection. This notebook
#
# 1. simulates (or reuses) nuclei Z = 14-20, 26 with `amsnb.nuclei.sim` in two domains, `mc` and a data-like `data`
#    (documented charge-scale, resolution and cluster-count differences; `docs/nuclei.md`);
# 2. applies the Si, P and S selections and builds training sets with the seed's composition
#    (e.g. P selection: 50 % P, 1.1 % Si, 48.9 % S);
# 3. calibrates the data-like inner-tracker and TOF charges on the Si peak (as AMS equalises its gains on flight
#    data), trains one MDA per selection on MC signal/background + unlabeled data (DANN; `amsnb.train`) and the same
#    network without DA, shows the curves, the validation efficiencies at a threshold of 0.5, and checks the domain
#    adaptation independently: the domain head's accuracy and a fresh probe on held-out events, with and without DA;
# 4. tests the generalization on the *global MC* (all species, reweighted to the physical abundances): signal
#    efficiency and residual background efficiency vs rigidity and per background Z;
# 5. shows the attention each sub-model (GNN, CNN, rigidity MLP, TOF MLP) receives, and an ablation of the branches
#    and of the domain adaptation.
#
# **Inputs**: none (the simulation). **Outputs**: `data/nuclei/*.root`, `models/mda_{Si,P,S}/`,
# `scores/mda_{Si,P,S}/{val,global_mc,data}.root`, `06_nuclei_mda/figures/*.png`, `06_nuclei_mda/metrics.json`.

# %% tags=["parameters"]
profile = "default"  # smoke | binder | default | full: each parameter at None takes its value (amsnb/profiles.yaml)
workdir = None  # None: runs/<profile> of the checkout (where `amsnb run` and `make demo` write)
seed = None
selections = None  # Si, P, S
n_mc = None  # MC events per species, Z 14-20 and 26
n_data_si = None  # data-like silicon nuclei; other species in proportion to their abundance
n_train = None  # MC events per selection (seed's composition), 80 % training / 20 % validation
n_target = None  # unlabeled data-like events per selection for the domain adaptation
epochs = None
lr = None
batch_size = None
model_preset = None  # "" (hidden 32), "small", "seed"
use_da = None
lambda_max = None  # strength of the gradient reversal at the end of the Ganin schedule
alignment = None  # with use_da: dann | coral | mmd | cdan | cdan+e (amsnb.train.losses, docs/training.md)
domain_input = None  # what the domain head sees: "tokens" (fused feature + every branch token) or "fused"
tune_mc = None  # tune the MC cluster counts and layer-charge resolution to data on the Si peak (study.tune_mc_inputs)
threshold = None
ablation_selection = None
ablation_variants = None
ablation_epochs = None
compare_methods = None  # alignment methods x seeds on the ablation selection ("none": source-only); [] skips
compare_seeds = None  # the seeds of that comparison
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
import numpy as np

from amsnb.notebook import start
from amsnb.plotting.training import plot_history, plot_method_comparison
from amsnb.tables import format_seed_summary, seed_summary
import amsnb.nuclei.plots as pn
from amsnb import nuclei
from amsnb.nuclei import mda_study, samples as nuclei_samples

p, wd = start("06", globals())  # the profile's values for every parameter left at None
train_config = {"epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr, "use_da": p.use_da,
                "lambda_max": p.lambda_max, "alignment": p.alignment, "seed": p.seed, "progress": False}
model_config = {"domain_input": p.domain_input, **({"preset": p.model_preset} if p.model_preset else {})}

# %% [markdown]
# ## Samples
# One MC file per species (equal statistics, except the feed-down parents P, S, Cl with `BKG_BOOST` times more;
# reweighted to the abundances of `sim.ABUNDANCE`: Si = 1, S 0.18, Fe 0.98, P and Cl 0.03, ...; physics.md §7) and a
# data-like sample with the physical composition. Files are reused on a re-run. The data-like charges of the inner
# tracker (per layer) and the upper TOF (per plane) are calibrated to the MC on the Si peak (`calibrate_inputs`;
# L1 is left to notebook 07's template-fit tune): the scales found are shown. With `tune_mc`, the MC cluster counts
# and inner-layer charge resolution are then tuned to the data on the same clean Si sample (`tune_mc_inputs`: the
# measured cluster excess per layer and side, scaled with the measured charge squared, and the extra resolution).

# %%
samples = nuclei_samples.prepare_samples(wd, p.n_mc, p.n_data_si, seed=p.seed, tune_mc=p.tune_mc)
samples.summary()

# %% [markdown]
# The inner-tracker charge of the global MC (before any selection) stacked by species, with the Si, P and S
# windows; the tails between the peaks are nuclei that fragmented inside the tracker.

# %%
glob_all = nuclei.concat(list(samples.mc.values()))
fig = pn.stacked_by_species(glob_all["q_inner"], glob_all["z_primary"], glob_all["weight"], np.linspace(12, 27, 151),
                            xlabel="inner-tracker charge", title="global MC, no selection",
                            window=[b for z in p.selections for b in nuclei.SELECTIONS[z].inner])
wd.save_figure("06", fig, "inner_charge_global_mc")

# %% [markdown]
# ## Training one MDA per selection
# Signal = MC primaries of the selected charge; background = the other MC primaries passing the selection (with the
# seed's composition); target = the unlabeled data-like events passing the same selection. Rare species of the
# composition (Si in the P selection, P in the S selection) are drawn with replacement: `composition` shows
# (events, distinct events).

# %%
results = mda_study.run_selections(wd, samples, p.selections, p.n_train, train_config, model_config,
                                   threshold=p.threshold, seed=p.seed, n_target=p.n_target)
{r.name: r.sets.composition for r in results.values()}

# %%
for r in results.values():
    wd.save_figure("06", plot_history(r.history, title=f"{r.name} selection"), f"curves_{r.name}")

# %% [markdown]
# ## Validation (MC) at threshold 0.5, and the domain checks
# An event passes the cut when its score is at or above the threshold (`amsnb.metrics.passes`, as everywhere in
# amsnb). `domain_acc` is the accuracy of the DA model's own adversarial MC/data head (the seed's target: about 50 %);
# `domain_probe_auc` is the AUC of a *fresh* logistic regression on the fused features (3-fold cross-validated,
# `amsnb.train.diagnostics.domain_probe`, the same probe as notebook 04), trained after the fact on held-out events
# only: MC never used in training, drawn with the physical composition, against data-like events never used as DANN
# target (`mda_study.heldout_probe`). `no DA` is the same network trained on the same events without the domain
# term. The goal: probe AUC <= 0.60 with the validation AUC within 0.01 of the no-DA model.

# %%
{r.name: r.summary() for r in results.values()}

# %% [markdown]
# Which inputs carry the MC/data difference: the same held-out probe on the raw input groups (P selection), with the
# data as simulated, after the data charge calibration, and after the MC tune. After the calibration what is left is
# the cluster-count excess (the data's higher delta-ray rate) and the resolution of the layer charges; the DANN head
# does not remove them (docs/nuclei.md), the tune does.

# %%
inputs = mda_study.input_probes(samples, results[p.ablation_selection], p.n_train, seed=p.seed, n_target=p.n_target)
fig = pn.domain_alignment({r.name: r.alignment() for r in results.values()}, inputs.auc)
wd.save_figure("06", fig, "domain_alignment")
inputs.table()

# %% [markdown]
# ## Generalization: the global MC
# All species passing each selection, weighted to the physical abundances: signal efficiency and total residual
# background efficiency vs rigidity (left) and the residual efficiency per background Z (right).

# %%
for r in results.values():
    fig = pn.efficiency_vs_rigidity(r.global_curves, title=f"{r.name} global MC, threshold {p.threshold}")
    wd.save_figure("06", fig, f"global_mc_efficiency_{r.name}")
{r.name: r.global_eff.table() for r in results.values()}

# %% [markdown]
# ## Attention per branch
# For each validation event, the attention each sub-model's token receives in the fusion layer (rows sum to 1).

# %%
for r in results.values():
    fig = pn.attention_weights(r.val_pred["attention"], r.val_label, title=f"{r.name} validation")
    wd.save_figure("06", fig, f"attention_{r.name}")

# %% [markdown]
# ## Ablation
# The selection `ablation_selection` retrained with one branch, or the domain adaptation, switched off (shorter
# training: `ablation_epochs`). AUC errors: Hanley & McNeil (`amsnb.metrics.auc_with_error`); `domain_probe_*` as above
# (held-out probe): the "no DA" row shows DA's effect on the probe, not only on the AUC.

# %%
abl = mda_study.ablation(wd, results[p.ablation_selection], train_config, model_config, p.ablation_variants,
                         epochs=p.ablation_epochs)
wd.save_figure("06", pn.ablation(abl.auc(), title=abl.title), "ablation")
abl.table()

# %% [markdown]
# ## Alignment methods across seeds
# With `compare_methods` (profile `da_compare`): the `ablation_selection`'s MDA trained once per method (source-only,
# DANN, DeepCORAL, MMD, CDAN) and seed on the same events. On held-out events (the probe sets; the data-like events
# labeled by their simulation truth): the rejection at 90 % signal efficiency with each set's own threshold, the
# signal efficiency the MC threshold keeps on the data-like events, the held-out probe AUC and the validation AUC;
# mean and spread over seeds (docs/training.md).

# %%
comparison = []
if p.compare_methods:
    comparison = mda_study.compare_alignments(wd, results[p.ablation_selection], train_config, model_config,
                                              p.compare_methods, p.compare_seeds)
    print(format_seed_summary(seed_summary(comparison, mda_study.COMPARISON_FIGURES), mda_study.COMPARISON_FIGURES))
    wd.save_figure("06", plot_method_comparison(comparison), "method_comparison")

# %% [markdown]
# ## Key figures
# Besides the network's numbers, the selection efficiencies straight from the simulation (the fraction of P that
# passes the P selection, the fraction of S that leaks into it) move with the fragmentation constants.

# %%
metrics = mda_study.key_figures(samples, results, abl, inputs)
if comparison:
    metrics["method_comparison"] = seed_summary(comparison, mda_study.COMPARISON_FIGURES)
wd.save_metrics("06", metrics)
metrics
