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
# # 01 · ECAL showers: simulation, reconstruction and what electrons and protons look like
#
# AMS-02 flight data and MC are not public, so the whole series runs on showers from `amsnb.ecal.sim`, a fast
# simulation built from published parametrisations (GFLASH longitudinal and radial profiles, AMS ECAL geometry and
# readout, hadronic interactions on the λ_I scale; constants and sources in `docs/simulation.md` and
# `docs/physics.md`). This notebook
#
# 1. generates the five raw samples of seed 000's Table 1 (`mc_low`, `mc_high`, `iss_val`, `iss_test`, `iss_target`),
#    or reads your own ROOT files (`input_files` + `mapping`);
# 2. shows event displays, mean showers and profiles of electrons and protons;
# 3. compares the reconstructed and shower-shape variables between electrons and protons and between the MC and the
#    ISS-like domain, knob by knob;
# 4. validates the simulation against the published energy resolution, depth of shower maximum, Molière containment
#    and proton interaction probability;
# 5. opens the shower browser.
#
# **Inputs**: none (or `input_files`). **Outputs**: `data/ecal/*.root` (raw samples + `table1.json`),
# `01_shower_exploration/figures/*.png`, `01_shower_exploration/metrics.json`.

# %% tags=["parameters"]
profile = "default"  # smoke | binder | default | full: each parameter at None takes its value (amsnb/profiles.yaml)
workdir = None  # None: runs/<profile> of the checkout (where `amsnb run` and `make demo` write)
seed = None
ecal_scale = None  # fraction of seed 000's Table 1 MC sizes
iss_scale = None  # ISS-like labeled sets: iss_scale * 1e6 protons, * 1e5 electrons
test_protons = None  # raw protons of each test set (mc_test of its own, iss_test); 0: mc_test is split off mc_high
target_events = None  # raw events of the unlabeled DANN target iss_target (0: Table 1 at ecal_scale)
input_files = None  # your own ROOT files instead of the simulation
mapping = None  # branch-mapping YAML for them (docs/mapping.md)
max_plot_events = None  # events read per sample for the plots
n_validation = None  # electrons per energy (and protons) in the validation tables
n_knob = None  # events per class in the domain-knob scan
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
import numpy as np

from amsnb.notebook import start
from amsnb import io
from amsnb.ecal.reco import align_to_axis, lateral_profile
from amsnb.ecal import plots as eplot
from amsnb.ecal import validation
from amsnb.ecal.datasets import DataRequest, raw_samples
from amsnb.ecal.shower_browser import ShowerBrowser, first_event

p, wd = start("01", globals())  # the profile's values for every parameter left at None
request = DataRequest.from_parameters(p)  # what the ECAL sets are made from (the same in notebooks 01-05, 08)

# %% [markdown]
# ## 1. The samples
#
# `generate_table1` writes each set in chunks (resumable: complete files are kept). Energy ranges are ranges of
# *reconstructed* energy: protons deposit only part of theirs, so the protons of the 1–2 TeV sets come from primaries
# of several TeV, drawn by their visible fraction and weighted back to the physical flux (`weight`).

# %%
raw = raw_samples(wd, request)  # simulated here if missing, or your files
n_events = {name: sum(io.num_entries(f, mapping=request.mapping) for f in files) for name, files in raw.items()}
mc = io.read(raw["mc_high"], mapping=request.mapping, max_events=p.max_plot_events, nan_policy="drop")
iss = io.read(raw["iss_test"], mapping=request.mapping, max_events=p.max_plot_events, nan_policy="drop")
n_events

# %% [markdown]
# ## 2. Event displays
#
# Each layer measures one coordinate; the view alternates per superlayer (8 x-layers, 10 y-layers). An electron
# develops within ~1 R_M (~3 cells) from the first layers; a proton crosses as a MIP until its first inelastic
# interaction, then shows a broader, lumpier shower, often leaking out of the back.

# %%
i_e = first_event(mc, "electron", (1000, 2000))
i_p = first_event(mc, "proton", (1000, 2000))
fig = eplot.event_display(mc["ecal_edep"][i_e], f"MC electron, E = {mc['energy'][i_e]:.0f} GeV")
wd.save_figure("01", fig, "event_electron")
fig = eplot.event_display(mc["ecal_edep"][i_p], f"MC proton, E = {mc['energy'][i_p]:.0f} GeV "
                          f"(primary {mc['true_energy'][i_p]:.0f} GeV)")
wd.save_figure("01", fig, "event_proton")

# %% [markdown]
# ## 3. Mean showers and profiles
#
# Images aligned on the reconstructed shower axis, averaged per class (1–2 TeV); then the mean longitudinal and
# lateral profiles for both classes and both domains.

# %%
aligned = align_to_axis(mc["ecal_edep"], mc)
fig = eplot.mean_showers({"electron": aligned[mc["label"] == 1].mean(0), "proton": aligned[mc["label"] == 0].mean(0)})
wd.save_figure("01", fig, "mean_showers")

# %%
edges = eplot.cell_distance_edges(15.0)
keys = ["layer_frac", "ecal_edep", "entry_x", "entry_y", "dxdz", "dydz"]
groups = {**eplot.by_class(mc, "MC", keys), **eplot.by_class(iss, "ISS", keys)}
fig = eplot.profiles({name: g["layer_frac"].mean(0) for name, g in groups.items()},
                     {name: lateral_profile(g["ecal_edep"], g, edges) for name, g in groups.items()})
wd.save_figure("01", fig, "profiles")

# %% [markdown]
# ## 4. Reconstructed and shower-shape variables
#
# First electrons against protons (MC), then the ISS-like domain against the MC for each class, with ratio panels.
# These are the inputs of the BDT of notebook 03; the quality tails (tracker charge, χ², E/R, showers at the edge)
# are what notebook 02's cuts remove.

# %%
variables = ["energy", "e_over_r", "tracker_charge", "trd_llr", "track_chi2", "shower_max", "shower_alpha",
             "lateral_rms", "f_front", "f_rear", "f_core", "s1_s3", "s3_s5", "n_hit_cells"]
fig = eplot.variable_grid(eplot.by_class(mc, "MC", variables), variables, ratio=None)
wd.save_figure("01", fig, "variables_e_vs_p")

# %%
for cls in ("electron", "proton"):
    samples = {f"MC {cls}": eplot.by_class(mc, "MC", variables)[f"MC {cls}"],
               f"ISS {cls}": eplot.by_class(iss, "ISS", variables)[f"ISS {cls}"]}
    fig = eplot.variable_grid(samples, variables, ratio=(f"ISS {cls}", f"MC {cls}"))
    wd.save_figure("01", fig, f"variables_mc_vs_iss_{cls}")

# %% [markdown]
# ### What each domain knob does
#
# The ISS-like domain differs from the MC by documented physical knobs (`docs/simulation.md`). Here each knob alone
# is switched from its MC to its ISS value (same random numbers), and the shift of each variable's mean is shown in
# units of the MC standard deviation.

# %%
print(validation.format_table(validation.domain_table()))
effects = validation.knob_effects(n=p.n_knob, seed=p.seed)
fig = eplot.knob_effects(effects)
wd.save_figure("01", fig, "domain_knobs")

# %% [markdown]
# ## 5. Validation against the published figures
#
# Energy resolution vs the AMS σ/E = √(0.104²/E + 0.014²), depth of maximum vs the PDG ln(E/E_c) − 0.5 and the GFLASH
# sampling T (physics.md §1, §3), the radius holding 90 % of the energy (PDG: ~1 R_M), and the fraction of protons
# interacting in the 0.64 λ_I ECAL (1 − e^(−L/λ_I) ≈ 0.47).

# %%
resolution = validation.resolution_table(n=p.n_validation, seed=p.seed)
containment = validation.containment_table()
interaction = validation.interaction_table(n=p.n_validation, seed=p.seed)
print(validation.format_table(resolution))
print()
print(validation.format_table(containment))
print()
print(interaction)
fig = eplot.validation(resolution)
wd.save_figure("01", fig, "validation")

# %% [markdown]
# ## 6. Shower browser
#
# Step through events (buttons, or type `n` / `p` in the *keys* box), filter by class, domain and energy. The figure is
# an ipympl canvas: zoom and pan with its toolbar (the house button goes back). The stand-alone Voila app is
# `widgets/shower_browser.ipynb`.

# %%
browser = ShowerBrowser({k: np.concatenate([mc[k][:150], iss[k][:150]]) for k in mc})
browser

# %%
at_1tev = next(r for r in resolution if r["energy_gev"] == 1000.0)
at_50 = next(r for r in resolution if r["energy_gev"] == 50.0)
summary = validation.sample_summary(mc, iss)
wd.save_metrics("01", {
    "n_events": n_events,
    "resolution_1tev": at_1tev["resolution"],
    "resolution_50gev": at_50["resolution"],
    "shower_max_1tev": at_1tev["shower_max_x0"],
    "r90_over_rm_1tev": containment[-1]["r90_over_rm"],
    "proton_interacting": interaction["interacting"],
    "proton_interacting_expected": interaction["expected"],
    "validation": {"resolution": resolution, "containment": containment, "interaction": interaction},
    "knob_effects": effects,
    **summary,
})
summary
