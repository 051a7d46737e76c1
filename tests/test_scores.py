"""amsnb.scores: the one score reader. A score file whose model changed after it was scored is stale, and every path
that loads score files skips it (or refuses, where it needs that very file): load_scores of a workdir and of files,
the threshold tuner's workdir and file entries, notebook 04's reads (its score plots, threshold transfer and
target_electron_fraction) and notebooks 03/05."""

import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from amsnb import provenance, scores  # noqa: E402
from amsnb.errors import ConfigError, EmptySelectionError, InputFileError  # noqa: E402
from amsnb.workdir import Workdir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETS = ("mc_test", "iss_val", "iss_test", "iss_target")


def _arrays(seed: int, n: int = 600) -> dict:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n).astype(np.int8)
    return {"run": np.zeros(n, np.int32), "event": np.arange(n, dtype=np.int64), "label": label,
            "energy": (200 * 10 ** rng.random(n)).astype(np.float32), "weight": np.ones(n, np.float32),
            "score": (0.5 * label + 0.5 * rng.random(n)).astype(np.float32)}


def _train(wd: Workdir, tag: str, version: str) -> Path:
    """A stand-in for a trained model folder (models/<tag>/train), stamped as experiment.train_model stamps it."""
    folder = wd.models / tag / "train"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.txt").write_text(version)
    provenance.commit(folder, provenance.Stamp("test.train", "1", {"tag": tag, "version": version}))
    return folder


@pytest.fixture()
def run(tmp_path, capsys):
    """A workdir with scores of "bdt" and "cnn" (both made by their model), and of "external" (no stamp: brought from
    another tool). Then "cnn" is retrained: its score files are stale."""
    wd = Workdir(tmp_path / "run")
    for k, tag in enumerate(("bdt", "cnn")):
        folder = _train(wd, tag, "v1")
        for i, s in enumerate(SETS):
            made_by = provenance.Stamp("test.scores", "1", {"tag": tag, "set": s},
                                       {"model": provenance.file_input(folder)})
            scores.write_scores(scores.score_path(wd, tag, s), **_arrays(10 * k + i), made_by=made_by)
    scores.write_scores(scores.score_path(wd, "external", "iss_test"), **_arrays(99))
    assert set(scores.load_scores(wd)) == {"bdt", "cnn", "external"}  # all current before the retraining
    _train(wd, "cnn", "v2")
    capsys.readouterr()
    return wd


def test_load_scores_of_a_workdir_skips_stale_files(run, capsys):
    got = scores.load_scores(run)
    assert set(got) == {"bdt", "external"} and list(got["bdt"]) == sorted(SETS)
    out = capsys.readouterr().out
    assert all(f"scores/cnn/{s}.root: input model changed since; skipped as stale" in out for s in SETS)
    assert "bdt" not in out and "external" not in out
    with pytest.raises(InputFileError, match=r"no score files for \['cnn'\].*4 stale"):
        scores.load_scores(run, ["cnn"])
    # models and sets in the order asked (notebook 04 plots its sets in experiment.EVAL_SETS order)
    assert list(scores.load_scores(run, ["external", "bdt"], SETS)) == ["external", "bdt"]
    assert list(scores.load_scores(run, ["bdt"], SETS)["bdt"]) == list(SETS)


def test_load_scores_of_files_skips_stale_files(run, capsys):
    files = [scores.score_path(run, m, "iss_test") for m in ("cnn", "bdt", "external")]
    got = scores.load_scores(files=files)
    assert set(got) == {"bdt", "external"} and "cnn/iss_test.root: input model changed since" in capsys.readouterr().out
    glob = f"{run.scores}/cnn/*.root"  # the comma-separated globs of a notebook parameter
    with pytest.raises(InputFileError, match="4 score file.*no score files.*4 stale"):
        scores.load_scores(files=glob)
    with pytest.raises(ConfigError):
        scores.load_scores(run, files=files)


def test_threshold_tuner_skips_stale_files(run):
    from amsnb.widgets.threshold_tuner import ThresholdTuner

    assert set(ThresholdTuner.from_workdir(run.path).scores) == {"bdt", "external"}
    t = ThresholdTuner.from_files(",".join(str(scores.score_path(run, m, "iss_test")) for m in ("cnn", "bdt")))
    assert set(t.scores) == {"bdt"}
    with pytest.raises(InputFileError, match="stale"):
        ThresholdTuner.from_files(str(scores.score_path(run, "cnn", "iss_test")))


def test_notebook_04_reads_refuse_stale_files(run):
    """Notebook 04 reads its own scores back (load_scores(wd, [tag], EVAL_SETS)) and, with match_class_mix, the
    reference classifier's (experiment.target_electron_fraction): a stale reference is refused, not used."""
    from amsnb.ecal import experiment

    assert set(experiment.EVAL_SETS) == set(SETS)
    with pytest.raises(InputFileError, match="stale"):
        scores.load_scores(run, ["cnn"], experiment.EVAL_SETS)
    energy = np.linspace(300.0, 1500.0, 50)
    data = SimpleNamespace(target=SimpleNamespace(column=lambda name: energy),
                           train=SimpleNamespace(labels=np.array([0, 0, 1])))
    assert 0.0 <= experiment.target_electron_fraction(run, data, reference="bdt")["fraction"] <= 1.0
    with pytest.raises(InputFileError, match="stale"):
        experiment.target_electron_fraction(run, data, reference="cnn")
    # one current file of the two it needs is refused too, naming the missing one
    provenance.commit(run.models / "cnn" / "train", provenance.read_stamp(run.models / "bdt" / "train"))
    scores.write_scores(scores.score_path(run, "cnn", "iss_val"), **_arrays(5), made_by=provenance.Stamp(
        "test.scores", "1", {}, {"model": provenance.file_input(run.models / "cnn" / "train")}))
    with pytest.raises(InputFileError, match=r"no current score file of \['iss_target'\]"):
        experiment.target_electron_fraction(run, data, reference="cnn")


def test_on_set():
    a = _arrays(1)
    assert scores.on_set({"a": {"iss_test": a}, "b": {"mc_test": a}}, "iss_test") == {"a": a}
    with pytest.raises(EmptySelectionError, match="mc_test"):
        scores.on_set({"a": {"iss_test": a}}, "mc_test")


def test_one_reader_of_score_files():
    """One load_scores in amsnb; the notebooks that read score files found in the workdir (03, 04, 05), the tuner and
    the experiment use it, never read_scores directly nor another load_scores."""
    defs = [p for p in (ROOT / "amsnb").rglob("*.py") if re.search(r"^def load_scores\(", p.read_text(), re.M)]
    assert defs == [ROOT / "amsnb" / "scores.py"]
    for name in ("03_classical_baselines", "04_dann_training", "05_evaluation"):
        text = (ROOT / "notebooks" / f"{name}.py").read_text()
        assert "load_scores(" in text and "read_scores(" not in text, name
        assert not re.search(r"(experiment|metrics)\.load_scores", text), name
    for module in ("widgets/threshold_tuner.py", "ecal/experiment.py"):
        text = (ROOT / "amsnb" / module).read_text()
        assert "load_scores(" in text, module
