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
# # Cut explorer
#
# Tune one quality cut of the ECAL electron/proton selection and watch what it costs: pick a cut, move its
# minimum or maximum, and the cut flow (events and efficiency after each cut, electrons and protons, 68 %
# Clopper-Pearson intervals) and the cut's N-1 distribution (every other cut applied, the window marked) follow.
# The cut set is data (`amsnb/cuts/default.yaml`, or a YAML of your own: `docs/cuts.md`); nothing here changes it on
# disk. Notebook 02 embeds the same widget next to the full cut study.
#
# Run as an app from the repository root: `voila widgets/cut_explorer.ipynb`, then give your files in the address,
# `http://localhost:8866/?data_files=mydata/*.root&mapping=mymapping.yaml` (or environment variables
# `AMSNB_APP_DATA_FILES`, `AMSNB_APP_MAPPING`); relative paths are read from the folder you started the server in.
# `data_files` are your ECAL ntuples (comma-separated paths or a glob; `mapping` translates your branch names,
# `docs/mapping.md`). Empty: `n_events` simulated MC events, half
# electrons and half protons at 0.9-2.2 TeV reconstructed energy (`amsnb.ecal.cut_explorer.demo_sample`).
#
# **Inputs**: ECAL ROOT files (or none). **Outputs**: none.

# %% tags=["parameters"]
data_files = ""  # ECAL ROOT files (comma-separated or a glob); empty: a simulated sample
mapping = ""  # branch-mapping YAML for your files (docs/mapping.md)
cuts = "default"  # a shipped cut set name or a YAML path
set_name = "mc_high"  # whose per-set windows apply (the energy cut differs per Table-1 set)
cut = "e_over_r"  # the cut selected first
n_events = 20000  # events read (0: all) or simulated
seed = 5  # seed of the simulated sample

# %%
from amsnb.ecal.cut_explorer import CutExplorer
from IPython.display import display

from amsnb.widgets.app import app_errors, app_parameters

with app_errors():
    app_parameters(globals(), ["data_files", "mapping", "cuts", "set_name", "cut", "n_events", "seed"],
                   paths=["data_files", "mapping"])
    explorer = CutExplorer.from_source(data_files, cuts, set_name=set_name, cut=cut, mapping=mapping or None,
                                       n_events=n_events, seed=seed)
    display(explorer)
