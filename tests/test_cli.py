"""CLI conventions (issue 12): --help exits 0 at every level and shows defaults; argument errors are one line with
exit status 2 before any work starts; `amsnb check` keeps the reader's closest-name hints; `| head` is quiet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from amsnb import runner
from amsnb.cli import main
from amsnb.errors import ConfigError

AMSNB = [sys.executable, "-m", "amsnb.cli"]


@pytest.mark.parametrize("argv", [[], ["run"], ["check"], ["simulate"], ["simulate", "ecal"],
                                  ["simulate", "nuclei"], ["train"], ["schema"], ["kernel"]])
def test_help_exits_zero_at_every_level(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "ecal", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: 10000)" in out and "(default: mixed)" in out


@pytest.mark.parametrize("argv, words", [
    (["simulate", "ecal", "--n", "-5"], "--n: -5 is not a positive integer"),
    (["simulate", "ecal", "--n", "0"], "--n: 0 is not a positive integer"),
    (["simulate", "nuclei", "--n", "abc"], "'abc' is not a positive integer"),
    (["simulate", "ecal", "--emin", "300", "--emax", "200"], "--emin 300 must be below --emax 200"),
    (["simulate", "nuclei", "--z", "x"], "--z"),
    (["simulate", "ecal", "--scale", "-1", "--preset", "table1"], "positive number"),
    (["simulate", "gamma"], "invalid choice"),
    (["run", "--bogus"], "unrecognized arguments"),
])
def test_argument_errors_are_one_line_exit_2_and_write_nothing(argv, words, tmp_path, capsys):
    out = tmp_path / "x.root"
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(out)] if argv[0] == "simulate" and len(argv) > 1 and argv[1] != "gamma"
             else argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_parameter_types_checked_before_a_kernel_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "ensure_kernel", lambda *a: pytest.fail("a kernel was prepared"))
    wd = tmp_path / "no" / "run"
    code = main(["run", "--profile", "smoke", "--only", "01", "--workdir", str(wd), "-p", "max_plot_events", "abc"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "max_plot_events" in err and "01_shower_exploration.ipynb" in err and "integer" in err
    assert not wd.exists()


def test_type_rules():
    """A -p value must be of the kind of the default profile's value (an integer is a number; a file list may be a
    list, a glob string or {set: files})."""
    cells = {"06_nuclei_mda.ipynb": dict.fromkeys(("n_mc", "lr", "use_da", "selections", "model_preset"), {}),
             "02_cut_studies.ipynb": {"input_files": {}, "mapping": {}}}
    runner.check_parameter_types({"n_mc": 3, "lr": 1, "use_da": True, "selections": [15], "model_preset": "small",
                                  "input_files": "data/*.root", "mapping": "my.yaml"}, cells)
    runner.check_parameter_types({"input_files": {"mc_high": ["a.root"]}}, cells)
    for bad in ({"n_mc": 2.5}, {"n_mc": True}, {"lr": "a"}, {"use_da": 1}, {"selections": 15}, {"input_files": 3}):
        with pytest.raises(ConfigError, match=f"-p {next(iter(bad))} .*_.*ipynb expects"):
            runner.check_parameter_types(bad, cells)


def test_threshold_tuner_from_missing_workdir_creates_nothing(tmp_path):
    from amsnb.widgets.threshold_tuner import ThresholdTuner

    missing = tmp_path / "no" / "such" / "run"
    with pytest.raises(ConfigError, match="no such run folder"):
        ThresholdTuner.from_workdir(missing)
    assert not (tmp_path / "no").exists()


def test_check_keeps_closest_name_hint(tmp_path, capsys):
    from amsnb import io, schema
    from amsnb.ecal.sim import simulate

    f = tmp_path / "f.root"
    io.write(f, simulate(20, seed=1), schema.ECAL)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("branches:\n  energy: energyy\n")
    assert main(["check", str(f), "--mapping", str(mapping)]) == 1
    out = capsys.readouterr().out
    assert "MISSING (required): energy" in out and "closest in the file: energy" in out


def test_schema_into_head_is_quiet():
    proc = subprocess.run(" ".join(AMSNB) + " schema | head -1", shell=True, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout.strip() and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_runner_names_each_cell_and_hides_kernel_tcp_warning(tmp_path, capfd):
    import nbformat

    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell('profile = "default"\nworkdir = "runs/default"\nseed = 1')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("# a slow step\nx = 1")]
    nb.metadata["kernelspec"] = {"name": "amsnb", "display_name": "Python (amsnb)", "language": "python"}
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "01_a.ipynb")
    lines = []
    runner.run_series("smoke", workdir=tmp_path / "wd", nb_dir=tmp_path / "nbs",
                      log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    cells = [ln for ln in lines if "  cell " in ln]
    assert any("cell 3/3" in ln and "a slow step" in ln and " s " in ln for ln in cells), lines
    assert "without encryption" not in capfd.readouterr().err
