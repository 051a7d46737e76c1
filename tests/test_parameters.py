"""One source for every notebook parameter: the parameters cells hold no values of their own (each is None and takes
the chosen profile's), a notebook run as it is makes the request of ``amsnb run --profile``, and what a cell,
``amsnb run -p`` or plain papermill sets overrides the profile."""

from __future__ import annotations

import ast
import json

import nbformat
import papermill
import pytest

from amsnb import profiles, runner
from amsnb.ecal.datasets import DataRequest
from amsnb.errors import ConfigError

SERIES = runner.discover(runner.notebooks_dir())


def _cell(nb) -> dict:
    """The values the parameters cell of a notebook assigns, as a JupyterLab user running it gets them."""
    return {k: ast.literal_eval(v["default"]) for k, v in papermill.inspect_notebook(str(nb)).items()}


@pytest.mark.parametrize("nb", SERIES, ids=lambda p: p.name[:2])
def test_a_parameters_cell_holds_no_value_of_its_own(nb):
    cell = _cell(nb)
    nn = nb.name[:2]
    assert cell["profile"] == profiles.BASE and cell["workdir"] is None
    own = {k: v for k, v in cell.items() if k not in profiles.RUN_PARAMETERS and v is not None}
    assert not own, f"{nb.name}: the parameters cell sets {own}; leave them at None (amsnb/profiles.yaml has them)"
    unknown = set(cell) - set(profiles.parameters(profiles.BASE, nn)) - {"workdir"}
    assert not unknown, f"{nb.name}: {sorted(unknown)} have no value in amsnb/profiles.yaml"
    section = set(profiles._load()[profiles.BASE].get(nn) or {})
    assert section <= set(cell), f"profiles.yaml gives notebook {nn} {sorted(section - set(cell))}: not in its cell"


@pytest.mark.parametrize("profile", profiles.names())
@pytest.mark.parametrize("nb", SERIES, ids=lambda p: p.name[:2])
def test_a_notebook_run_as_it_is_gets_its_profiles_values(nb, profile):
    """The effective defaults of every notebook are its profile's (the cell with only ``profile`` changed), and
    the default workdir is the one `amsnb run --profile` uses."""
    nn = nb.name[:2]
    p = profiles.notebook_parameters(nn, {**_cell(nb), "profile": profile})
    want = {k: v for k, v in profiles.parameters(profile, nn).items() if k in _cell(nb)}
    assert {k: v for k, v in p.items() if k != "workdir"} == want
    assert p.workdir == str(profiles.default_workdir(profile))
    assert not p.explicit


def test_the_profiles_differ_where_they_should():
    smoke, default = profiles.parameters("smoke", "04"), profiles.parameters("default", "04")
    assert (smoke["model"], smoke["preset"], smoke["ecal_scale"]) == ("cvt", "tiny", 0.001)
    assert (default["model"], default["preset"], default["test_protons"]) == ("cnn", "small_views", 550000)
    assert profiles.parameters("smoke", "07")["n_mc"] == profiles.parameters("smoke", "06")["n_mc"]  # 07 reuses 06's


def test_what_a_cell_or_an_injection_sets_overrides_the_profile():
    cell = {**_cell(SERIES[3]), "profile": "smoke", "epochs": 9, "input_files": ("a.root", "b.root")}
    p = profiles.notebook_parameters("04", cell)
    assert p.epochs == 9 and p.input_files == ["a.root", "b.root"] and p.batch_size == 64
    assert p.explicit == {"epochs", "input_files"} and p.source("epochs") == "set here"
    assert p.source("batch_size") == "profile smoke"
    assert "set here: epochs, input_files" in repr(p)
    with pytest.raises(AttributeError, match="read-only"):
        p.epochs = 3
    with pytest.raises(ConfigError, match="epochs 'six': notebook 04 expects an integer"):
        profiles.notebook_parameters("04", {**cell, "epochs": "six"})
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        profiles.notebook_parameters("04", {**cell, "profile": "fast"})


def test_one_data_request_from_the_parameters():
    p = profiles.notebook_parameters("02", _cell(SERIES[1]))
    req = DataRequest.from_parameters(p)
    assert req == DataRequest(scale=0.045, seed=1, iss_scale=0.04, test_protons=550000, target_events=200000)
    assert req.input_files is None and req.mapping is None and req.simulated  # one empty value per kind
    assert DataRequest(scale=0.001, test_protons=0, input_files=["x.root"], mapping="").test_protons is None
    assert DataRequest(scale=0.001, input_files=["x.root"]).input_files == ("x.root",)
    for bad in (dict(scale=0), dict(scale=0.1, test_protons=-1), dict(scale=0.1, target_events=2.5)):
        with pytest.raises(ConfigError, match=next(iter(k for k in bad if k != "scale"), "ecal_scale")):
            DataRequest(**bad)
    with pytest.raises(ConfigError, match="expected a DataRequest"):
        from amsnb.ecal.datasets import ensure_ecal_sets

        ensure_ecal_sets("unused", {"scale": 0.1})


def test_plain_papermill_injection_selects_and_overrides(tmp_path):
    """papermill -p profile smoke -p seed 7 on a notebook of the series' form: smoke's values, seed 7."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "default"\nworkdir = None\nseed = None\necal_scale = None\n'
                                       'test_protons = None')
    params.metadata["tags"] = ["parameters"]
    out = tmp_path / "p.json"
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import json\nfrom amsnb.profiles import notebook_parameters\n"
        f"p = notebook_parameters('02', globals())\njson.dump(dict(p), open({str(out)!r}, 'w'))")]
    nb.metadata["kernelspec"] = {"name": "amsnb", "display_name": "Python (amsnb)", "language": "python"}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    papermill.execute_notebook(str(tmp_path / "nb.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"profile": "smoke", "seed": 7}, kernel_name=runner.ensure_kernel(),
                               progress_bar=False)
    got = json.loads(out.read_text())
    assert got["seed"] == 7 and got["ecal_scale"] == profiles.parameters("smoke", "02")["ecal_scale"]
    assert got["test_protons"] == 0 and got["workdir"] == str(profiles.default_workdir("smoke"))
