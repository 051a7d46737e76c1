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
profile = "default"
workdir = "../runs/default"
seed = 1
selections = [14, 15, 16]  # Si, P, S
n_mc = 80000  # MC events per species, Z 14-20 and 26
n_data_si = 120000  # data-like silicon nuclei; other species in proportion to their abundance
n_train = 5000  # MC events per selection (seed's composition), 80 % training / 20 % validation
n_target = 5000  # unlabeled data-like events per selection for the domain adaptation
epochs = 5
lr = 0.002
batch_size = 128
model_preset = None  # None (hidden 32), "small", "seed"
use_da = True
lambda_max = 3.0  # strength of the gradient reversal at the end of the Ganin schedule
domain_input = "tokens"  # what the domain head sees: "tokens" (fused feature + every branch token) or "fused"
tune_mc = True  # tune the MC cluster counts and layer-charge resolution to data on the Si peak (study.tune_mc_inputs)
threshold = 0.5
ablation_selection = 15
ablation_variants = ["full", "no DA", "no GNN", "no CNN", "no rigidity", "no TOF"]
ablation_epochs = 2
fresh = False  # True: recompute every artefact of the run folder made before this run

# %%
import numpy as np

from amsnb import provenance
import amsnb.plotting
from amsnb.plotting.training import plot_history
import amsnb.nuclei.plots as pn
from amsnb import nuclei
from amsnb.nuclei import study
from amsnb.nuclei import sim
from amsnb.workdir import Workdir

amsnb.plotting.use_style()
wd = Workdir(workdir)
if fresh:
    provenance.request_fresh()  # what this run remakes is reused; everything older is recomputed
train_config = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "use_da": use_da, "lambda_max": lambda_max,
                "seed": seed, "progress": False}
model_config = {"domain_input": domain_input, **({"preset": model_preset} if model_preset else {})}

# %% [markdown]
# ## Samples
# One MC file per species (equal statistics, except the feed-down parents P, S, Cl with `study.BKG_BOOST` times more;
# reweighted to the abundances of `sim.ABUNDANCE`: Si = 1, S 0.18, Fe 0.98, P and Cl 0.03, ...; physics.md §7) and a
# data-like sample with the physical composition. Files are reused on a re-run. The data-like charges of the inner
# tracker (per layer) and the upper TOF (per plane) are calibrated to the MC on the Si peak (`calibrate_inputs`;
# L1 is left to notebook 07's template-fit tune): the scales found are shown. With `tune_mc`, the MC cluster counts
# and inner-layer charge resolution are then tuned to the data on the same clean Si sample (`tune_mc_inputs`: the
# measured cluster excess per layer and side, scaled with the measured charge squared, and the extra resolution).

# %%
samples = study.ensure_samples(wd, n_mc, n_data_si, seed=seed)
mc, data_raw = study.load(samples["mc"]), study.load(samples["data"])
data, input_scales = study.calibrate_inputs(data_raw, mc)
mc_train, mc_tune = study.tune_mc_inputs(mc, data, seed=seed) if tune_mc else (mc, None)
print({d: {int(z): len(a["q_inner"]) for z, a in s.items()} for d, s in (("mc", mc), ("data", data))})
print("MC tune:", {k: np.round(v, 3).tolist() for k, v in (mc_tune or {}).items()})
{k: round(v, 4) for k, v in input_scales.items()}

# %% [markdown]
# The inner-tracker charge of the global MC (before any selection) stacked by species, with the Si, P and S
# windows; the tails between the peaks are nuclei that fragmented inside the tracker.

# %%
glob_all = nuclei.concat(list(mc.values()))
fig = pn.stacked_by_species(glob_all["q_inner"], glob_all["z_primary"], glob_all["weight"], np.linspace(12, 27, 151),
                            xlabel="inner-tracker charge", title="global MC, no selection",
                            window=[b for z in selections for b in nuclei.SELECTIONS[z].inner])
wd.save_figure("06", fig, "inner_charge_global_mc")

# %% [markdown]
# ## Training one MDA per selection
# Signal = MC primaries of the selected charge; background = the other MC primaries passing the selection (with the
# seed's composition); target = the unlabeled data-like events passing the same selection. Rare species of the
# composition (Si in the P selection, P in the S selection) are drawn with replacement: `composition` shows
# (events, distinct events).

# %%
results = {z: study.run_selection(wd, mc_train, data, z, n_train, train_config, model_config, threshold, seed,
                                  n_target) for z in selections}
{r["name"]: r["sets"]["composition"] for r in results.values()}

# %%
for r in results.values():
    wd.save_figure("06", plot_history(r["history"], title=f"{r['name']} selection"), f"curves_{r['name']}")

# %% [markdown]
# ## Validation (MC) at threshold 0.5, and the domain checks
# `domain_acc` is the accuracy of the DA model's own adversarial MC/data head (the seed's target: about 50 %);
# `domain_probe_auc` is the AUC of a *fresh* logistic regression on the fused features (3-fold cross-validated,
# `amsnb.train.diagnostics.domain_probe`, the same probe as notebook 04), trained after the fact on held-out events
# only: MC never used in training, drawn with the physical composition, against data-like events never used as DANN
# target (`study.heldout_probe`). `no DA` is the same network trained on the same events without the domain term.
# The goal: probe AUC <= 0.60 with the validation AUC within 0.01 of the no-DA model.

# %%
summary = {r["name"]: {"val_auc": round(r["val_auc"], 4), "val_auc_no_da": round(r["no_da"]["val_auc"], 4),
                       **{k: round(v, 4) for k, v in r["val_eff"].items() if not k.endswith(("_lo", "_hi"))},
                       "domain_acc": round(r["domain_acc"], 3), "domain_probe_auc": round(r["domain_probe_auc"], 3),
                       "domain_probe_auc_no_da": round(r["no_da"]["domain_probe_auc"], 3),
                       "probe_events": r["probe_n"], "data_pass": round(r["data_pass"], 3)} for r in results.values()}
summary

# %% [markdown]
# Which inputs carry the MC/data difference: the same held-out probe on the raw input groups (P selection), with the
# data as simulated, after the data charge calibration, and after the MC tune. After the calibration what is left is
# the cluster-count excess (the data's higher delta-ray rate) and the resolution of the layer charges; the DANN head
# does not remove them (docs/nuclei.md), the tune does.

# %%
sets_p = results[ablation_selection]["sets"]
variants = {"as simulated": (mc, data_raw), "calibrated": (mc, data)}
inputs = {k: study.input_probe(study.make_datasets(m, d, ablation_selection, n_train, seed=seed, n_target=n_target),
                               seed) for k, (m, d) in variants.items()}
if tune_mc:
    inputs["calibrated + MC tune"] = study.input_probe(sets_p, seed)
alignment = {r["name"]: {"probe_auc_no_da": r["no_da"]["domain_probe_auc"], "probe_auc_da": r["domain_probe_auc"],
                         "head_acc_da": r["domain_acc"]} for r in results.values()}
wd.save_figure("06", pn.domain_alignment(alignment, inputs), "domain_alignment")
{k: {g: round(v, 3) for g, v in d.items()} for k, d in inputs.items()}

# %% [markdown]
# ## Generalization: the global MC
# All species passing each selection, weighted to the physical abundances: signal efficiency and total residual
# background efficiency vs rigidity (left) and the residual efficiency per background Z (right).

# %%
for r in results.values():
    fig = pn.efficiency_vs_rigidity(r["global_curves"], title=f"{r['name']} global MC, threshold {threshold}")
    wd.save_figure("06", fig, f"global_mc_efficiency_{r['name']}")
{r["name"]: {k: round(v, 4) for k, v in r["global_eff"].items()} for r in results.values()}

# %% [markdown]
# ## Attention per branch
# For each validation event, the attention each sub-model's token receives in the fusion layer (rows sum to 1).

# %%
for r in results.values():
    fig = pn.attention_weights(r["val_pred"]["attention"], r["val_label"], title=f"{r['name']} validation")
    wd.save_figure("06", fig, f"attention_{r['name']}")

# %% [markdown]
# ## Ablation
# The selection `ablation_selection` retrained with one branch, or the domain adaptation, switched off (shorter
# training: `ablation_epochs`). AUC errors: Hanley & McNeil (`amsnb.metrics.auc_with_error`); `domain_probe_*` as above
# (held-out probe): the "no DA" row shows DA's effect on the probe, not only on the AUC.

# %%
abl_sets = results[ablation_selection]["sets"]
abl = study.ablation(wd, abl_sets, ablation_selection, {**train_config, "epochs": ablation_epochs}, model_config,
                     ablation_variants)
fig = pn.ablation({k: (v["auc"], v["auc_err"]) for k, v in abl.items()},
                  title=f"{nuclei.SELECTIONS[ablation_selection].name} selection, {ablation_epochs} epochs")
wd.save_figure("06", fig, "ablation")
abl

# %% [markdown]
# ## Key figures
# Besides the network's numbers, the selection efficiencies straight from the simulation (the fraction of P that
# passes the P selection, the fraction of S that leaks into it) move with the fragmentation constants.

# %%
metrics = {"selection_eff_P": float(nuclei.select_mask(mc[15], 15).mean()),
           "selection_eff_Si": float(nuclei.select_mask(mc[14], 14).mean()),
           "S_into_P_selection": float(nuclei.select_mask(mc[16], 15).mean()),
           "Cl_into_S_selection": float(nuclei.select_mask(mc[17], 16).mean())}
for r in results.values():
    n = r["name"]
    metrics.update({f"{n}_val_auc": r["val_auc"], f"{n}_val_sig_eff": r["val_eff"]["sig_eff"],
                    f"{n}_val_bkg_eff": r["val_eff"]["bkg_eff"], f"{n}_domain_acc": r["domain_acc"],
                    f"{n}_domain_probe_acc": r["domain_probe_acc"],
                    f"{n}_domain_probe_auc": r["domain_probe_auc"], f"{n}_global_bkg_eff": r["global_eff"]["bkg_eff"],
                    f"{n}_no_da_val_auc": r["no_da"]["val_auc"],
                    f"{n}_no_da_domain_probe_auc": r["no_da"]["domain_probe_auc"],
                    f"{n}_global_sig_eff": r["global_eff"]["sig_eff"]})
metrics.update({f"ablation_auc_{k.replace(' ', '_')}": v["auc"] for k, v in abl.items()})
metrics.update({f"ablation_probe_auc_{k.replace(' ', '_')}": v["domain_probe_auc"] for k, v in abl.items()})
metrics.update({f"input_probe_auc_{k.replace(' + ', '_').replace(' ', '_')}_{g.replace(' ', '_')}": v
                for k, d in inputs.items() for g, v in d.items()})
metrics.update({f"input_scale_{k}": v for k, v in input_scales.items()})
wd.save_metrics("06", metrics)
metrics
