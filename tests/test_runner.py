"""amsnb run: parameter injection from profiles, failures that name notebook and cell, sweeps, the kernel."""

from __future__ import annotations

import json

import nbformat
import pytest

from amsnb import profiles, runner
from amsnb.cli import main as cli_main
from amsnb.errors import ConfigError


def _notebook(path, body: str, params: str = 'profile = "default"\nworkdir = "runs/default"\nseed = 1\nx = 1'):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test\ninputs: none; outputs: metrics"), p,
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "amsnb", "display_name": "Python (amsnb)", "language": "python"}
    nbformat.write(nb, path)


SAVE = ("from amsnb.workdir import Workdir\n"
        "Workdir(workdir).save_metrics('{nn}', {{'x': x, 'profile': profile, 'seed': seed}})")


@pytest.fixture
def series(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _notebook(d / "01_a.ipynb", SAVE.format(nn="01"))
    _notebook(d / "02_b.ipynb", SAVE.format(nn="02") + "\nassert x < 5, 'x is too large'")
    return d


def test_profiles_file_is_complete():
    assert {"smoke", "binder", "default", "full"} <= set(profiles.names())
    for prof in profiles.names():
        for nn in ("01", "02", "03", "04", "05", "06", "07", "08"):
            assert profiles.parameters(prof, nn)["profile"] == prof
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        profiles.parameters("fast", "01")


def test_run_injects_parameters_and_collects_metrics(series, tmp_path):
    runs = runner.run_series("smoke", workdir=tmp_path / "wd", params={"x": 3}, nb_dir=series, log=lambda *a, **k: None)
    assert [r.metrics["x"] for r in runs] == [3, 3]
    assert runs[0].metrics["profile"] == "smoke"
    assert runs[0].metrics["seed"] == profiles.parameters("smoke", "01")["seed"]
    assert (tmp_path / "wd" / "executed" / "01_a.ipynb").exists()


def test_failure_names_notebook_and_cell_and_keeps_output(series, tmp_path):
    with pytest.raises(runner.NotebookFailed) as err:
        runner.run_series("smoke", workdir=tmp_path / "wd", params={"x": 9}, nb_dir=series,
                          log=lambda *a, **k: None)
    msg = str(err.value)
    assert "02_b.ipynb" in msg and "cell" in msg and "x is too large" in msg
    kept = nbformat.read(tmp_path / "wd" / "executed" / "02_b.ipynb", as_version=4)
    assert any(o.get("ename") == "AssertionError" for c in kept.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


def test_only_and_unknown_parameter(series, tmp_path):
    runs = runner.run_series("smoke", only=["2"], workdir=tmp_path / "wd", nb_dir=series, log=lambda *a, **k: None)
    assert [r.notebook for r in runs] == ["02_b.ipynb"]
    with pytest.raises(ConfigError, match="no notebook of this run has the parameter.*'y'"):
        runner.run_series("smoke", workdir=tmp_path / "wd", params={"y": 1}, nb_dir=series, log=lambda *a, **k: None)
    with pytest.raises(ConfigError, match="--only 09"):
        runner.discover(series, ["09"])


def test_sweep_collects_table(series, tmp_path):
    runner.run_series("smoke", only=["01"], workdir=tmp_path / "wd", sweeps={"x": [1, 2]}, nb_dir=series,
                      log=lambda *a, **k: None)
    table = json.loads((tmp_path / "wd" / "01_shower_exploration" / "sweep.json").read_text())
    assert [row["metrics"]["x"] for row in table] == [1, 2]


def test_sweep_table_shows_points_as_columns_and_only_metrics_that_differ():
    table = [{"parameters": {"use_da": u, "train_set": "mc_low"},
              "metrics": {"auc": 0.9 + 0.01 * u, "seed": 1, "tag": "x", "n_train": 500, "ok": True,
                          "iss": {"rej": 10 + u, "n": 7}}}
             for u in (0, 1)]
    lines = runner.format_sweep_table(table).splitlines()
    assert lines[0].split() == ["run", "1", "run", "2"]
    assert lines[1].split() == ["use_da", "0", "1"] and lines[2].split() == ["train_set", "mc_low", "mc_low"]
    assert set(lines[3]) == {"-"}
    assert lines[4].split() == ["auc", "0.9", "0.91"] and lines[5].split() == ["iss.rej", "10", "11"]
    assert lines[6] == "(3 metrics equal in every run are not shown; see sweep.json)"  # seed, n_train, iss.n
    assert len(lines) == 7


def test_cli_run_reports_failure_without_traceback(series, tmp_path, capsys):
    code = cli_main(["run", "--profile", "smoke", "--notebooks", str(series), "--workdir", str(tmp_path / "wd"),
                     "-p", "x", "9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "02_b.ipynb failed" in err and "Traceback" not in err


def test_kernel_is_this_environment():
    import sys
    from pathlib import Path

    from jupyter_client.kernelspec import KernelSpecManager

    runner.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(runner.KERNEL_NAME)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
