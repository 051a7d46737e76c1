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


def _write(path, counts, layer, cell, edep, n, field_name=None, tree="amstree", rntuple=False, rename=None,
           basket=None):
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
            step = basket or n
            for a in range(0, n, step):  # one basket per extend
                f[tree].extend({k: v[a:a + step] for k, v in data.items()})
    return path


def _mapping(**extra):
    return {"tree": "amstree", "branches": {"ecal_edep": {"hits": {**HITS, **extra}}}, "units": {"ecal_edep": 1000.0}}


def test_sparse_hits_match_the_reference_loop_in_chunks(tmp_path):
    counts, layer, cell, edep = _hits()
    path = _write(tmp_path / "sparse.root", counts, layer, cell, edep, len(counts), basket=10)
    stats = io.ReadStats()
    chunks = list(io.iterate(path, mapping=_mapping(), step_size=7, stats=stats))
    assert [len(c["event"]) for c in chunks] == [10] * 4  # at least one basket: none is decompressed twice
    assert [len(c["event"]) for c in io.iterate(path, mapping=_mapping(), step_size=25)] == [20, 20]
    assert [b - a for _, a, b in io.partitions(path, mapping=_mapping(), step_size=25)] == [20, 20]
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


def test_numba_and_numpy_scatter_agree_on_every_defect(monkeypatch):
    """The fused kernel and the NumPy path give the same images (float32 rounding), counts and bad events."""
    import awkward as ak

    from amsnb import _hitkernel
    from amsnb.mapping import HitSpec

    counts, layer, cell, edep = _hits(n=300, seed=9, base=1)
    edep = edep.copy()
    edep[5], edep[17], edep[40] = np.nan, -0.01, np.inf
    layer[60], cell[80] = 19, 0  # out of range for 1-based numbering
    jag = {b: ak.unflatten(a, counts) for b, a in (("L", layer.astype(np.int16)), ("C", cell.astype(np.int32)),
                                                     ("E", edep.astype(np.float32)))}
    spec = HitSpec("L", "C", "E", 1, 1)
    out = {}
    for numba_on in (True, False):
        monkeypatch.setattr(_hitkernel, "HAVE_NUMBA", numba_on)
        stats = io.ReadStats()
        img, bad = io._scatter("f.root", "ecal_edep", spec, jag, (18, 72), 0, "keep", stats, {"ecal_edep": 1000.0})
        out[numba_on] = (img, bad, stats.hits["ecal_edep"])
    assert out[True][2] == out[False][2]
    assert out[True][2]["out_of_range"] == 2 and out[True][2]["nonfinite"] == 2 and out[True][2]["negative"] == 1
    np.testing.assert_array_equal(out[True][1], out[False][1])
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-6, equal_nan=True)
    for numba_on in (True, False):
        monkeypatch.setattr(_hitkernel, "HAVE_NUMBA", numba_on)
        with pytest.raises(SchemaError, match=r"L: 1 hits with index out of range 1..18 \(first in event entry"):
            io._scatter("f.root", "ecal_edep", spec, jag, (18, 72), 0, "raise", io.ReadStats())


def test_variables_the_file_lacks_are_derived_with_the_simulations_code(tmp_path):
    """A flat AMS-style ntuple (sparse GeV hits, 1-based, tree in a directory, Geant3 codes, no shape variables)
    read through the shipped example mapping: every derived variable equals what the simulation wrote for the same
    showers (same code; the GeV round trip of the cells is float32 rounding), labels and domains come back from the
    codes, and `amsnb check` lists the derived branches and exits 0."""
    from ams_ntuple import MAPPING, write_ams_ntuple

    from amsnb.ecal import sim

    src = tmp_path / "dense.root"
    a = sim.simulate(300, "proton", "iss", seed=3)
    b = sim.simulate(200, "electron", "mc", seed=4)
    io.write(src, {k: np.concatenate([a[k], b[k]]) for k in a})
    ams = write_ams_ntuple(src, tmp_path / "ams.root", seed=1, n_duplicates=4)
    want = io.read(src)
    stats = io.ReadStats()
    got = next(io.iterate(ams, mapping=MAPPING, stats=stats, step_size=10_000))
    derived = {"energy_raw", "shower_max", "shower_alpha", "lateral_rms", "layer_frac", "layer_rms", "f_front",
               "f_rear", "f_core", "s1_s3", "s3_s5", "n_hit_cells", "n_saturated", "entry_x", "entry_y", "dxdz",
               "dydz", "e_over_r"}
    assert set(stats.derived) == derived
    np.testing.assert_allclose(got["ecal_edep"], want["ecal_edep"], rtol=1e-6)
    for name in sorted(derived - {"n_hit_cells", "n_saturated"}):
        np.testing.assert_allclose(got[name], want[name], rtol=2e-3, atol=2e-3, err_msg=name)
    np.testing.assert_array_equal(got["n_hit_cells"], want["n_hit_cells"])
    np.testing.assert_array_equal(got["label"], want["label"])
    np.testing.assert_array_equal(got["domain"], want["domain"])
    assert stats.hits["ecal_edep"]["duplicates"] == 4 and stats.filled_defaults == {"pdg", "true_energy", "weight"}
    report = io.check_file(ams, mapping=MAPPING)
    assert report.usable and set(report.derived) == derived and "derived by amsnb: energy_raw" in report.text()
    assert cli_main(["check", str(ams), "--mapping", str(MAPPING)]) == 0


def test_missing_underivable_branch_is_named_with_the_closest(tmp_path):
    """rigidity cannot be derived from the cells: it stays required, and its absence names close branches."""
    counts, layer, cell, edep = _hits()
    _write(tmp_path / "norig.root", counts, layer, cell, edep, len(counts), rename={"rigidity": "rigidty_inner"})
    report = io.check_file(tmp_path / "norig.root", mapping=_mapping())
    assert not report.usable and "rigidity" in report.missing_required
    assert "closest in the file: rigidty_inner" in report.text()
    assert "shower_max" not in report.missing_required
