"""The figure layout check (amsnb.plotting.layout) that Workdir.save_figure runs on every saved figure: it must
catch overlapping text, text over another panel and text leaving the figure, and pass clean figures."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from amsnb.plotting.layout import FigureLayoutWarning, text_problems  # noqa: E402
from amsnb.workdir import Workdir  # noqa: E402


def _clean():
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], label="curve")
    ax.set(title="a title", xlabel="E [GeV]", ylabel="events")
    ax.legend(loc="lower right")
    return fig, ax


def test_clean_figure_passes():
    fig, _ = _clean()
    assert text_problems(fig) == []
    plt.close(fig)


def test_overlapping_texts_are_caught():
    fig, ax = _clean()
    ax.text(0.5, 1.0, "label over the title", transform=ax.transAxes, ha="center", va="bottom")
    problems = text_problems(fig)
    assert any("'label over the title' overlaps text 'a title'" in p for p in problems), problems
    plt.close(fig)


def test_text_into_the_next_panel_is_caught():
    fig, (a, b) = plt.subplots(1, 2, figsize=(4, 3))
    a.pcolormesh([[1, 2], [3, 4]])
    b.plot([1, 2])
    b.set_ylabel("a long y label", labelpad=60)
    assert any("runs into another panel" in p or "overlaps" in p for p in text_problems(fig))
    plt.close(fig)


def test_text_leaving_the_figure_is_caught():
    fig, ax = _clean()
    ax.text(1.3, 0.5, "outside", transform=ax.transAxes)
    assert any("'outside' leaves the figure" in p for p in text_problems(fig))
    assert not any("leaves" in p for p in text_problems(fig, check_bounds=False))
    plt.close(fig)


def test_save_figure_records_and_warns(tmp_path):
    wd = Workdir(tmp_path)
    fig, ax = _clean()
    ax.text(0.5, 1.0, "label over the title", transform=ax.transAxes, ha="center", va="bottom")
    with pytest.warns(FigureLayoutWarning, match="bad.png"):
        wd.save_figure("01", fig, "bad")
    record = json.loads((wd.figures("01") / "layout_problems.json").read_text())
    assert list(record) == ["bad"]
    fig2, _ = _clean()
    wd.save_figure("01", fig2, "bad")  # fixed: its entry goes
    assert json.loads((wd.figures("01") / "layout_problems.json").read_text()) == {}
    plt.close("all")


def test_model_tags_read_as_display_names_in_legends():
    from amsnb.ecal.experiment import model_tag
    from amsnb.plotting import model_label

    assert model_label(model_tag("cvt", "tiny", True)) == "CvT tiny + DANN"
    assert model_label(model_tag("cnn", "small_views", True, alignment="coral")) == "CNN small views + CORAL"
    assert model_label(model_tag("cnn", "small", True, "mc_low", "mc", alignment="cdan+e")) == \
        "CNN small + CDAN+E (train mc_low, val. MC)"
    assert model_label(model_tag("coatnet", "tiny", False)) == "CoAtNet tiny"
    assert model_label("bdt") == "BDT" and model_label("my_tool_v2") == "my_tool_v2"
