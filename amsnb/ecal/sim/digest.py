"""The version of the simulated Table-1 files: a digest of exactly the code that determines their events.

A raw file is reused (:mod:`amsnb.provenance`) only if its stamp holds the same request (set, sizes, seed, chunk)
and the same :func:`generator_digest`. The digest therefore covers the source that decides which events a request
gives, no more and no less:

* :data:`DIGEST_FILES`, hashed as source text:

  - ``ecal/sim/physics.py``: the detector constants, the domains and the proton model, fluxes, GFLASH showers,
    readout, tracker and TRD;
  - ``ecal/sim/events.py``: :func:`~amsnb.ecal.sim.simulate` (the random stream of a seed, its blocks, the
    energies and weights, the schema arrays it fills, one BLAS thread for the reconstruction's rounding) and how a
    chunk's seed is derived;
  - ``ecal/sim/table1.py``: the Table-1 specs (domain, energy range, labeled) and the seeds, shuffling and
    truth-blanking of a set's chunks;
  - ``ecal/_kernels.py``: the numba kernels of the showers, the readout and the reconstruction;
  - ``ecal/reco.py``: the reconstructed branches written beside the cells (energy, shower maximum, shape
    variables); it imports from amsnb only ``_kernels`` (above), ``schema`` (below) and ``errors`` (messages).

* the part of :mod:`amsnb.schema` the written arrays depend on (:func:`_schema_text`): the ECAL geometry, the view
  of each layer, the domain codes and the ECAL branches' names, dtypes and shapes (each value is cast to its
  branch's dtype). Not the whole ``schema.py``: it also holds the nuclei and scores trees and every branch's
  documentation, which change no ECAL event.

Not covered, because they change how fast the events come or where they go, never which: the parallel engine
(``ecal/sim/engine.py``: worker pool, shared memory, allocator tuning, ROOT baskets, progress bars), the file
writing and provenance of :mod:`amsnb.ecal.sim.artefacts` (the sizes, seed and chunk it passes on are in each file's
request), this module, the CLI and ``amsnb/io.py`` (it writes the arrays as given). Library versions (NumPy's
random streams, numba) are not source and not part of the digest. Source text is hashed as is, so an edit of a
comment in a covered file also regenerates the samples (the conservative side). ``tests/test_sim_digest.py`` checks
both directions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

#: The ``amsnb`` package folder; :data:`DIGEST_FILES` are relative to it.
PACKAGE_DIR = Path(__file__).resolve().parents[2]

#: Source files whose text determines the events of a Table-1 file (relative to the ``amsnb`` package; why each:
#: the module docstring). The engine (``ecal/sim/engine.py``) is deliberately absent.
DIGEST_FILES = (
    "ecal/sim/physics.py",
    "ecal/sim/events.py",
    "ecal/sim/table1.py",
    "ecal/_kernels.py",
    "ecal/reco.py",
)

#: Name of the schema part of the digest (:func:`_schema_text`).
SCHEMA_PART = "amsnb.schema (ECAL)"


def _read_source(relpath: str) -> bytes:
    """The bytes of ``amsnb/<relpath>`` (the one place the digest reads a file)."""
    return (PACKAGE_DIR / relpath).read_bytes()


def _schema_text() -> str:
    """The values of :mod:`amsnb.schema` that the simulated arrays depend on, one per line."""
    from ... import schema

    lines = [f"N_LAYERS {schema.N_LAYERS}", f"N_CELLS {schema.N_CELLS}", f"CELL_PITCH_CM {schema.CELL_PITCH_CM!r}",
             f"LAYER_VIEW {schema.LAYER_VIEW}", f"DOMAIN_CODES {sorted(schema.DOMAIN_CODES.items())}",
             f"tree {schema.ECAL.tree}"]
    lines += [f"branch {b.name} {b.np_dtype.name} {tuple(b.shape)}" for b in schema.ECAL.branches]
    return "\n".join(lines) + "\n"


def digest_parts() -> list[tuple[str, bytes]]:
    """What :func:`generator_digest` hashes: (name, content) for each of :data:`DIGEST_FILES` and the schema."""
    parts = [(rel, _read_source(rel)) for rel in DIGEST_FILES]
    parts.append((SCHEMA_PART, _schema_text().encode()))
    return parts


def _digest_of(parts: Iterable[tuple[str, bytes]]) -> str:
    """16 hex digits of the SHA-1 of the (name, content) pairs, in order (each length-prefixed: no two different
    lists of parts give the same byte stream)."""
    h = hashlib.sha1()
    for name, content in parts:
        for field in (name.encode(), content):
            h.update(len(field).to_bytes(8, "little"))
            h.update(field)
    return h.hexdigest()[:16]


def generator_digest() -> str:
    """The code version of a simulated Table-1 file: a digest of the source that determines its events (module
    docstring: what is covered and why; not the parallel engine)."""
    return _digest_of(digest_parts())
