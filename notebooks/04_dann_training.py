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
# # 04 · Deep classifiers and domain adaptation (CoAtNet, CvT, CNN + DANN)
#
# Seed 000 trains CoAtNet and CvT on ECAL shower images (18 layers x 72 cells) to separate electrons from protons at
# 0.2-2 TeV, and adapts them from MC to ISS data with domain-adversarial training (DANN, Ganin & Lempitsky 2015): a
# domain classifier behind a gradient-reversal layer pushes the feature extractor towards features in which MC and
# ISS look alike. This notebook trains one configuration of that grid; the grid itself is a sweep of this notebook
# (`amsnb run --only 04 --sweep use_da=False,True --sweep model=cvt,coatnet`), every output named by the model tag.
#
# **Inputs**: the selected sets of notebook 02 (`sets/`; made here if missing): `mc_low` or `mc_high` for training,
# `iss_val` (or a split of `mc_high`) for early stopping, the unlabeled `iss_target` for DA.
# **Outputs**: `models/<tag>/` (safetensors + config JSON + ONNX, checkpoints and `metrics.csv` under `train/`),
# `scores/<tag>/{mc_test,iss_val,iss_test,iss_target}.root`, figures and `metrics.json` in `04_dann_training/`.

# %% tags=["parameters"]
profile = "default"  # smoke | binder | default | full: each parameter at None takes its value (amsnb/profiles.yaml)
workdir = None  # None: runs/<profile> of the checkout (where `amsnb run` and `make demo` write)
seed = None
ecal_scale = None
iss_scale = None
test_protons = None  # raw protons of each test set (mc_test of its own, iss_test); 0: mc_test is split off mc_high
target_events = None  # raw events of the unlabeled DANN target iss_target (0: Table 1 at ecal_scale)
cuts = None  # cut set of the selected sets (notebook 02)
input_files = None  # your ROOT files instead of the simulation (see notebook 02)
mapping = None  # their branch-mapping YAML
device = None
model = None  # cvt | coatnet | cnn
preset = None  # tiny | small | cvt13 / coatnet0 (GPU)
use_da = None
train_set = None  # mc_low (0.2-1 TeV) | mc_high (1-2 TeV)
val_set = None  # iss (iss_val) | mc (20 % of mc_high)
epochs = None
batch_size = None
lr = None
max_train_events = None
lambda_max = None  # maximum strength of the gradient reversal (Ganin's ramp 2/(1+exp(-10p))-1 reaches it)
alignment = None  # with use_da: dann | coral | mmd | cdan | cdan+e (amsnb.train.losses, docs/training.md)
target_window = None  # DANN target: iss_target in the training events' energy range | "all" (seed's 0.2-2 TeV)
max_target_events = None  # at most this many target events (0: all)
match_class_mix = None  # weight the training events in the domain loss to the target's electron share (BDT estimate)
compare_without_da = None  # with use_da: also train (or reuse) the same model without DA, for the diagnostics
num_workers = None
cpu_threads = None  # torch CPU threads (0: all cores)
cache_dtype = None  # training-cache images: float32 MeV | log16 (float16 of ln(1 + MeV), half the size)
compare_methods = None  # alignment methods x seeds compared ("none": source-only); [] skips (profile da_compare)
compare_seeds = None  # the seeds of that comparison
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
import dataclasses

from amsnb.notebook import start
from amsnb.ecal.datasets import DataRequest, ensure_ecal_sets
from amsnb.metrics import threshold_transfer
from amsnb.scores import load_scores
from amsnb.tables import format_seed_summary, format_transfer_table, seed_summary
from amsnb.plotting.training import LiveCurves, plot_feature_pca, plot_history, plot_method_comparison, plot_scores
from amsnb.train import TrainConfig
from amsnb.ecal import baselines, da_compare, experiment

p, wd = start("04", globals())  # the profile's values for every parameter left at None
request = DataRequest.from_parameters(p)  # what the ECAL sets are made from (the same in notebooks 01-05, 08)
tag = experiment.model_tag(p.model, p.preset, p.use_da, p.train_set, p.val_set, p.alignment)
tag

# %% [markdown]
# ## Data
# The sets are converted once into a memory-mapped training cache (`cache/`, images in MeV); the model applies
# `log1p(E / 11.5 MeV)` (about one MIP per cell) itself, so saved and exported models take raw cell energies.

# %%
sets = ensure_ecal_sets(wd, request)
prep_options = dict(target_window=p.target_window, max_target_events=p.max_target_events, cache_dtype=p.cache_dtype,
                    need_target=p.use_da)
data = experiment.prepare(wd, sets, p.train_set, p.val_set, p.max_train_events, p.seed, **prep_options)
class_mix = None
if p.use_da and p.match_class_mix:  # the target's electron share, from notebook 03's BDT (trained here if missing)
    baselines.ensure_baseline_scores(wd, request)
    class_mix = experiment.target_electron_fraction(wd, data)
    data = experiment.prepare(wd, sets, p.train_set, p.val_set, p.max_train_events, p.seed, **prep_options,
                              target_electron_fraction=class_mix["fraction"])
data.counts, class_mix

# %% [markdown]
# ## Training
# Weighted cross-entropy (balanced class weights for the e/p imbalance), Adam with a cosine learning rate, early
# stopping on the proton rejection at 90 % electron efficiency on the validation set. With DA, every step also sees
# a target batch and the domain loss, with lambda rising as 2/(1+exp(-10p))-1 over the run to `lambda_max`. The
# target holds the `iss_target` events inside the training events' energy range (`target_window="train"`): the
# seed's 0.2-2 TeV target against 1-2 TeV training events lets the domain head separate the domains by energy
# alone, and the reversed gradient then removes energy information instead of the MC/ISS difference
# (docs/training.md measures both). `match_class_mix` also weights the training events in the domain loss so that
# their electron share is the target's (estimated with notebook 03's BDT): the class mix is then no domain
# signature either. A checkpoint is written every epoch: re-running this cell after an interruption resumes.

# %%
config = TrainConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, use_da=p.use_da, lambda_max=p.lambda_max,
                     alignment=p.alignment, device=p.device, seed=p.seed, num_workers=p.num_workers,
                     cpu_threads=p.cpu_threads)
live = LiveCurves(tag)
result = experiment.train_model(wd, tag, p.model, p.preset, data, config, callbacks=[live.update], seed=p.seed)
live.close()
fig = plot_history(result.history, title=tag)
wd.save_figure("04", fig, f"{tag}_curves")
print(f"best epoch {result.best_epoch} of {len(result.history)}, validation rejection {result.best_metric}")

# %% [markdown]
# ## Export and scores
# The model folder holds the weights (safetensors), the config needed to rebuild it through `amsnb.models`, and an
# ONNX graph checked against onnxruntime on random and real showers. Then one score file per evaluation set in the
# common format (`amsnb.scores`); notebook 05 compares all models on them. The rejection is N_protons /
# N_protons passing at the threshold keeping 90 % of the electrons.

# %%
export, summary = experiment.publish(wd, tag, result, p.model, p.preset, data, p.device, seed=p.seed,
                                     extra={"train_set": p.train_set, "val_set": p.val_set, "use_da": p.use_da,
                                            "best_epoch": result.best_epoch,
                                            "train_config": dataclasses.asdict(config)})
export

# %%
fig = plot_scores(load_scores(wd, [tag], experiment.EVAL_SETS)[tag])
wd.save_figure("04", fig, f"{tag}_scores")
summary

# %% [markdown]
# ## Domain diagnostics
# On held-out MC (`mc_test`) and ISS-like (`iss_test`) events of the same energy range, can the features still tell
# the domains apart? A logistic-regression probe on the features (and, with DA, the model's own domain head) gives
# an accuracy and AUC; DANN aims at 0.5. The PCA panels show the features without and with DA; the model
# without DA is also exported and scored
# under its own tag, so notebook 05 can compare the two.

# %%
studies = {tag: experiment.domain_study(result.model, data.evaluation["mc_test"], data.evaluation["iss_test"],
                                       p.device, p.seed, head_trained=p.use_da)}
if p.use_da and p.compare_without_da:
    twin_tag = experiment.model_tag(p.model, p.preset, False, p.train_set, p.val_set)
    twin = experiment.train_model(wd, twin_tag, p.model, p.preset, data, dataclasses.replace(config, use_da=False),
                                  seed=p.seed)
    experiment.publish(wd, twin_tag, twin, p.model, p.preset, data, p.device, {"use_da": False}, p.seed)
    studies = {twin_tag: experiment.domain_study(twin.model, data.evaluation["mc_test"],
                                                 data.evaluation["iss_test"], p.device, p.seed, head_trained=False),
               **studies}
fig = plot_feature_pca(studies)
wd.save_figure("04", fig, f"{tag}_feature_pca")
{name: study["metrics"] for name, study in studies.items()}

# %% [markdown]
# ## Threshold transfer
# As an analyst uses the classifier: the 90 % threshold fixed on MC (`mc_test`) and applied to the ISS-like test set.
# The electron efficiency it really reaches there shows how far the electron side moved; DA should bring it back
# towards 90 % (notebook 05 compares every model, and the threshold fixed on `iss_val`).

# %%
trained = [tag] + ([twin_tag] if p.use_da and p.compare_without_da else [])
transfer = threshold_transfer(load_scores(wd, trained), "mc_test", "iss_test")
print(format_transfer_table(transfer))

# %% [markdown]
# ## Alignment methods across seeds
# With `compare_methods` (profile `da_compare`): each method (source-only first, then DANN, DeepCORAL, MMD, CDAN)
# trained with each of `compare_seeds`, on the same sets. Mean and spread over seeds of the rejection at 90 % on
# `mc_test` and `iss_test` (each set's own threshold), the electron efficiency the MC threshold keeps on `iss_test`,
# the feature probe's AUC, and how far the epoch chosen without flight labels (IWV, DEV: `amsnb.train.selection`)
# lands from the one chosen on `iss_val` (rejection on an `iss_test` sample; docs/training.md).

# %%
comparison = []
if p.compare_methods:
    comparison = da_compare.compare_alignments(wd, data, p.model, p.preset, config, p.compare_methods,
                                               p.compare_seeds, p.device)
    print(format_seed_summary(seed_summary(comparison, da_compare.FIGURES), da_compare.FIGURES))
    fig = plot_method_comparison(comparison)
    wd.save_figure("04", fig, f"{tag}_method_comparison")

# %% [markdown]
# ## Key figures
# Recorded in `04_dann_training/metrics.json` (the regression suite compares the smoke profile's values).

# %%
last = result.history[-1]
metrics = {"tag": tag, "epochs_run": len(result.history), "best_epoch": result.best_epoch,
           "n_train_electrons": data.counts["train"]["electrons"], "n_train_protons": data.counts["train"]["protons"],
           "final_train_loss": last["loss"], "val_auc": last.get("auc"), "train_images_per_s": last["images_per_s"],
           "data_wait_frac": last["data_wait_frac"], "onnx_max_abs_diff": export["max_abs_diff_random"],
           "domain": {name: study["metrics"] for name, study in studies.items()},
           "n_target": data.counts["target"], "target_electron_fraction": class_mix and class_mix["fraction"],
           "transfer_efficiency": {r["model"]: r["efficiency"] for r in transfer},
           "transfer_rejection": {r["model"]: r["rejection_value"] for r in transfer},
           **{f"{s}_{k}": v for s, info in summary.items() for k, v in info.items()},
           **({"method_comparison": seed_summary(comparison, da_compare.FIGURES)} if comparison else {})}
wd.save_metrics("04", metrics)
metrics
