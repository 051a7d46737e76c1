"""The amsnb event schema: the ROOT TTree layout every amsnb tool reads and writes.

One table per event type. Each entry says the branch name, the numpy dtype, the fixed per-event
shape (``()`` for a scalar), the unit and what it means. The simulation writes exactly this; a user's
ntuple is mapped onto it with a YAML branch mapping (:mod:`amsnb.mapping`). ``docs/schema.md`` is
generated from these tables (``python -m amsnb.schema > docs/schema.md``), so code and documentation
cannot drift apart.

ECAL geometry conventions (``docs/physics.md`` §1): 18 readout layers, index 0 at the top (the
particle enters at layer 0), 72 cells of 0.9 cm per layer, cell 0 at the -x (or -y) edge. The view
alternates per *superlayer* (two readout layers each): superlayers 0, 2, 4, 6, 8 (layers 0-1, 4-5,
8-9, 12-13, 16-17) have fibres along x and measure **y**; superlayers 1, 3, 5, 7 (layers 2-3, 6-7,
10-11, 14-15) measure **x**.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_LAYERS = 18
N_CELLS = 72
CELL_PITCH_CM = 0.9
#: Per readout layer: the coordinate it measures ("y" for even superlayers, "x" for odd ones).
LAYER_VIEW = tuple("y" if (layer // 2) % 2 == 0 else "x" for layer in range(N_LAYERS))
X_LAYERS = tuple(i for i, v in enumerate(LAYER_VIEW) if v == "x")
Y_LAYERS = tuple(i for i, v in enumerate(LAYER_VIEW) if v == "y")

N_TRACKER_LAYERS = 9  # L1 (top) .. L9 (bottom); L2-L8 form the inner tracker
N_TRACKS = 2  # main track, second track

#: Codes of the ``domain`` branch (ROOT TTrees written by uproot hold numbers, not strings).
DOMAIN_CODES = {"mc": 0, "iss": 1, "data": 1}
DOMAIN_NAMES = {0: "mc", 1: "iss"}
LABEL_ELECTRON, LABEL_PROTON, LABEL_UNKNOWN = 1, 0, -1


@dataclass(frozen=True)
class Branch:
    name: str
    dtype: str
    shape: tuple[int, ...]
    unit: str
    doc: str
    required: bool = True  # False: optional (MC truth, extras); missing ones are filled with defaults

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


@dataclass(frozen=True)
class TreeSchema:
    tree: str
    branches: tuple[Branch, ...]
    doc: str

    def __getitem__(self, name: str) -> Branch:
        for b in self.branches:
            if b.name == name:
                return b
        raise KeyError(f"'{name}' is not a branch of the '{self.tree}' schema; branches: {', '.join(self.names)}")

    def __contains__(self, name: str) -> bool:
        return any(b.name == name for b in self.branches)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.branches]

    @property
    def required(self) -> list[str]:
        return [b.name for b in self.branches if b.required]

    def empty(self, n: int) -> dict[str, np.ndarray]:
        """Arrays of ``n`` events filled with each branch's default (0, or -1 for truth labels)."""
        out = {}
        for b in self.branches:
            fill = -1 if b.name in _MINUS_ONE_DEFAULTS else 0
            out[b.name] = np.full((n, *b.shape), fill, dtype=b.np_dtype)
        return out


_MINUS_ONE_DEFAULTS = {"label", "pdg", "z_primary", "z_l1", "z_inner", "frag_layer"}

_B = Branch
ECAL = TreeSchema(
    tree="ecal",
    doc="One row per event crossing the ECAL: cell energies, reconstructed variables, MC truth.",
    branches=(
        _B("run", "int32", (), "", "run number (simulation: the generator seed)"),
        _B("event", "int64", (), "", "event number, unique within a run"),
        _B("ecal_edep", "float32", (N_LAYERS, N_CELLS), "MeV",
           "cell energies, layer-major [layer][cell]; layer 0 on top; view of each layer in LAYER_VIEW"),
        _B("energy", "float32", (), "GeV", "reconstructed ECAL energy, electron hypothesis, leakage-corrected"),
        _B("energy_raw", "float32", (), "GeV", "sum of cell energies before corrections", required=False),
        _B("rigidity", "float32", (), "GV", "tracker rigidity, signed (charge sign x momentum / |Z|)"),
        _B("e_over_r", "float32", (), "", "energy / |rigidity|"),
        _B("tracker_charge", "float32", (), "e", "inner-tracker charge estimate"),
        _B("trd_llr", "float32", (), "", "TRD likelihood ratio -ln(L_e/(L_e+L_p)); electrons low, protons high"),
        _B("track_chi2", "float32", (), "", "track fit chi2 per degree of freedom"),
        _B("entry_x", "float32", (), "cm", "shower axis at the ECAL front face, x"),
        _B("entry_y", "float32", (), "cm", "shower axis at the ECAL front face, y"),
        _B("dxdz", "float32", (), "", "shower-axis slope dx/dz (0 = vertical)"),
        _B("dydz", "float32", (), "", "shower-axis slope dy/dz"),
        _B("shower_max", "float32", (), "X0", "depth of the shower maximum from a Gamma fit of the layer profile"),
        _B("shower_alpha", "float32", (), "", "shape parameter a of the longitudinal Gamma fit"),
        _B("lateral_rms", "float32", (), "cm", "energy-weighted lateral RMS about the axis, all layers"),
        _B("layer_frac", "float32", (N_LAYERS,), "", "fraction of the deposited energy in each layer"),
        _B("layer_rms", "float32", (N_LAYERS,), "cm", "energy-weighted lateral RMS per layer"),
        _B("f_front", "float32", (), "", "energy fraction in the first 2 layers"),
        _B("f_rear", "float32", (), "", "energy fraction in the last 2 layers (rear leakage indicator)"),
        _B("f_core", "float32", (), "", "energy fraction within +-1 cell (~1 R_M) of the axis"),
        _B("s1_s3", "float32", (), "", "per-layer ratio max cell / 3 cells around it, energy-weighted mean"),
        _B("s3_s5", "float32", (), "", "per-layer ratio 3 cells / 5 cells around the max, energy-weighted mean"),
        _B("n_hit_cells", "int32", (), "", "cells above the readout threshold"),
        _B("n_saturated", "int32", (), "", "cells at the ADC saturation limit", required=False),
        _B("label", "int8", (), "", "MC truth: 1 electron/positron, 0 proton, -1 unknown (flight data)",
           required=False),
        _B("true_energy", "float32", (), "GeV", "MC truth: primary kinetic energy (0 where unknown)", required=False),
        _B("pdg", "int32", (), "", "MC truth: PDG id of the primary (11, -11, 2212; -1 unknown)", required=False),
        _B("domain", "int8", (), "", "0 = mc, 1 = iss (flight or ISS-like simulation)", required=False),
        _B("weight", "float32", (), "", "flux weight to the physical composition (1 if none)", required=False),
    ),
)

NUCLEI = TreeSchema(
    tree="nuclei",
    doc=("One row per nucleus crossing the tracker. Track arrays are [track][layer] with track 0 the main, "
         "1 the second track; layer 0 = L1 ... 8 = L9. Missing hits have hit = 0 and position/charge 0."),
    branches=(
        _B("run", "int32", (), "", "run number"),
        _B("event", "int64", (), "", "event number, unique within a run"),
        _B("trk_hit", "uint8", (N_TRACKS, N_TRACKER_LAYERS), "",
           "hit pattern per track and layer: bit 0 x side present, bit 1 y side present"),
        _B("trk_x", "float32", (N_TRACKS, N_TRACKER_LAYERS), "cm", "hit x position"),
        _B("trk_y", "float32", (N_TRACKS, N_TRACKER_LAYERS), "cm", "hit y position"),
        _B("trk_q", "float32", (N_TRACKS, N_TRACKER_LAYERS), "e", "layer charge estimate (both sides combined)"),
        _B("n_clusters", "int16", (N_TRACKER_LAYERS, 2), "", "clusters per layer and side [layer][x=0,y=1]"),
        _B("q_inner", "float32", (), "e", "inner-tracker (L2-L8) charge of the main track, truncated mean"),
        _B("q_l1", "float32", (), "e", "L1 charge of the main track (0 if no L1 hit)"),
        _B("rig_inner", "float32", (), "GV", "rigidity from the inner tracker"),
        _B("rig_inl1", "float32", (), "GV", "rigidity from inner tracker + L1"),
        _B("tof_beta", "float32", (), "", "TOF velocity"),
        _B("tof_q_upper", "float32", (), "e", "upper-TOF charge"),
        _B("tof_q_l1", "float32", (), "e", "charge on TOF plane 1"),
        _B("tof_q_l2", "float32", (), "e", "charge on TOF plane 2"),
        _B("tof_nclus_l1", "int16", (), "", "on-time TOF clusters on plane 1"),
        _B("tof_nclus_l2", "int16", (), "", "on-time TOF clusters on plane 2"),
        _B("tof_nclus_total", "int16", (), "", "TOF clusters used for the charge estimate"),
        _B("z_primary", "int16", (), "", "MC truth: primary charge Z (-1 unknown)", required=False),
        _B("z_l1", "int16", (), "", "MC truth: charge of the particle crossing L1 (-1 unknown)", required=False),
        _B("z_inner", "int16", (), "", "MC truth: charge of the leading particle in the inner tracker", required=False),
        _B("survived_l1", "uint8", (), "", "MC truth: 1 if the primary reached L1 intact", required=False),
        _B("frag_layer", "int8", (), "",
           "MC truth: -1 no fragmentation in the tracker; k: fragmented after layer k (0 = between L1 and L2)",
           required=False),
        _B("domain", "int8", (), "", "0 = mc, 1 = data", required=False),
        _B("weight", "float32", (), "", "abundance / spectrum weight", required=False),
    ),
)

SCORES = TreeSchema(
    tree="scores",
    doc="Classifier output, one file per model and evaluation set (the common score format).",
    branches=(
        _B("run", "int32", (), "", "run number of the scored event"),
        _B("event", "int64", (), "", "event number of the scored event"),
        _B("label", "int8", (), "", "truth label (1 signal/electron, 0 background/proton, -1 unknown)"),
        _B("energy", "float32", (), "GeV", "reconstructed energy (or rigidity for nuclei) for binning"),
        _B("weight", "float32", (), "", "event weight"),
        _B("score", "float32", (), "", "classifier output; larger = more signal-like"),
    ),
)

SCHEMAS = {s.tree: s for s in (ECAL, NUCLEI, SCORES)}


def markdown() -> str:
    """The schema tables as Markdown (docs/schema.md is this text)."""
    lines = ["# amsnb ROOT event schema", "", "Generated by `python -m amsnb.schema`; do not edit by hand.", ""]
    lines += [__doc__.split("\n\n", 1)[1].strip(), ""]
    lines += ["Layer views: " + ", ".join(f"{i}:{v}" for i, v in enumerate(LAYER_VIEW)), ""]
    for s in SCHEMAS.values():
        lines += [f"## Tree `{s.tree}`", "", s.doc, "", "| branch | type | shape | unit | required | meaning |",
                  "|---|---|---|---|---|---|"]
        for b in s.branches:
            shape = "x".join(map(str, b.shape)) if b.shape else "scalar"
            lines.append(f"| `{b.name}` | {b.dtype} | {shape} | {b.unit} | {'yes' if b.required else 'no'} | {b.doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
