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
# # 02 · Cut studies: the quality selection of seed 000, at any scale
#
# Seed 000 trains and tests on "good reconstructed" events: unit charge, a good track, a shower inside the ECAL, E/R
# compatible with an electromagnetic shower, a loose TRD requirement, and the energy window of each Table-1 set. Here
# that selection is a **cut set**, a YAML file (`amsnb/cuts/default.yaml`, `docs/cuts.md`) rather than code, and this
# notebook
#
# 1. shows the cut flows (events and efficiency after each cut, electrons and protons, MC and ISS-like, unweighted
#    and weighted, with 68 % Clopper-Pearson intervals);
# 2. draws the N-1 distribution of every cut with its window and the ISS/MC ratio;
# 3. opens the cut explorer (move a cut, watch the flow and the N-1 plot follow);
# 4. runs the same cut flow on a dask cluster (`uproot.dask` + dask-awkward; local 2-worker cluster or
#    `dask_scheduler`) and checks it equals the in-memory result exactly;
# 5. writes the selected sets `mc_low, mc_high, mc_test, iss_val, iss_test, iss_target` and `sets/manifest.json`.
#
# **Inputs**: the raw samples of notebook 01 in `data/ecal/` (made here if missing), or your files (`input_files` +
# `mapping`). **Outputs**: `sets/*.root`, `sets/manifest.json`, `02_cut_studies/figures/*.png`,
# `02_cut_studies/metrics.json`.

# %% tags=["parameters"]
profile = "default"  # smoke | binder | default | full: each parameter at None takes its value (amsnb/profiles.yaml)
workdir = None  # None: runs/<profile> of the checkout (where `amsnb run` and `make demo` write)
seed = None
ecal_scale = None  # fraction of seed 000's Table 1 MC sizes
iss_scale = None  # ISS-like labeled sets: iss_scale * 1e6 protons, * 1e5 electrons
test_protons = None  # raw protons of each test set (mc_test of its own, iss_test); 0: mc_test is split off mc_high
target_events = None  # raw events of the unlabeled DANN target iss_target (0: Table 1 at ecal_scale)
cuts = None  # a shipped cut set name or a YAML path
input_files = None  # your ROOT files (comma-separated or glob) instead of the simulation
mapping = None  # branch-mapping YAML for them (docs/mapping.md)
use_dask = None  # also run the cut flow on a dask cluster and compare
dask_scheduler = None  # empty: a local cluster (2 worker processes, 1 thread each); else tcp://host:8786
dask_step_size = None  # partition size of uproot.dask
fresh = None  # True: recompute every artefact of the run folder made before this run

# %%
import time

from amsnb.notebook import start
from amsnb import cuts as cutlib
from amsnb import io
from amsnb.ecal import datasets
from amsnb.cuts import scaleout
from amsnb.plotting import cuts as cplot
from amsnb.ecal.cut_explorer import CutExplorer

p, wd = start("02", globals())  # the profile's values for every parameter left at None
request = datasets.DataRequest.from_parameters(p)  # what the ECAL sets are made from (the same in 01-05, 08)
cutset = request.cutset()
print(cutset.text("mc_high"))

# %% [markdown]
# ## 1. Selecting the Table-1 sets
#
# `ensure_ecal_sets` reads the raw samples chunk by chunk, applies the cuts with each set's energy window, splits the
# selected `mc_high` into `mc_high` and `mc_test` by a hash of (run, event), and records everything in the manifest.
# It is idempotent: a second run with the same request reuses the files.

# %%
t0 = time.perf_counter()
sets = datasets.ensure_ecal_sets(wd, request)
select_seconds = time.perf_counter() - t0
manifest = datasets.load_manifest(wd)
flows = datasets.cut_flows(wd)
{name: {k: info[k] for k in ("events", "electrons", "protons", "unlabeled")} for name, info in manifest["sets"].items()}

# %% [markdown]
# ## 2. Cut flows
#
# Cumulative efficiency after each cut with its 68 % interval; weighted flows use the flux weights (effective counts
# for the interval). The E/R cut is where electrons and protons part: protons deposit only part of their energy.
# Flight files without truth are labeled by the mapping's `tag` (docs/mapping.md): its share of the flight events per
# class and a purity estimate (the same selection with the rigidity sign flipped) follow the flows.

# %%
mc_name = "mc_high" if "mc_high" in flows else next(iter(flows))
iss_name = "iss_test" if "iss_test" in flows else mc_name
print(flows[mc_name].text())
print()
print(flows[iss_name].text())
print()
print(flows[iss_name].text(weighted=True))
if manifest.get("skipped"):  # a set notebook 02 could not make, and why (e.g. no unlabeled event for iss_target)
    print("\n" + "\n".join(f"NOT MADE: {why}" for why in manifest["skipped"].values()))
if manifest.get("tag"):  # flight labels from the mapping's tag: its efficiency and purity estimate
    print("\n" + datasets.tag_report(wd))

# %%
fig = cplot.cut_flow({f"MC {mc_name}": flows[mc_name], f"ISS {iss_name}": flows[iss_name]},
                     title="Cut flow, 1-2 TeV sets")
wd.save_figure("02", fig, "cut_flow")
fig = cplot.cut_flow({name: flow for name, flow in flows.items()}, weighted=True, title="Weighted cut flow, all sets")
wd.save_figure("02", fig, "cut_flow_weighted")

# %% [markdown]
# ## 3. N-1 distributions
#
# Each cut's variable after all the *other* cuts, electrons and protons, MC (lines) and ISS-like (points), with the
# cut window (dashed) and the ISS/MC shape ratio. A cut sitting on a steep slope or where MC and ISS differ is one
# whose efficiency the domain shift changes.

# %%
sources = datasets.source_files(wd)
branches = cutset.branches() + ["label", "weight"]
raw_mc = io.read(sources[mc_name], branches=branches, mapping=request.mapping, nan_policy="drop")
raw_iss = io.read(sources[iss_name], branches=branches, mapping=request.mapping, nan_policy="drop")
nm1_mc = cutlib.n_minus_one(raw_mc, cutset, mc_name)
nm1_iss = cutlib.n_minus_one(raw_iss, cutset, iss_name)
fig = cplot.n_minus_one(nm1_mc, nm1_iss)
wd.save_figure("02", fig, "n_minus_one")
{name: round(d.efficiency("electron"), 4) for name, d in nm1_mc.items()}

# %% [markdown]
# ## 4. Cut explorer
#
# Pick a cut, move its bounds: the cut flow table and the N-1 plot follow (MC `mc_high` raw events). The sliders
# cannot cross (a minimum above the maximum is refused).

# %%
explorer = CutExplorer(raw_mc, cutset, set_name=mc_name, cut="e_over_r")
explorer

# %% [markdown]
# ## 5. The same cut flow on a dask cluster
#
# The raw files are cut into entry ranges of about `dask_step_size`; each worker reads its range with the in-memory
# reader (same mapping: expressions, sparse hits, derived variables) and counts it with the same cut flow code. The
# counts must equal the in-memory ones exactly.

# %%
dask_equal, dask_seconds = None, None
if p.use_dask:
    t0 = time.perf_counter()
    flows_dask = scaleout.cut_flows_dask(sources, cutset, mapping=request.mapping, scheduler=p.dask_scheduler,
                                         step_size=p.dask_step_size, event_filters=datasets.event_filters(wd))
    dask_seconds = time.perf_counter() - t0
    dask_equal = all(flows_dask[name].same_as(flows[name]) for name in flows)
    print(f"dask: {sum(int(f.counts[c][0]) for f in flows_dask.values() for c in f.counts)} events in "
          f"{dask_seconds:.1f} s (cluster start included); identical to in-memory: {dask_equal}")

# %%
summary = {name: {"electron_eff": float(flow.efficiency("electron")[0][-1]) if "electron" in flow.classes else None,
                  "proton_eff": float(flow.efficiency("proton")[0][-1]) if "proton" in flow.classes else None}
           for name, flow in flows.items()}
step = {c: float(flows[mc_name].efficiency(c, cumulative=False)[0][flows[mc_name].steps.index("e_over_r")])
        for c in ("electron", "proton")} if "e_over_r" in cutset.names else {}
wd.save_metrics("02", {
    "cuts": cutset.name,
    "cuts_digest": cutset.digest(),
    "n_selected": {name: info["events"] for name, info in manifest["sets"].items()},
    "selection_efficiency": summary,
    "mc_high_electron_eff": summary[mc_name]["electron_eff"],
    "mc_high_proton_eff": summary[mc_name]["proton_eff"],
    "iss_test_electron_eff": summary[iss_name]["electron_eff"],
    "iss_test_proton_eff": summary[iss_name]["proton_eff"],
    "e_over_r_step_eff": step,
    "n_minus_one_electron_eff": {name: d.efficiency("electron") for name, d in nm1_mc.items()},
    "dask_equal": dask_equal,
    "dask_seconds": dask_seconds,
    "select_seconds": select_seconds,
    "skipped_sets": manifest.get("skipped", {}),
    "tag": manifest.get("tag", {}),
})
summary
