"""The Table-1 preset of seed 000: the raw samples (domain, reconstructed-energy range, labeled or not, sizes at
scale 1) and how a sample's chunks are cut, seeded and merged. The specs and the chunk seeding determine the events
of a Table-1 file, so this file is part of :data:`amsnb.ecal.sim.digest.DIGEST_FILES`; writing the files
(:func:`amsnb.ecal.sim.artefacts.write_set`, :func:`~amsnb.ecal.sim.artefacts.generate_table1`) is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .events import simulate


@dataclass(frozen=True)
class SetSpec:
    """One raw Table-1 sample (seed 000): events per class at scale 1, domain, reconstructed-energy range."""

    name: str
    domain: str
    n_electron: float
    n_proton: float
    energy_range: tuple[float, float]
    labeled: bool = True
    iss_sized: bool = False


#: Seed 000 Table 1, generated ~5-10 % wider than the final ranges (the cuts of notebook 02 select). The labeled
#: ISS-like sets are sized by ``iss_scale`` (1e6 protons and 1e5 electrons at iss_scale = 1) instead of the seed's
#: ~800 p / ~10 e, so rejections of 1e3-1e4 can be measured; the unlabeled target has 20 % electrons by count and,
#: like flight data, no truth (label/pdg -1, true_energy 0) and unit weights.
TABLE1 = (
    SetSpec("mc_low", "mc", 3.5e6, 2.0e6, (180.0, 1100.0)),
    SetSpec("mc_high", "mc", 1.2e6, 2.6e6, (900.0, 2200.0)),
    SetSpec("iss_val", "iss", 1e5, 1e6, (900.0, 2200.0), iss_sized=True),
    SetSpec("iss_test", "iss", 1e5, 1e6, (900.0, 2200.0), iss_sized=True),
    SetSpec("iss_target", "iss", 0.4e5, 1.6e5, (180.0, 2200.0), labeled=False),
)
#: The MC test set as a raw sample of its own (1-2 TeV like mc_high, a new seed stream), made when ``test_protons``
#: is given; otherwise notebook 02 splits mc_test off mc_high (amsnb.ecal.datasets).
TEST_SAMPLE = SetSpec("mc_test", "mc", 0, 0, (900.0, 2200.0))


def set_chunks(spec: SetSpec, n_e: int, n_p: int, seed: int, set_index: int, chunk: int) -> list[tuple]:
    """The chunk tasks of one set (arguments of :func:`set_chunk`): ``ceil((n_e + n_p) / chunk)`` chunks, each
    with its share of both classes; chunk ``k`` is seeded by ``(seed, set_index, k)``."""
    n_chunks = max(1, math.ceil((n_e + n_p) / chunk))
    return [(spec, n_e, n_p, seed, set_index, k, n_chunks) for k in range(n_chunks)]


def _shares(n_e: int, n_p: int, k: int, n_chunks: int) -> tuple[int, int]:
    """Electrons and protons of chunk ``k`` of ``n_chunks``."""
    return n_e * (k + 1) // n_chunks - n_e * k // n_chunks, n_p * (k + 1) // n_chunks - n_p * k // n_chunks


def set_chunk_events(task: tuple) -> int:
    """Events :func:`set_chunk` returns for ``task`` (one of :func:`set_chunks`)."""
    _, n_e, n_p, _, _, k, n_chunks = task
    return sum(_shares(n_e, n_p, k, n_chunks))


def _shuffle_merge(a: dict, b: dict, rng) -> dict:
    out = {k: np.concatenate([a[k], b[k]]) for k in a}
    perm = rng.permutation(len(out["event"]))
    return {k: v[perm] for k, v in out.items()}


def set_chunk(spec: SetSpec, n_e: int, n_p: int, seed: int, set_index: int, k: int, n_chunks: int) -> dict:
    """Chunk ``k`` of a set: its electrons (seed (seed, set, k, 0)) and protons (seed (seed, set, k, 1)) shuffled
    together (seed (seed, set, k, 2)); an unlabeled set loses its truth and weights."""
    ke, kp = _shares(n_e, n_p, k, n_chunks)
    first = n_e * k // n_chunks + n_p * k // n_chunks
    common = dict(domain=spec.domain, energy_range=spec.energy_range, run=seed * 10 + set_index)
    e = simulate(ke, "electron", seed=[seed, set_index, k, 0], weight_norm=max(n_e, 1), first_event=first, **common)
    p = simulate(kp, "proton", seed=[seed, set_index, k, 1], weight_norm=max(n_p, 1), first_event=first + ke,
                 **common)
    arr = _shuffle_merge(e, p, np.random.default_rng([seed, set_index, k, 2]))
    if not spec.labeled:  # like flight data: no truth, and no flux weight (it would reveal the class)
        arr["label"][:] = -1
        arr["pdg"][:] = -1
        arr["true_energy"][:] = 0
        arr["weight"][:] = 1
    return arr
