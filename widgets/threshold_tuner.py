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
# # Threshold tuner
#
# Choose a working point of an electron/proton classifier: a score threshold or a target electron efficiency, an
# energy range, a model and an evaluation set. The readout gives the electron efficiency and the proton rejection
# with their Clopper-Pearson intervals (68 % CL; a lower limit when no proton passes) and the counts of misidentified
# protons and lost electrons; the working point is marked on the rejection-vs-efficiency curve and on the score
# histograms. *Save working point* writes a JSON that `amsnb.working_points.load_working_point` reads.
#
# Run as an app from the repository root: `voila widgets/threshold_tuner.ipynb`, then give a run folder in the
# address, `http://localhost:8866/?workdir=runs/default` (or the environment variable `AMSNB_APP_WORKDIR`): `workdir`
# is a run folder with score files (`scores/<model>/<set>.root`, written by notebooks 03/04), `score_files` a
# comma-separated list of score files; relative paths are read from the folder you started the server in.
# Both empty: a demonstration set of toy scores (Beta-distributed, `amsnb.widgets.threshold_tuner.demo_scores`) is
# written to a temporary workdir, so the app runs standalone. The readout counts events as notebook 05 does; the
# *Counts* switch gives the flux-weighted numbers.
#
# **Inputs**: score files (or none). **Outputs**: `working_point_<model>_<set>.json`.

# %% tags=["parameters"]
workdir = ""  # run folder with scores/<model>/<set>.root; empty: see score_files
score_files = ""  # comma-separated score files (model = folder name, set = file name); empty: demo scores
efficiency = 0.9  # initial target electron efficiency
seed = 7  # seed of the demonstration scores

# %%
from IPython.display import display

from amsnb.widgets.app import app_errors, app_parameters
from amsnb.widgets.threshold_tuner import ThresholdTuner, demo_workdir

with app_errors():
    app_parameters(globals(), ["workdir", "score_files", "efficiency", "seed"], paths=["workdir", "score_files"])
    if score_files:
        tuner = ThresholdTuner.from_files(score_files, efficiency=efficiency)
    else:
        wd = workdir or demo_workdir(seed)  # removed when the kernel exits
        tuner = ThresholdTuner.from_workdir(wd, efficiency=efficiency)
    display(tuner)
