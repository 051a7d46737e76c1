"""Validation tables of the ECAL simulation against the published figures (physics.md §1, §3, §4), and the effect
of each MC-vs-ISS domain knob. Notebook 01 prints these tables and stores them in its metrics; the tests in
``tests/test_sim_ecal.py`` check the same physics with their own samples and tolerances.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np

from . import sim as ecal

#: Shower-shape variables whose MC-vs-ISS shifts are reported per knob.
KNOB_VARIABLES = ("energy", "shower_max", "lateral_rms", "f_core", "s1_s3", "f_rear", "n_hit_cells", "trd_llr")
_KNOBS = ("lateral_scale", "depth_shift_x0", "gain_spread", "n_dead_cells", "noise_mev", "response_spread",
          "trd_width", "trd_shift", "hadron_scale")


def _central(a, half=25.0):
    return (np.abs(a["truth_entry_x"]) < half) & (np.abs(a["truth_entry_y"]) < half)


def resolution_table(energies=(50.0, 200.0, 1000.0, 2000.0), n: int = 1000, seed: int = 1, domain: str = "mc"):
    """Electron energy resolution (central showers) vs the AMS sqrt(0.104^2/E + 0.014^2) (physics.md §1),
    and the depth of maximum vs the PDG t_max = ln(E/E_c) - 0.5 (physics.md §3). One row per energy."""
    rows = []
    for i, e in enumerate(energies):
        a = ecal.simulate(n, "electron", domain, seed=[seed, 100 + i], energy_range=(e, e * 1.0001), extras=True)
        c = _central(a)
        r = a["energy"][c] / a["true_energy"][c]
        res = float(r.std() / r.mean())
        rows.append({
            "energy_gev": e, "n": int(c.sum()), "mean_e_over_etrue": float(r.mean()),
            "resolution": res, "resolution_err": res / math.sqrt(2 * max(c.sum(), 1)),
            "resolution_published": math.sqrt(0.104**2 / e + 0.014**2),
            "shower_max_x0": float(a["shower_max"][c].mean()),
            "shower_max_pdg_x0": math.log(e / ecal.E_CRIT_GEV) - 0.5,
            "shower_max_gflash_x0": float(ecal.gflash_parameters(None, np.array([e]), fluctuate=False)[0][0]),
        })
    return rows


def containment_table(energies=(100.0, 1000.0)):
    """Radius (in R_M) holding 90 % of the energy in the simulation's radial model (PDG: ~1 R_M)."""
    rows = []
    for e in energies:
        radii = np.linspace(0.3, 3.0, 271) * ecal.MOLIERE_CM
        cont = np.array([ecal.radial_containment(e, r) for r in radii])
        r90 = float(np.interp(0.9, cont, radii))
        rows.append({"energy_gev": e, "r90_cm": r90, "r90_over_rm": r90 / ecal.MOLIERE_CM,
                     "containment_at_rm": float(ecal.radial_containment(e, ecal.MOLIERE_CM))})
    return rows


def interaction_table(n: int = 3000, seed: int = 1, domain: str = "mc"):
    """Fraction of protons interacting in the ECAL vs 1 - exp(-L sec(theta) / lambda_I) (physics.md §1, §4)."""
    a = ecal.simulate(n, "proton", domain, seed=[seed, 200], energy_range=(200.0, 2000.0), energy_mode="true",
                      extras=True)
    sec = np.sqrt(1 + a["truth_dxdz"] ** 2 + a["truth_dydz"] ** 2)
    expect = float(np.mean(1 - np.exp(-ecal.DEPTH_CM * sec / ecal.LAMBDA_I_CM)))
    got = float(a["truth_interacted"].mean())
    inter = a["truth_interacted"]
    return {"n": n, "interacting": got, "interacting_err": math.sqrt(got * (1 - got) / n), "expected": expect,
            "mip_like_of_interacting": float((a["energy_raw"][inter] < 1.0).mean()),
            "early_em_like": float(((a["truth_z_interaction"] < 3 * ecal.X0_CM) & (a["truth_f_em"] > 0.5)).mean())}


def knob_effects(n: int = 1500, seed: int = 1, energy_range=(1000.0, 2000.0), variables=KNOB_VARIABLES):
    """Shift of each variable's mean when one knob goes from its MC to its ISS value, in units of the MC standard
    deviation, for electrons and protons: which knob moves which variable (docs/simulation.md)."""
    mc, iss = ecal.DOMAINS["mc"], ecal.DOMAINS["iss"]
    out = {}
    for part in ("electron", "proton"):
        base = ecal.simulate(n, part, mc, seed=[seed, 300], energy_range=energy_range)
        table = {}
        knobs = [k for k in _KNOBS if getattr(mc, k) != getattr(iss, k)] + ["all"]
        for knob in knobs:
            dom = replace(iss, name="mc") if knob == "all" else replace(mc, **{knob: getattr(iss, knob)})
            alt = ecal.simulate(n, part, dom, seed=[seed, 300], energy_range=energy_range)
            table[knob] = {v: float((alt[v].mean() - base[v].mean()) / (base[v].std() + 1e-12)) for v in variables}
        out[part] = table
    return out


def domain_table() -> list[dict]:
    """The knobs of both domains side by side (values of :data:`amsnb.ecal.sim.DOMAINS`)."""
    mc, iss = ecal.DOMAINS["mc"], ecal.DOMAINS["iss"]
    return [{"knob": f.name, "mc": getattr(mc, f.name), "iss": getattr(iss, f.name)} for f in fields(mc)
            if f.name in _KNOBS]


def sample_summary(mc: dict[str, np.ndarray], iss: dict[str, np.ndarray], energy_range=(1000.0, 2000.0)) -> dict:
    """Key numbers of two labeled samples in a reconstructed-energy bin: flux-weighted p/e ratio, mean shower
    shapes per class, and the ISS - MC shift of the electron depth of maximum and lateral width."""
    out = {}
    means = {}
    for name, a in (("mc", mc), ("iss", iss)):
        inbin = (a["energy"] > energy_range[0]) & (a["energy"] < energy_range[1])
        e, p = inbin & (a["label"] == 1), inbin & (a["label"] == 0)
        out[f"{name}_n_electrons_in_bin"] = int(e.sum())
        out[f"{name}_n_protons_in_bin"] = int(p.sum())
        if e.any() and p.any():
            out[f"{name}_weighted_p_over_e"] = float(a["weight"][p].sum() / a["weight"][e].sum())
        for cls, sel in (("e", e), ("p", p)):
            for var in ("shower_max", "lateral_rms", "f_core", "e_over_r"):
                means[(name, cls, var)] = float(a[var][sel].mean()) if sel.any() else float("nan")
                out[f"{name}_{cls}_{var}_mean"] = means[(name, cls, var)]
    for var in ("shower_max", "lateral_rms"):
        out[f"iss_minus_mc_e_{var}"] = means[("iss", "e", var)] - means[("mc", "e", var)]
    return out


def format_table(rows: list[dict], digits: int = 4) -> str:
    """A plain-text table of a list of dicts (the notebook prints the validation tables with it)."""
    if not rows:
        return "(empty)"
    keys = list(rows[0])
    cells = [[f"{r[k]:.{digits}g}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
