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
# # 08 · Learning curves: does a deep model overtake the BDT with more training data?
#
# Seed 000 trains on 3.8e6 MC events; a 2-core run affords 1e4-1e5. Whether a deep model would beat the BDT at the
# seed's size depends on how its rejection grows with the training size, so this notebook measures that growth: the
# BDT and each deep model (the plain-image CNN, the view-aware CNN that keeps the x and y projections apart, and the
# seed's CvT) trained on nested subsets of `mc_high`, evaluated on the MC test set `mc_test` and the ISS-like
# `iss_test` at 90 % electron efficiency, with 68 % intervals and the passing protons. The last points are continued
# to the seed's size as a power law: an **extrapolation**, drawn open and dotted.
#
# **Inputs**: the selected sets of notebook 02 (made here if missing). **Outputs**: `models/<model>_n<size>/`
# (reused when the same size was trained with the same request), `08_learning_curve/figures/`, `metrics.json`.

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
sizes = None  # training events of each point (capped at what mc_high holds)
models = None  # model:preset of the deep models; the BDT is always included
epochs = None
batch_size = None
lr = None
efficiency = None
max_eval_events = None  # events of mc_test / iss_test each point is evaluated on (0: all; notebook 05 uses all)
cpu_threads = None  # torch CPU threads (0: all cores)
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
from amsnb.notebook import start
from amsnb.ecal import learning
from amsnb.ecal import plots as eplots
from amsnb.ecal.datasets import DataRequest, ensure_ecal_sets
from amsnb.train import TrainConfig

p, wd = start("08", globals())  # the profile's values for every parameter left at None
sets = ensure_ecal_sets(wd, DataRequest.from_parameters(p))  # the data request of notebooks 01-05

# %% [markdown]
# ## The BDT
# LightGBM on the 46 shape variables (notebook 03), trained on the first `n` events of `mc_high` by event hash.

# %%
points = learning.bdt_curve(wd, p.sizes, seed=p.seed, efficiency=p.efficiency, max_eval_events=p.max_eval_events)
print(learning.table(points))

# %% [markdown]
# ## The deep models
# Each size is one training (no DA, early stopping on `iss_val`), with the same configuration for every model.
# Every point is evaluated on the same `max_eval_events` events of each test set (inference on the full 1e5-proton
# sets for every size would cost more than the trainings); notebook 05 compares the published models on all of them.

# %%
config = TrainConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, use_da=False, device=p.device, seed=p.seed,
                     cpu_threads=p.cpu_threads)
for spec in p.models:
    name, preset = spec.split(":")
    points += learning.deep_curve(wd, sets, name, preset, p.sizes, config, seed=p.seed, efficiency=p.efficiency,
                                  device=p.device, max_eval_events=p.max_eval_events)
print(learning.table(points))

# %% [markdown]
# ## Learning curves, and what they say about the seed's size
# An extrapolation assumes the power law of the last points holds over two decades: treat it as a guess.

# %%
labels = sorted({p.model for p in points})
extrapolations = [e for e in (learning.extrapolate(points, m, s) for m in labels for s in learning.EVAL) if e]
fig = eplots.learning_curve(points, extrapolations)
wd.save_figure("08", fig, "learning_curve")
for e in extrapolations:
    print(f"{e['model']:18} {e['eval_set']:9} slope {e['slope']:+.2f}: R ~ {e['rejection']:.3g} at "
          f"{e['to_n']:.2g} events ({e['note']})")

# %% [markdown]
# ## Key figures

# %%
largest = {f"{p.model}_{p.eval_set}": p.as_dict() for p in points if p.n_train == max(
    q.n_train for q in points if q.model == p.model)}
wd.save_metrics("08", {"points": [p.as_dict() for p in points], "largest": largest,
                       "extrapolations": extrapolations, "sizes": p.sizes, "models": p.models,
                       **{f"{k}_rejection": v["rejection"] for k, v in largest.items()},
                       **{f"{k}_n_bkg_pass": v["n_bkg_pass"] for k, v in largest.items()},
                       **{f"{k}_n_train": v["n_train"] for k, v in largest.items()}})
