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
# # 07 · The below-L1 background: L1 charge, ML cut and template fit (seed 004)
#
# A nucleus of charge Z+1 that reaches tracker L1 intact and fragments below it (TRD, upper TOF) leaves the parent's
# charge in L1 and passes the inner-tracker selection of charge Z: the *below-L1* background. The L1 charge is the
# handle on it, and it is *not* an input of the MDA network, so it can be fitted after the ML cut. This notebook
#
# 1. shows the L1 charge of the selected global MC before and after the ML cut, stacked by species (MC truth);
# 2. gives the efficiency of the ML cut and the below-L1 fraction (MC truth) for three thresholds;
# 3. estimates the below-L1 fraction in the data-like sample with a template fit of its L1 charge (`amsnb.nuclei.fits`,
#    iminuit `cost.Template` with MC template uncertainties), with untuned and with tuned MC charge response, before
#    and after the ML cut, and compares it with the sample's MC truth;
# 4. runs a closure test: MC pseudo-data of known composition.
#
# **Inputs**: the nuclei samples and `models/mda_<species>/` of notebook 06 (a small model is trained here if it is
# missing). **Outputs**: `07_below_l1_background/figures/*.png`, `07_below_l1_background/metrics.json`.

# %% tags=["parameters"]
profile = "default"  # smoke | binder | default | full: each parameter at None takes its value (amsnb/profiles.yaml)
workdir = None  # None: runs/<profile> of the checkout (where `amsnb run` and `make demo` write)
seed = None
z_sel = None  # the selection studied: P
n_mc = None  # as in notebook 06, so its samples are reused
n_data_si = None
thresholds = None
threshold = None  # the ML cut of the fits and of the before/after plots
small_epochs = None  # only if notebook 06's model is missing
small_n_train = None
x_scan = None  # g/cm2 between L1 and L2 (physics.md §6 scan range)
tune_mc = None  # as in notebook 06
l1_gain_scan = None  # L1 gain residual of the charge response (0.035 nominal): L1 sigma ~0.3-0.45
n_scan = None  # events per species and grammage in the scan
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
import numpy as np

from amsnb.notebook import start
import amsnb.nuclei.plots as pn
from amsnb import nuclei
from amsnb.nuclei import below_l1, samples as nuclei_samples

p, wd = start("07", globals())  # the profile's values for every parameter left at None
sel = nuclei.SELECTIONS[p.z_sel]
# notebook 06's samples: data calibrated (inner tracker and TOF; L1 is tuned below) and, with tune_mc, the MC the
# network was trained on (cluster counts and inner resolution tuned to data)
samples = nuclei_samples.prepare_samples(wd, p.n_mc, p.n_data_si, seed=p.seed, tune_mc=p.tune_mc)
model, source = below_l1.model_for(wd, samples, p.z_sel, p.small_n_train,
                                   {"epochs": p.small_epochs, "use_da": True, "seed": p.seed, "progress": False},
                                   "small", p.seed)
source

# %% [markdown]
# ## L1 charge before and after the ML cut
# The global MC passing the inner-charge selection, *without* the L1 cut, weighted to the physical abundances. The
# dashed lines are the L1 window of the standard selection. An event passes the ML cut when its score is at or above
# the threshold (`amsnb.metrics.passes`).

# %%
glob = below_l1.scored_global_mc(samples, model, p.z_sel)
edges = np.linspace(p.z_sel - 2, p.z_sel + 4, 91)
for name, events in (("before", glob), ("after", glob.passing(p.threshold))):
    fig = pn.stacked_by_species(events.q_l1, events.z_primary, events.weight, edges,
                                title=f"{sel.name} selection, {name} ML cut", window=sel.l1)
    wd.save_figure("07", fig, f"l1_charge_{name}_ml_cut")

# %%
fig = pn.stacked_by_species(glob.q_l1, glob.category, glob.weight, edges,
                            title=f"{sel.name} selection by MC-truth category", window=sel.l1)
wd.save_figure("07", fig, "l1_charge_categories")

# %% [markdown]
# ## Efficiency of the ML cut (global MC inside the L1 window)

# %%
table = below_l1.ml_cut_table(glob, p.thresholds)
wd.save_figure("07", pn.efficiency_vs_threshold(table.as_rows(), title=f"{sel.name} global MC"), "ml_cut_efficiency")
table.table()

# %% [markdown]
# ## Template fit of the L1 charge
# Templates from the MC: `l1_is_z` (signal + fragmented above L1), `below_l1`, `lighter`. The MC charge response is
# tuned on the clean Si peak (scale and extra resolution), the data charges are calibrated with the scale. The
# untuned fit shows the bias a 1 % charge-scale mismatch causes.

# %%
bl = below_l1.template_fits(samples, model, glob, p.threshold, seed=p.seed)
bl.tune.as_dict()

# %%
for key, case in bl.cases.items():
    fig = pn.template_fit(case.fit, case.truth, sel.l1, title=f"{sel.name} selection\n{below_l1.CASE_TITLES[key]}")
    wd.save_figure("07", fig, f"template_fit_{key}")
bl.table()

# %% [markdown]
# ## How much does the material between L1 and L2 matter?
# The grammage between L1 and L2 is known only to a range (physics.md §6: 5-7 g/cm², low confidence). The MC-truth
# below-L1 fraction of the selection (before the ML cut) and the signal selection efficiency for each value:

# %%
scan = below_l1.vs_material(p.z_sel, p.x_scan, p.n_scan, seed=p.seed)
wd.save_figure("07", pn.material_scan(scan.as_rows(), title=f"{sel.name} selection, MC truth"), "material_scan")
scan.table()

# %% [markdown]
# ## ... and the L1 charge resolution?
# The downward tail of the Z+1 nucleus's L1 charge decides how many below-L1 events enter the Z window. AMS's per-layer
# resolutions for these charges were not found (docs/nuclei.md), so the L1 gain residual of the response model is
# scanned; `l1_sigma68` is the L1 resolution of Z+1 it gives.

# %%
res_scan = below_l1.vs_l1_resolution(p.z_sel, p.l1_gain_scan, p.n_scan, seed=p.seed)
fig = pn.material_scan(res_scan.as_rows(), title=f"{sel.name} selection, MC truth", x_key="l1_sigma68",
                       xlabel=f"L1 charge resolution of Z = {p.z_sel + 1} (sigma68)")
wd.save_figure("07", fig, "l1_resolution_scan")
res_scan.table()

# %% [markdown]
# ## Key figures

# %%
metrics = {"model_source": source, **bl.metrics(), **table.metrics(), **scan.metrics(), **res_scan.metrics(),
           "input_scale_inner_mean": samples.inner_scale_mean}
wd.save_metrics("07", metrics)
metrics
