"""amsnb.io: round trips, chunking, branch mappings, and every kind of bad input a user can bring.

Bad files are real files made here: written with uproot, then truncated or overwritten with garbage.
"""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from amsnb import io
from amsnb.cli import main as cli_main
from amsnb.errors import ConfigError, InputFileError, SchemaError
from amsnb.schema import ECAL, NUCLEI, SCORES


def _events(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a = ECAL.empty(n)
    a["run"][:] = 7
    a["event"][:] = np.arange(n)
    a["ecal_edep"][:] = rng.gamma(1.0, 10.0, size=(n, 18, 72))
    a["energy"][:] = rng.uniform(200, 2000, n)
    a["rigidity"][:] = a["energy"] * rng.normal(1, 0.05, n)
    a["label"][:] = rng.integers(0, 2, n)
    a["weight"][:] = 1.0
    return a


@pytest.fixture
def ecal_file(tmp_path):
    a = _events()
    return io.write(tmp_path / "ecal.root", a), a


def test_round_trip_exact(ecal_file):
    path, a = ecal_file
    b = io.read(path)
    assert set(b) == set(ECAL.names)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert b[k].dtype == ECAL[k].np_dtype


def test_chunked_iteration_bounded(ecal_file):
    path, a = ecal_file
    chunks = list(io.iterate(path, branches=["event", "energy"], step_size=64))
    assert [len(c["event"]) for c in chunks] == [64, 64, 64, 64, 44]
    np.testing.assert_array_equal(np.concatenate([c["event"] for c in chunks]), a["event"])


def test_chunked_writer_and_interrupt_leaves_no_file(tmp_path):
    a = _events(100)
    with io.TreeWriter(tmp_path / "w.root") as w:
        for s in range(0, 100, 30):
            w.extend({k: v[s:s + 30] for k, v in a.items()})
    assert io.num_entries(tmp_path / "w.root") == 100
    with pytest.raises(RuntimeError):
        with io.TreeWriter(tmp_path / "x.root") as w:
            w.extend({k: v[:10] for k, v in a.items()})
            raise RuntimeError("interrupted")
    assert not (tmp_path / "x.root").exists() and not (tmp_path / "x.root.part").exists()


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="nope.root: file not found"):
        io.read(tmp_path / "nope.root")


def test_not_a_root_file(tmp_path):
    p = tmp_path / "text.root"
    p.write_text("hello, I am not ROOT\n" * 10)
    with pytest.raises(InputFileError, match="not a ROOT file"):
        io.read(p)


def test_truncated_file(ecal_file, tmp_path):
    path, _ = ecal_file
    data = path.read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="cut.root.*(truncated|corrupt|damaged)"):
        io.read(cut)
    rep = io.check_file(cut)
    assert not rep.usable and rep.error


def test_corrupt_baskets(tmp_path):
    a = _events(2000)
    a["ecal_edep"][:, :, 20:] = 0  # sparse like real showers, so the baskets are compressed (ROOT stores
    path = io.write(tmp_path / "sparse.root", a, compression="zlib")  # incompressible baskets raw)
    data = bytearray(path.read_bytes())
    mid = len(data) // 3
    data[mid: mid + 4096] = bytes(4096)  # zero a stretch of compressed baskets, keep the header and directory
    bad = tmp_path / "bad.root"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="bad.root"):
        io.read(bad)


def test_missing_tree(ecal_file):
    path, _ = ecal_file
    with pytest.raises(InputFileError, match="no tree 'nuclei'.*ecal"):
        io.read(path, NUCLEI)


def test_missing_branches_listed_with_closest_names(tmp_path):
    a = _events(20)
    with uproot.recreate(tmp_path / "user.root") as f:
        f["ecal"] = {"run": a["run"], "event": a["event"], "EcalEnergy": a["energy"]}
    with pytest.raises(SchemaError) as err:
        io.read(tmp_path / "user.root")
    msg = str(err.value)
    assert "user.root" in msg and "ecal_edep" in msg and "rigidity" in msg and "mapping" in msg


def test_mapping_reads_user_names_and_expressions(tmp_path):
    a = _events(50)
    renamed = {"Run": a["run"], "Evt": a["event"], "Cells": a["ecal_edep"].reshape(50, -1) / 1000.0,
               "EcalE": a["energy"], "Rig": a["rigidity"]}
    for name in ECAL.required:
        if name not in ("run", "event", "ecal_edep", "energy", "rigidity", "e_over_r"):
            renamed[name] = a[name]
    with uproot.recreate(tmp_path / "user.root") as f:
        f["amstree"] = renamed
    mapping = {"tree": "amstree", "branches": {"run": "Run", "event": "Evt", "ecal_edep": "Cells",
                                               "energy": "EcalE", "rigidity": "Rig",
                                               "e_over_r": "EcalE / abs(Rig)"},
               "units": {"ecal_edep": 1000.0}}
    b = io.read(tmp_path / "user.root", mapping=mapping)
    np.testing.assert_allclose(b["ecal_edep"], a["ecal_edep"], rtol=1e-6)  # flat 1296 -> 18x72, GeV -> MeV
    np.testing.assert_allclose(b["e_over_r"], a["energy"] / np.abs(a["rigidity"]), rtol=1e-6)
    assert (b["label"] == -1).all() and (b["weight"] == 1).all()  # optional truth filled with defaults


def test_mapping_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        io.read(tmp_path / "x.root", mapping=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("branches:\n  enrgy: E\n")
    with pytest.raises(ConfigError, match="'enrgy' is not a branch"):
        io.read(tmp_path / "x.root", mapping=bad)


def test_example_mapping_is_valid():
    from importlib.resources import files

    from amsnb.mapping import load_mapping

    m = load_mapping(str(files("amsnb") / "data" / "example_mapping.yaml"), ECAL)
    assert m.tree == "amstreea" and m.branches["energy"] == "EcalEnergyE"


def test_mapping_expressions_are_restricted():
    from amsnb.mapping import _evaluate

    raw = {"E": np.array([4.0, 9.0])}
    np.testing.assert_allclose(_evaluate("sqrt(E) * 2 + E**2", raw), [20.0, 87.0])
    for bad in ("E.__class__", "__import__('os')", "'ab' * 3", "9**9**9", "open('x')", "[E for E in E]"):
        with pytest.raises(ConfigError):
            _evaluate(bad, raw)


def test_wrong_shape(tmp_path):
    a = _events(10)
    a2 = dict(a)
    with uproot.recreate(tmp_path / "shape.root") as f:
        a2["ecal_edep"] = a["ecal_edep"][:, :, :36].copy()  # 18x36: half the cells
        f["ecal"] = a2
    with pytest.raises(SchemaError, match="ecal_edep.*shape"):
        io.read(tmp_path / "shape.root")
    rep = io.check_file(tmp_path / "shape.root")
    assert not rep.usable and "ecal_edep" in rep.misshaped


def test_nan_policy(tmp_path):
    a = _events(40)
    a["energy"][[3, 5]] = np.nan
    a["ecal_edep"][7, 0, 0] = np.inf
    path = io.write(tmp_path / "nan.root", a)
    with pytest.raises(SchemaError, match="NaN/inf") as err:
        io.read(path)
    assert "energy: 2 events" in str(err.value) and "ecal_edep: 1 events" in str(err.value)
    kept = io.read(path, nan_policy="drop")
    assert len(kept["event"]) == 37 and not {3, 5, 7} & set(kept["event"].tolist())
    rep = io.check_file(path)
    assert rep.usable and rep.nonfinite == {"energy": 2, "ecal_edep": 1}
    with pytest.raises(SchemaError, match="nan_policy"):
        io.read(path, nan_policy="ignore")


def test_unknown_branch_request(ecal_file):
    path, _ = ecal_file
    with pytest.raises(SchemaError, match="'enrgy'.*did you mean energy"):
        io.read(path, branches=["enrgy"])


def test_write_validation(tmp_path):
    a = _events(5)
    del a["rigidity"]
    with pytest.raises(SchemaError, match="missing required branches.*rigidity"):
        io.write(tmp_path / "v.root", a)


def test_nuclei_and_scores_schemas_round_trip(tmp_path):
    n = NUCLEI.empty(12)
    n["trk_q"][:] = 15.0
    io.write(tmp_path / "n.root", n, NUCLEI)
    assert io.read(tmp_path / "n.root", NUCLEI)["trk_q"].shape == (12, 2, 9)
    s = SCORES.empty(4)
    io.write(tmp_path / "s.root", s, SCORES)
    assert io.num_entries(tmp_path / "s.root", "scores") == 4


def test_cli_check_exit_codes(ecal_file, tmp_path, capsys):
    path, _ = ecal_file
    assert cli_main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "usable: yes" in out and "300 events" in out
    (tmp_path / "junk.root").write_bytes(b"junk")
    assert cli_main(["check", str(tmp_path / "junk.root")]) == 1
    assert "not a ROOT file" in capsys.readouterr().out


def test_expand_files_commas_globs_and_a_glob_matching_nothing(tmp_path):
    for name in ("b.root", "a.root", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert io.expand_files(f"{tmp_path}/*.root") == [tmp_path / "a.root", tmp_path / "b.root"]  # absolute glob
    assert io.expand_files(f" {tmp_path / 'c.txt'} , {tmp_path}/a.*") == [tmp_path / "c.txt", tmp_path / "a.root"]
    assert io.expand_files([tmp_path / "x.root"]) == [tmp_path / "x.root"]  # checked when opened
    with pytest.raises(InputFileError, match=r"flight/\*\.root: no file matches"):
        io.expand_files(f"{tmp_path}/flight/*.root")


def test_read_and_cut_flow_files_accept_an_absolute_glob(tmp_path):
    """Every reader goes through io.expand_files: an absolute glob reads all its files, in sorted order."""
    from amsnb import cuts

    a, b = _events(120, seed=1), _events(80, seed=2)
    io.write(tmp_path / "run_b.root", b)
    io.write(tmp_path / "run_a.root", a)
    got = io.read(f"{tmp_path}/run_*.root")
    np.testing.assert_array_equal(got["energy"], np.concatenate([a["energy"], b["energy"]]))
    flow = cuts.cut_flow_files(f"{tmp_path}/run_*.root", "default", "mc_high", progress=False)
    explicit = cuts.cut_flow_files([tmp_path / "run_a.root", tmp_path / "run_b.root"], "default", "mc_high",
                                   progress=False)
    assert flow.same_as(explicit)
    with pytest.raises(InputFileError, match=r"nothing_\*\.root: no file matches"):
        io.read(f"{tmp_path}/nothing_*.root")
    with pytest.raises(InputFileError, match=r"nothing_\*\.root: no file matches"):
        cuts.cut_flow_files(f"{tmp_path}/nothing_*.root", "default", "mc_high", progress=False)
