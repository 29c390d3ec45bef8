"""Figure functions return matplotlib Figures, save nothing, and draw the data they are given."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from fake_results import write_fake_results

from kdrepro.report import claims, plots
from kdrepro.report.collect import load_runs
from kdrepro.report.facts import graded_runs
from kdrepro.report.views import headline_rows, temperature_table


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return load_runs(write_fake_results(tmp_path_factory.mktemp("results")))


def _lines(ax, label: str):
    return [line for line in ax.lines if line.get_label() == label]


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_temperature_figure_draws_each_width_and_its_baseline(records):
    table = temperature_table(records)
    fig = plots.temperature_figure(table["grid"], table["baselines"])
    ax = fig.axes[0]
    for width, temps in table["grid"].items():
        (bars,) = [c for c in ax.containers if c.get_label() == f"{width}-{width} distilled"]
        line = bars.lines[0]  # errorbar: the data line, then caps and bars
        assert list(line.get_xdata()) == sorted(temps)
        assert list(line.get_ydata()) == [temps[t].mean for t in sorted(temps)]
        (hard,) = _lines(ax, f"{width}-{width} hard labels")
        assert hard.get_ydata()[0] == table["baselines"][width].mean
    assert ax.get_xlabel() == "temperature T"


@pytest.mark.parametrize("key", ["omit3_errors", "keep78_error_pct"])
def test_bias_sweep_figure_draws_every_seed_and_the_paper_shift(records, key):
    runs = graded_runs(records, key)[0]
    fig = plots.bias_sweep_figure(runs, "sweep")
    assert [ax.get_ylabel() for ax in fig.axes] == ["test errors", "validation errors"]
    test_ax = fig.axes[0]
    for run in runs:
        (line,) = _lines(test_ax, f"seed {run.metrics['seed']}")
        assert list(line.get_xdata()) == [r["shift"] for r in run.bias["sweep"]]
        assert list(line.get_ydata()) == [r["test_errors"] for r in run.bias["sweep"]]
    (paper,) = _lines(test_ax, f"paper shift {runs[0].bias['paper_shift']:+g}")
    assert paper.get_xdata()[0] == runs[0].bias["paper_shift"]


def test_bias_sweep_without_validation_rows(records):
    run = graded_runs(records, "omit3_errors")[0][0]
    stripped = type(run)(path=run.path, metrics=run.metrics, manifest=run.manifest,
                         bias={**run.bias, "sweep": [{"shift": r["shift"],
                                                      "test_errors": r["test_errors"]}
                                                     for r in run.bias["sweep"]]})
    fig = plots.bias_sweep_figure([stripped], "no validation")
    assert len(_lines(fig.axes[0], "seed 1")[0].get_xdata()) == len(run.bias["sweep"])
    assert all(len(line.get_xdata()) == 0 for line in _lines(fig.axes[1], "seed 1"))


def test_training_curves_figure_draws_the_mean_per_epoch(records):
    teachers = graded_runs(records, "teacher_errors")[0]
    fig = plots.training_curves_figure({"teacher": teachers, "nothing yet": []})
    (line,) = fig.axes[0].lines
    assert line.get_label() == "teacher (3 seeds)"
    last = [r.metrics["history"][-1]["test_errors"] for r in teachers]
    assert line.get_ydata()[-1] == pytest.approx(sum(last) / len(last))


def test_per_class_and_confusion_figures_draw_the_counts(records):
    run = graded_runs(records, "omit3_errors")[0][0]
    per_class = {"as trained": run.metrics["per_class_errors"],
                 "paper shift": run.bias["protocols"]["paper"]["per_class_errors"]}
    bars = plots.per_class_figure(per_class).axes[0].patches
    assert [b.get_height() for b in bars] == per_class["as trained"] + per_class["paper shift"]
    matrices = {"as trained": run.metrics["confusion"],
                "paper shift": run.bias["protocols"]["paper"]["confusion"]}
    fig = plots.confusion_figure(matrices)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["as trained", "paper shift"]
    shown = fig.axes[0].images[0].get_array()
    assert shown[3][3] == run.metrics["confusion"][3][3]  # counts, floored at 0.5 for LogNorm


def test_headline_figure_draws_every_count_claim_seed_interval_and_paper(records):
    rows = headline_rows(claims.ledger(records))
    assert len(rows) == 15  # every ledger row with a published count or %
    fig = plots.headline_figure(rows)
    assert len(fig.axes) == len(rows)
    for ax, row in zip(fig.axes, rows):
        assert [t.get_text() for t in ax.get_yticklabels()] == [row["label"]]
        (paper,) = _lines(ax, "paper")
        assert paper.get_xdata()[0] == row["paper"]
        (ours,) = _lines(ax, "our runs")
        assert list(ours.get_xdata()) == row["measure"].values
        (interval,) = _lines(ax, "95% prediction interval")
        assert tuple(interval.get_xdata()) == pytest.approx(row["measure"].interval)
        assert len(_lines(ax, "blog 2020")) == (row["blog"] is not None)
        assert ax.texts[0].get_text() == row["verdict"]
    teacher = fig.axes[0]
    assert _lines(teacher, "blog 2020")[0].get_xdata()[0] == 119


def test_headline_figure_shows_one_seed_without_an_interval():
    from kdrepro.report.stats import Measure

    row = {"label": "Teacher", "paper": 67, "blog": None, "unit": "errors",
           "measure": Measure.of([(76, 10000)], 10000), "verdict": "inconclusive"}
    ax = plots.headline_figure([row]).axes[0]
    assert list(_lines(ax, "our runs")[0].get_xdata()) == [76.0]
    assert _lines(ax, "95% prediction interval") == []


def test_image_grid_figure():
    images = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    fig = plots.image_grid_figure(images, "twenty digits", columns=8)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (3 * 30 + 2, 8 * 30 + 2)  # make_grid: 2-pixel padding
    assert shown[2:30, 2:30].tolist() == (images[0].float() / 255).tolist()
    assert fig.axes[0].get_title() == "twenty digits"


def test_figures_are_not_written_anywhere(records, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plots.training_curves_figure({"teacher": graded_runs(records, "teacher_errors")[0]})
    plots.headline_figure(headline_rows(claims.ledger(records)))
    assert list(tmp_path.iterdir()) == []
