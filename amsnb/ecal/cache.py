"""Training cache: a set's ROOT file converted once to memory-mapped ``.npy`` arrays, reused across epochs and runs.

Re-reading ROOT every epoch would starve the model (``benchmarks/bench_io.py`` measures both: "ROOT read amsnb.io"
against "npy read (memory-mapped)" of the same 18x72 images). A cache folder ``<cache_dir>/<set>/`` holds
``images.npy`` (N, 1, 18, 72) in MeV (float32; or, to halve disk and page cache, ``log16``: float16 of ln(1 + MeV),
3 significant digits of the logarithm, a relative error <= 0.4 % per cell (below the 1 % stochastic term of a
100 GeV cell) over the whole range up to the ~169 GeV ADC saturation, decoded to float32 MeV on read; or plain
``float16``, exact to 0.05 % but only up to 65504 MeV: cells above are clipped there, which happens in ~90 % of
1-2 TeV electrons, so use it below ~500 GeV only), ``label``, ``weight``, ``domain``, ``energy``, ``run``,
``event`` and a ``meta.json`` that ties it to
the source file; the folder's provenance stamp (:mod:`amsnb.provenance`) decides reuse: a changed ROOT file rebuilds
the cache, an unchanged one is reused.
Conversion is chunked (bounded memory), shows a progress bar and writes ``.part`` files renamed at the end, so an
interrupted conversion is redone rather than half-used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputFileError
from ..schema import ECAL, N_CELLS, N_LAYERS

COLUMNS = ("label", "weight", "domain", "energy", "run", "event")
FORMAT_VERSION = 2  # 2: float16 clips at 65504 MeV instead of overflowing to inf; log16


#: Cache image formats: name -> stored dtype (see the module docstring).
DTYPES = {"float32": np.float32, "float16": np.float16, "log16": np.float16}
_F16_MAX = float(np.finfo(np.float16).max)


def encode(images_mev: np.ndarray, dtype: str) -> np.ndarray:
    """MeV images -> the stored format ``dtype`` (float16: clipped at 65504 MeV; log16: float16 of ln(1 + MeV))."""
    if dtype == "float16":
        return np.minimum(images_mev, _F16_MAX).astype(np.float16)
    if dtype == "log16":
        return np.log1p(np.asarray(images_mev, np.float32)).astype(np.float16)
    return np.asarray(images_mev, np.float32)


def build_cache(root_file: str | os.PathLike, cache_dir: str | os.PathLike, dtype: str = "float32",
                max_events: int | None = None, progress: bool = True, name: str | None = None,
                fresh: bool = False) -> Path:
    """Convert ``root_file`` (ECAL schema) into ``cache_dir/<name>/`` (default name: the file's stem, with
    ``.<dtype>`` appended unless float32); returns that folder.

    The folder is an :mod:`amsnb.provenance` artefact: reused only if it was made from the same source (its stamp,
    or size and mtime for a user's file) with the same dtype and ``max_events``.
    """
    from .. import provenance

    path = Path(root_file)
    if not path.exists():
        raise InputFileError(f"{path}: no such ROOT file to cache; run notebook 02 (amsnb.ecal.datasets) or pass a "
                             "path")
    if dtype not in DTYPES:
        raise ConfigError(f"cache dtype='{dtype}': use one of {', '.join(DTYPES)}")
    # a compact cache lives beside the float32 one (switching dtype back and forth rebuilds nothing)
    out = Path(cache_dir) / (name or (path.stem if dtype == "float32" else f"{path.stem}.{dtype}"))
    stamp = provenance.Stamp("amsnb.ecal.cache", str(FORMAT_VERSION), {"dtype": dtype, "max_events": max_events},
                             {"source": provenance.identity(path)})
    provenance.ensure(out, stamp, lambda folder: _convert(path, folder, dtype, max_events, progress), fresh=fresh,
                      label=f"cache/{out.name}", verb="caching", quiet_reuse=True)
    return out


def _convert(path: Path, out: Path, dtype: str, max_events: int | None, progress: bool) -> None:
    """Chunked conversion of one ROOT file into the cache folder ``out`` (images memory-mapped while written)."""
    from tqdm.auto import tqdm

    from .. import io

    out.mkdir(parents=True, exist_ok=True)
    n_total = io.num_entries(path)
    n = n_total if max_events is None else min(n_total, int(max_events))
    images = np.lib.format.open_memmap(out / "images.npy.part", mode="w+", dtype=DTYPES[dtype],
                                       shape=(n, 1, N_LAYERS, N_CELLS))
    cols = {c: np.empty(n, ECAL[c].np_dtype) for c in COLUMNS}
    done = 0
    with tqdm(total=n, desc=f"cache {path.name}", unit="ev", disable=not progress, leave=False) as bar:
        for chunk in io.iterate(path, ECAL, branches=("ecal_edep",) + COLUMNS):
            k = min(len(chunk["event"]), n - done)
            if k <= 0:
                break
            images[done:done + k, 0] = encode(chunk["ecal_edep"][:k], dtype)
            for c in COLUMNS:
                cols[c][done:done + k] = chunk[c][:k]
            done += k
            bar.update(k)
    images.flush()
    del images
    if done != n:
        raise InputFileError(f"{path}: expected {n} events, read {done}; the file changed while caching, rerun")
    os.replace(out / "images.npy.part", out / "images.npy")
    for c, v in cols.items():
        np.save(out / f"{c}.npy", v)
    meta = dict(source=str(path.resolve()), dtype=dtype, max_events=max_events, n=n, columns=list(COLUMNS),
                image_shape=[1, N_LAYERS, N_CELLS], unit="MeV",
                n_electron=int((cols["label"] == 1).sum()), n_proton=int((cols["label"] == 0).sum()))
    (out / "meta.json").write_text(json.dumps(meta, indent=2))


class EcalCache:
    """Read side of a cache folder: memory-mapped images + small columns (all numpy)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta = self.folder / "meta.json"
        if not meta.exists():
            raise InputFileError(f"{self.folder}: not a training cache (no meta.json); build it with "
                                 "amsnb.ecal.cache.build_cache")
        self.meta = json.loads(meta.read_text())
        self.images = np.load(self.folder / "images.npy", mmap_mode="r")
        self.log = self.meta.get("dtype") == "log16"
        self.columns = {c: np.load(self.folder / f"{c}.npy") for c in COLUMNS}

    def __len__(self) -> int:
        return len(self.images)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored images -> float32 MeV (a new array)."""
        x = np.array(stored, dtype=np.float32)
        return np.expm1(x, out=x) if self.log else x

    def __getstate__(self):
        """DataLoader workers get the folder, not a pickled copy of the memory map; they re-open it."""
        return {"folder": self.folder}

    def __setstate__(self, state):
        self.__init__(state["folder"])


class EcalDataset:
    """torch Dataset over a cache: items ``{"x": (1, 18, 72) float32 MeV, "y", "w", "domain"}``.

    ``indices`` selects a subset (a split); ``use_weight`` passes the file's flux weights as ``w`` (default 1:
    the seed trains with class weights for the e/p imbalance, not flux weights); ``unlabeled`` sets y = -1
    (a DANN target set).
    """

    def __init__(self, cache: EcalCache | str | os.PathLike, indices=None, use_weight: bool = False,
                 unlabeled: bool = False, domain_weights=None):
        self.cache = cache if isinstance(cache, EcalCache) else EcalCache(cache)
        n = len(self.cache)
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
            raise ConfigError(f"{self.cache.folder}: indices out of range [0, {n})")
        cols = self.cache.columns
        self.labels = np.full(len(self.indices), -1, np.int64) if unlabeled else \
            cols["label"][self.indices].astype(np.int64)
        self.weights = cols["weight"][self.indices].astype(np.float32) if use_weight else \
            np.ones(len(self.indices), np.float32)
        self.domains = cols["domain"][self.indices].astype(np.int64)
        #: weight of each item in the DANN domain loss (``dw``; see :meth:`with_domain_weights`)
        self.domain_weights = None if domain_weights is None else np.asarray(domain_weights, np.float32)
        if self.domain_weights is not None and self.domain_weights.shape != self.indices.shape:
            raise ConfigError(f"{self.cache.folder}: {len(self.domain_weights)} domain weights for {len(self)} items")

    def with_domain_weights(self, weights) -> EcalDataset:
        """The same items with per-item weights in the domain loss."""
        return self._like(self.indices, weights)

    def _like(self, indices, domain_weights=None) -> EcalDataset:
        """Other items of the same cache with this dataset's flags (flux weights, unlabeled)."""
        unlabeled = bool((self.labels == -1).all()) and len(self.labels) > 0
        return EcalDataset(self.cache, indices, not np.all(self.weights == 1), unlabeled, domain_weights)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def identity(self) -> str:
        """What these items are (the cache's stamp, the subset, the flags): training resumes only on a match."""
        from .. import provenance

        parts = {"cache": np.frombuffer(provenance.identity(self.cache.folder).encode(), np.uint8),
                 "indices": self.indices, "labels": self.labels, "weights": self.weights}
        if self.domain_weights is not None:
            parts["domain_weights"] = self.domain_weights
        return provenance.array_digest(parts)

    def __getitem__(self, i: int) -> dict:
        import torch

        j = self.indices[i]
        x = torch.from_numpy(self.cache.decode(self.cache.images[j]))
        item = {"x": x, "y": int(self.labels[i]), "w": float(self.weights[i]), "domain": int(self.domains[i])}
        if self.domain_weights is not None:
            item["dw"] = float(self.domain_weights[i])
        return item

    def column(self, name: str) -> np.ndarray:
        """A cache column (label, weight, domain, energy, run, event) for this subset, e.g. for score files."""
        if name not in self.cache.columns:
            raise ConfigError(f"column '{name}' not in the cache; columns: {', '.join(COLUMNS)}")
        return self.cache.columns[name][self.indices]

    def split(self, fraction: float, seed: int = 0) -> tuple[EcalDataset, EcalDataset]:
        """Two disjoint random subsets (fraction, 1 - fraction), e.g. a validation half of mc_high."""
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(self.indices))
        k = int(round(fraction * len(perm)))
        return self._like(np.sort(self.indices[perm[:k]])), self._like(np.sort(self.indices[perm[k:]]))

    def where(self, mask: np.ndarray) -> EcalDataset:
        """The items where ``mask`` (one bool per item) is true, in order, e.g. the target events of an energy
        window."""
        mask = np.asarray(mask, bool)
        if mask.shape != self.indices.shape:
            raise ConfigError(f"{self.cache.folder}: mask of {mask.shape[0]} values for {len(self)} items")
        return self._like(self.indices[mask])

    def subset(self, n: int | None, seed: int = 0) -> EcalDataset:
        """At most ``n`` random events (all if None), keeping their order."""
        if n is None or n >= len(self):
            return self
        return self.split(n / len(self), seed)[0]

    def sample_images(self, n: int = 16, seed: int = 0) -> np.ndarray:
        """``n`` random images (float32 MeV) of this subset, e.g. real inputs for the ONNX check."""
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(self.indices), min(n, len(self.indices)), replace=False))
        return self.cache.decode(self.cache.images[self.indices[pick]])
