"""Sparse ECAL hits in a mapping: jagged (layer, cell, edep) branches scattered into the dense 18x72 image.

Files are made here with uproot (jagged arrays via awkward) and compared with a slow reference loop.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from amsnb import io
from amsnb.cli import main as cli_main
from amsnb.errors import ConfigError, SchemaError
from amsnb.schema import ECAL

HITS = {"layer": "EcalHit_Plane", "cell": "EcalHit_Cell", "edep": "EcalHit_Edep"}


def _hits(n=40, seed=1, base=0, duplicates=True):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 30, n)
    counts[3] = 0  # an event with no hit
    total = int(counts.sum())
    layer = rng.integers(0, 18, total) + base
    cell = rng.integers(0, 72, total) + base
    edep = rng.gamma(1.0, 0.05, total)  # GeV
    if duplicates:  # event 0 gets the same (layer, cell) twice
        counts[0] = max(counts[0], 2)
        total = int(counts.sum())
        layer = np.resize(layer, total)
        cell = np.resize(cell, total)
        edep = np.resize(edep, total)
        layer[1], cell[1] = layer[0], cell[0]
    return counts, layer, cell, edep


def _reference(counts, layer, cell, edep, base=0, factor=1000.0):
    """The slow, obvious loop: one event at a time, one hit at a time."""
    out = np.zeros((len(counts), 18, 72), np.float64)
    i = 0
    for e, c in enumerate(counts):
        for _ in range(c):
            out[e, layer[i] - base, cell[i] - base] += edep[i] * factor
            i += 1
    return out.astype(np.float32)


def _other_branches(n, seed=2):
    rng = np.random.default_rng(seed)
    a = ECAL.empty(n)
    out = {}
    for name in ECAL.required:
        if name != "ecal_edep":
            out[name] = a[name]
    out["event"] = np.arange(n, dtype=out["event"].dtype)
    out["energy"] = rng.uniform(100, 1000, n).astype(np.float32)
    return out


def _write(path, counts, layer, cell, edep, n, field_name=None, tree="amstree", rntuple=False, rename=None):
    """A TTree with the hits in a record ``EcalHit`` (branches EcalHit_Plane, ... sharing the counter nEcalHit),
    or with ``rntuple`` uproot's default RNTuple (fields EcalHit.Plane, ... inside the record)."""
    record = ak.zip({"Plane": ak.unflatten(layer.astype(np.int32), counts),
                     "Cell": ak.unflatten(cell.astype(np.int16), counts),
                     "Edep": ak.unflatten(edep.astype(np.float32), counts)})
    data = {**_other_branches(n), "EcalHit": record}
    for old, new in (rename or {}).items():
        data[new] = data.pop(old)
    with uproot.recreate(path) as f:
        if rntuple:
            f[tree] = data
        else:
            types = {k: (np.dtype((v.dtype, v.shape[1:])) if isinstance(v, np.ndarray) else v.type)
                     for k, v in data.items()}
            f.mktree(tree, types, field_name=field_name or (lambda outer, inner: f"{outer}_{inner}"))
            f[tree].extend(data)
    return path


def _mapping(**extra):
    return {"tree": "amstree", "branches": {"ecal_edep": {"hits": {**HITS, **extra}}}, "units": {"ecal_edep": 1000.0}}


def test_sparse_hits_match_the_reference_loop_in_chunks(tmp_path):
    counts, layer, cell, edep = _hits()
    path = _write(tmp_path / "sparse.root", counts, layer, cell, edep, len(counts))
    stats = io.ReadStats()
    chunks = list(io.iterate(path, mapping=_mapping(), step_size=7, stats=stats))
    assert [len(c["event"]) for c in chunks] == [7] * 5 + [5]
    b = io.read(path, mapping=_mapping(), step_size=7)
    assert b["ecal_edep"].shape == (40, 18, 72) and b["ecal_edep"].dtype == np.float32
    ref = _reference(counts, layer, cell, edep.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(b["ecal_edep"], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(b["event"], np.arange(40))
    assert stats.hits["ecal_edep"]["hits"] == counts.sum()
    assert stats.hits["ecal_edep"]["duplicates"] >= 1  # summed, and counted
    assert stats.hits["ecal_edep"]["out_of_range"] == 0


@pytest.mark.parametrize("rntuple", [False, True])
def test_one_based_numbering_and_dotted_names(tmp_path, rntuple):
    counts, layer, cell, edep = _hits(base=1, seed=5)
    path = _write(tmp_path / "dotted.root", counts, layer, cell, edep, len(counts), rntuple=rntuple,
                  field_name=lambda outer, inner: f"{outer}.{inner}")
    mapping = {"tree": "amstree", "units": {"ecal_edep": 1000.0},
               "branches": {"ecal_edep": {"hits": {"layer": "EcalHit.Plane", "cell": "EcalHit.Cell",
                                                   "edep": "EcalHit.Edep", "layer_base": 1, "cell_base": 1}}}}
    b = io.read(path, mapping=mapping, step_size=9)
    ref = _reference(counts, layer, cell, edep.astype(np.float32).astype(np.float64), base=1)
    np.testing.assert_allclose(b["ecal_edep"], ref, rtol=1e-5, atol=1e-6)


def _bad_file(tmp_path):
    counts, layer, cell, edep = _hits(duplicates=False, seed=3)
    first = int(counts[:5].sum())  # first hit of event 5: index out of range
    layer[first] = 18
    nan_at = int(counts[:9].sum())  # first hit of event 9: NaN energy
    edep[nan_at] = np.nan
    assert counts[5] > 0 and counts[9] > 0
    return _write(tmp_path / "bad.root", counts, layer, cell, edep, len(counts)), counts


def test_bad_hits_raise_naming_file_branch_and_first_event(tmp_path):
    path, _ = _bad_file(tmp_path)
    with pytest.raises(SchemaError) as err:
        io.read(path, mapping=_mapping())
    msg = str(err.value)
    assert "bad.root" in msg and "EcalHit_Plane" in msg and "out of range 0..17" in msg
    assert "event entry 5" in msg and "EcalHit_Edep" in msg and "event entry 9" in msg


def test_bad_hits_dropped_with_nan_policy_drop(tmp_path):
    path, counts = _bad_file(tmp_path)
    stats = io.ReadStats()
    b = io.read(path, mapping=_mapping(), nan_policy="drop", step_size=4)
    list(io.iterate(path, mapping=_mapping(), nan_policy="drop", step_size=4, stats=stats))
    assert len(b["event"]) == len(counts) - 2 and 5 not in b["event"] and 9 not in b["event"]
    st = stats.hits["ecal_edep"]
    assert st["out_of_range"] == 1 and st["nonfinite"] == 1 and st["events_bad"] == 2
    assert np.isfinite(b["ecal_edep"]).all()


def test_check_reports_sparse_hits(tmp_path):
    import yaml

    counts, layer, cell, edep = _hits()
    path = _write(tmp_path / "sparse.root", counts, layer, cell, edep, len(counts))
    mfile = tmp_path / "m.yaml"
    mfile.write_text(yaml.safe_dump(_mapping()))
    report = io.check_file(path, mapping=mfile)
    assert report.usable, report.text()
    assert "ecal_edep" in report.hits and "EcalHit_Plane" in report.text()
    assert cli_main(["check", str(path), "--mapping", str(mfile)]) == 0


def test_hits_mapping_validation():
    from amsnb.mapping import load_mapping

    with pytest.raises(ConfigError, match="missing keys"):
        load_mapping({"branches": {"ecal_edep": {"hits": {"layer": "A", "cell": "B"}}}}, ECAL)
    with pytest.raises(ConfigError, match="not an image branch"):
        load_mapping({"branches": {"energy": {"hits": HITS}}}, ECAL)
    m = load_mapping({"branches": {"ecal_edep": {"hits": {**HITS, "layer_base": 1}}}}, ECAL)
    assert m.hits["ecal_edep"].layer_base == 1 and load_mapping(m, ECAL).hits == m.hits


def test_mapped_branch_missing_names_it_and_the_closest(tmp_path):
    counts, layer, cell, edep = _hits()
    _write(tmp_path / "typo.root", counts, layer, cell, edep, len(counts), rename={"energy": "EcalEnergyD"})
    mapping = _mapping()
    mapping["branches"]["energy"] = "EcalEnergyTypo"
    with pytest.raises(SchemaError) as err:
        io.read(tmp_path / "typo.root", mapping=mapping)
    msg = str(err.value)
    assert "mapped to 'EcalEnergyTypo', which is not a branch of the file" in msg and "EcalEnergyD" in msg
    report = io.check_file(tmp_path / "typo.root", mapping=mapping)
    assert not report.usable and "EcalEnergyTypo" in report.text() and "EcalEnergyD" in report.text()
    mapping["branches"]["energy"] = "EcalEnergyD"
    assert len(io.read(tmp_path / "typo.root", mapping=mapping)["energy"]) == len(counts)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1]])
def test_duplicates_counted_sorted_or_not(tmp_path, order):
    counts = np.array([3, 1])
    layer, cell, edep = np.array([0, 0, 1, 2]), np.array([5, 5, 6, 7]), np.array([0.1, 0.2, 0.3, 0.4])
    first = np.array(order)  # permute the hits of event 0 only: sorted, or not
    layer[:3], cell[:3], edep[:3] = layer[first], cell[first], edep[first]
    path = _write(tmp_path / "dup.root", counts, layer, cell, edep, 2)
    stats = io.ReadStats()
    b = np.concatenate([c["ecal_edep"] for c in io.iterate(path, mapping=_mapping(), stats=stats)])
    assert stats.hits["ecal_edep"]["duplicates"] == 1
    np.testing.assert_allclose(b[0, 0, 5], 300.0, rtol=1e-5)
    np.testing.assert_allclose(b[1, 2, 7], 400.0, rtol=1e-5)
    assert b.sum() == pytest.approx(1000.0, rel=1e-5)
