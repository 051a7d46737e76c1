"""amsnb.widgets.app: the Voila apps' parameters from the address / environment, user paths, errors on the page."""

import pytest

from amsnb.errors import ConfigError, InputFileError
from amsnb.widgets.app import app_errors, app_parameters, user_path


def test_address_and_environment_set_parameters_with_their_types(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.root").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "data")  # the kernel runs elsewhere than the server was started
    ns = {"data_file": "", "n_events": 200, "efficiency": 0.9, "flag": False}
    env = {"PWD": str(tmp_path), "QUERY_STRING": "data_file=data/a.root&n_events=50&flag=true&voila-template=lab",
           "AMSNB_APP_EFFICIENCY": "0.95", "AMSNB_APP_N_EVENTS": "7"}
    got = app_parameters(ns, list(ns), paths=["data_file"], environ=env)
    assert got == {"data_file": "data/a.root", "n_events": 50, "efficiency": 0.95, "flag": True}  # address wins
    assert ns["data_file"] == str(tmp_path / "data" / "a.root") and ns["n_events"] == 50


def test_bad_address_parameters_are_one_line_errors():
    with pytest.raises(ConfigError, match="'n_event' is not a parameter of this app"):
        app_parameters({"n_events": 1}, ["n_events"], environ={"QUERY_STRING": "n_event=3"})
    with pytest.raises(ConfigError, match="'n_events' = 'many' is not a int"):
        app_parameters({"n_events": 1}, ["n_events"], environ={"QUERY_STRING": "n_events=many"})


def test_user_path_prefers_the_servers_folder_then_the_kernels(tmp_path, monkeypatch):
    server, kernel = tmp_path / "repo", tmp_path / "repo" / "widgets"
    kernel.mkdir(parents=True)
    (kernel / "only_here.root").write_bytes(b"")
    monkeypatch.chdir(kernel)
    env = {"PWD": str(server)}
    assert user_path("only_here.root", env) == kernel / "only_here.root"
    assert user_path("missing.root", env) == server / "missing.root"  # the error names the user's folder
    assert user_path("/abs/x.root", env).as_posix() == "/abs/x.root"


def test_app_errors_show_the_line_in_voila_and_raise_elsewhere(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.data))
    monkeypatch.delenv("VOILA_KERNEL_ID", raising=False)
    monkeypatch.delenv("VOILA_REQUEST_URL", raising=False)
    with pytest.raises(InputFileError):
        with app_errors():
            raise InputFileError("x.root: file not found")
    monkeypatch.setenv("VOILA_KERNEL_ID", "k")
    with app_errors():
        raise InputFileError("x.root: file not found")
    assert len(shown) == 1 and "amsnb-error" in shown[0] and "x.root: file not found" in shown[0]
    with pytest.raises(ZeroDivisionError):  # a bug is not hidden
        with app_errors():
            _ = 1 / 0


def test_amsnb_app_rejects_an_unknown_app_or_parameter_in_one_line(capsys):
    from amsnb.cli import main

    assert main(["app", "no_such_app"]) == 2
    assert "no app 'no_such_app'" in capsys.readouterr().err
    assert main(["app", "shower_browser", "-p", "datafile", "x.root"]) == 2
    err = capsys.readouterr().err
    assert "no parameter datafile" in err and "data_file" in err and err.count("\n") == 1


def test_voila_command_uses_amsnbs_template_and_passes_parameters(tmp_path):
    from amsnb.widgets.app import TEMPLATE_ROOT, voila_command

    argv, env = voila_command("threshold_tuner", 8870, {"workdir": "runs/smoke"}, cwd=tmp_path)
    assert "--template=amsnb" in argv and argv[3].endswith("widgets/threshold_tuner.ipynb")
    assert env["AMSNB_APP_WORKDIR"] == "runs/smoke" and env["PWD"] == str(tmp_path.resolve())
    assert (TEMPLATE_ROOT / "voila" / "templates" / "amsnb" / "index.html.j2").exists()
    assert "http" not in (TEMPLATE_ROOT / "voila" / "templates" / "amsnb" / "index.html.j2").read_text()
