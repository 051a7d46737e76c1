"""Heavy-nuclei analysis of seed 004 (Si/P/S selections, MDA inputs, the below-L1 background study).

Why: the MDA network (:mod:`amsnb.nuclei.model`) separates a selected species (signal) from nuclei of neighbouring
charge passing the same selection (background), chiefly Z+1 nuclei fragmenting between L1 and L2. Submodules:
``selections`` (charge windows, composition, global MC, efficiencies of a score cut), ``graph`` (network inputs,
hit graph, dataset), ``samples`` (the run folder's samples, data calibration, MC tune: shared by notebooks 06 and
07), ``training`` (training sets, the MDA's training and scores), ``mda_study`` (notebook 06: one MDA per selection,
domain checks, ablation), ``below_l1`` (notebook 07: ML cut, template fits, scans), ``fits``, ``plots``.
"""

from .graph import (
                    BRANCHES,
                    N_LAYERS_USED,
                    NODE_FEATURES,
                    RIG_FEATURES,
                    TOF_FEATURES,
                    NucleiDataset,
                    build_graph,
                    collate,
                    event_inputs,
                    model_inputs,
)
from .selections import (
                    SELECTIONS,
                    TRAINING_COMPOSITION,
                    CutEfficiency,
                    Selection,
                    category,
                    concat,
                    cut_efficiency,
                    efficiency_vs_rigidity,
                    labels,
                    physical_subsample,
                    pooled_set,
                    select_mask,
                    selection,
                    take,
                    training_set,
                    unique_counts,
)

__all__ = ["BRANCHES", "N_LAYERS_USED", "NODE_FEATURES", "RIG_FEATURES", "TOF_FEATURES", "NucleiDataset",
           "build_graph", "collate", "event_inputs", "model_inputs", "SELECTIONS", "TRAINING_COMPOSITION",
           "CutEfficiency", "Selection", "category", "concat", "cut_efficiency", "efficiency_vs_rigidity", "labels",
           "physical_subsample", "pooled_set", "select_mask", "selection", "take", "training_set", "unique_counts"]
