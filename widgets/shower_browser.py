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
# # Shower browser
#
# Step through AMS-02 ECAL events: both views as log-scale heat maps, the longitudinal and lateral profiles and the
# event's reconstructed variables. Buttons or keys (type `n` / `p` in the *keys* box) step; the drop-downs and the
# slider filter by class, domain and reconstructed energy.
#
# Run as an app from the repository root: `voila widgets/shower_browser.ipynb`, then give your file in the address,
# `http://localhost:8866/?data_file=runs/default/data/ecal/mc_high.root&n_events=500` (or set the environment variable
# `AMSNB_APP_DATA_FILE` before starting Voila). A relative path is read from the folder you started the server in.
# `data_file` is one or more ROOT files (comma-separated or a glob), in the amsnb schema or translated by `mapping`
# (docs/mapping.md); empty simulates a small sample on the fly. Zoom and pan on the figure with
# its toolbar (the house button goes back). `docs/widgets.md` lists every app's parameters.

# %% tags=["parameters"]
data_file = ""  # ROOT file(s): comma-separated or a glob; empty: simulate a small sample
mapping = ""  # branch-mapping YAML for files not in the amsnb schema (docs/mapping.md)
n_events = 200  # events to read or simulate
seed = 1

# %%
from amsnb.ecal.shower_browser import ShowerBrowser
from IPython.display import display

from amsnb.widgets.app import app_errors, app_parameters

with app_errors():
    app_parameters(globals(), ["data_file", "mapping", "n_events", "seed"], paths=["data_file", "mapping"])
    display(ShowerBrowser(data_file or None, n=n_events, seed=seed, mapping=mapping or None))
