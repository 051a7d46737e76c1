"""The Table-1 files as artefacts of a run folder: their sizes at a scale (:func:`table1_sizes`), one set written
to ROOT (:func:`write_set`) and the five (or six) sets made or reused through :mod:`amsnb.provenance`
(:func:`generate_table1`). What a set holds and how its chunks are seeded is :mod:`amsnb.ecal.sim.table1`'s; the
sizes, seed and chunk chosen here are part of each file's request, so this file is not part of
:data:`amsnb.ecal.sim.digest.DIGEST_FILES`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ...errors import ConfigError
from .digest import generator_digest
from .engine import chunks_to_root
from .physics import DOMAINS
from .table1 import TABLE1, TEST_SAMPLE, SetSpec, set_chunk, set_chunk_events, set_chunks

#: Electrons per proton in the enlarged test samples: protons set the rejection's statistics; 1 electron in 10 still
#: fixes the 90 % threshold to a few per mille.
TEST_ELECTRON_FRACTION = 0.1


def table1_sizes(scale: float, iss_scale: float, test_protons: int | None = None,
                 target_events: int | None = None) -> dict[str, tuple[int, int]]:
    """Events (electrons, protons) per raw sample for the given scale factors; with ``test_protons`` the test
    samples ``mc_test`` (its own) and ``iss_test`` hold that many protons and a tenth as many electrons, so the
    1-2 TeV rejections of the best classifiers are measured from passing protons rather than bounded.
    ``target_events``: the unlabeled ``iss_target`` holds that many raw events (Table 1's electron share), e.g. the
    seed's 2e5 at any ``scale``: the DANN target costs simulation only, and a small one is cycled many times per
    epoch."""
    sizes = {}
    for s in TABLE1:
        f = iss_scale if s.iss_sized else scale
        sizes[s.name] = (max(1, round(s.n_electron * f)), max(1, round(s.n_proton * f)))
    if test_protons:
        n = (max(1, round(test_protons * TEST_ELECTRON_FRACTION)), int(test_protons))
        sizes["iss_test"] = n
        sizes[TEST_SAMPLE.name] = n
    if target_events:
        spec = next(s for s in TABLE1 if s.name == "iss_target")
        n_e = round(int(target_events) * spec.n_electron / (spec.n_electron + spec.n_proton))
        sizes["iss_target"] = (max(1, n_e), max(1, int(target_events) - n_e))
    return sizes


def write_set(path: str | Path, spec: SetSpec, n_e: int, n_p: int, seed: int, set_index: int,
              chunk: int = 20_000, progress: bool = True, workers: int | None = 1) -> Path:
    """Write one set: electrons and protons interleaved chunk by chunk (each chunk seeded by (seed, set, k),
    :func:`amsnb.ecal.sim.table1.set_chunks`), the chunks simulated by ``workers`` processes (the file is the same
    whatever their number)."""
    tasks = set_chunks(spec, n_e, n_p, seed, set_index, chunk)
    return chunks_to_root(Path(path), set_chunk, tasks, [set_chunk_events(t) for t in tasks], progress, workers)


def generate_table1(outdir: str | Path, scale: float = 1.0, seed: int = 1, iss_scale: float = 1.0,
                    progress: bool = True, chunk: int = 20_000, fresh: bool = False,
                    workers: int | None = None, test_protons: int | None = None,
                    target_events: int | None = None) -> dict[str, Path]:
    """The five raw samples of seed 000 Table 1 as ROOT files in ``outdir`` (``<set>.root``); resumable per set.

    ``test_protons``: also a raw ``mc_test`` sample, and ``iss_test`` resized, with that many protons each;
    ``target_events``: the raw size of ``iss_target`` (:func:`table1_sizes`).

    Each file is an artefact of :mod:`amsnb.provenance`: reused only if the same generator code made it with the
    same sizes, seed and chunking; an interrupted or different one is simulated again (one line says why).
    ``workers`` processes simulate the chunks (``None``/0: one per core); the files do not depend on it.
    A ``table1.json`` beside them describes the sizes, seed and domains.
    """
    import json

    from ... import provenance

    if scale <= 0 or iss_scale <= 0:
        raise ConfigError(f"scale={scale}, iss_scale={iss_scale}: both must be > 0 (1.0 = the seed's Table 1)")
    outdir = Path(outdir)
    if test_protons is not None and test_protons <= 0:
        raise ConfigError(f"test_protons={test_protons}: give a positive number of protons, or None to split "
                          "mc_test off mc_high")
    if target_events is not None and target_events <= 0:
        raise ConfigError(f"target_events={target_events}: give a positive number of raw iss_target events, or "
                          "None for Table 1's size at this scale")
    sizes = table1_sizes(scale, iss_scale, test_protons, target_events)
    specs = TABLE1 + ((TEST_SAMPLE,) if test_protons else ())
    out = {}
    for i, spec in enumerate(specs):
        path = outdir / f"{spec.name}.root"
        n_e, n_p = sizes[spec.name]
        stamp = provenance.Stamp("amsnb.ecal.sim.table1", generator_digest(),
                                 {"set": spec.name, "seed": seed, "set_index": i, "electrons": n_e, "protons": n_p,
                                  "chunk": chunk})
        provenance.ensure(path, stamp, lambda p, spec=spec, n_e=n_e, n_p=n_p, i=i:
                          write_set(p, spec, n_e, n_p, seed, i, chunk, progress, workers),
                          fresh=fresh, label=f"data/ecal/{path.name}", verb="simulating")
        out[spec.name] = path
    meta = {"seed": seed, "scale": scale, "iss_scale": iss_scale, "test_protons": test_protons,
            "target_events": target_events,
            "sets": {s.name: {"electrons": sizes[s.name][0], "protons": sizes[s.name][1], "domain": s.domain,
                              "energy_range_gev": list(s.energy_range), "labeled": s.labeled} for s in specs},
            "domains": {k: {kk: vv for kk, vv in asdict(v).items() if kk != "proton"} for k, v in DOMAINS.items()}}
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "table1.json").write_text(json.dumps(meta, indent=2))
    return out
