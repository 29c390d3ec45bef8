"""Every figure function returns a matplotlib Figure and saves nothing."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from fake_results import write_fake_results
from matplotlib.figure import Figure

from kdrepro.report import claims, plots
from kdrepro.report.collect import load_runs


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return load_runs(write_fake_results(tmp_path_factory.mktemp("results")))


def _check(fig, panels: int = 1) -> None:
    assert isinstance(fig, Figure)
    assert len(fig.axes) >= panels
    assert fig.canvas.get_width_height()[0] > 0


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_temperature_figure(records):
    grid = claims.temperature_grid(records)
    baselines = {w: claims.errors_measure(claims.select(records, "baseline", width=w),
                                              "baseline_errors") for w in grid}
    fig = plots.temperature_figure(grid, baselines)
    _check(fig)
    assert len(fig.axes[0].lines) >= len(grid)


@pytest.mark.parametrize("role,classes", [("omit", "3"), ("keep", "78")])
def test_bias_sweep_figure(records, role, classes):
    fig = plots.bias_sweep_figure(claims.select(records, role, classes=classes), "sweep")
    _check(fig, panels=2)
    assert [ax.get_ylabel() for ax in fig.axes] == ["test errors", "validation errors"]


def test_bias_sweep_without_validation_rows(records):
    run = claims.select(records, "omit", classes="3")[0]
    stripped = type(run)(path=run.path, metrics=run.metrics, manifest=run.manifest,
                         bias={**run.bias, "sweep": [{"shift": r["shift"],
                                                      "test_errors": r["test_errors"]}
                                                     for r in run.bias["sweep"]]})
    _check(plots.bias_sweep_figure([stripped], "no validation"), panels=2)


def test_training_curves_figure(records):
    fig = plots.training_curves_figure({"teacher": claims.select(records, "teacher"),
                                        "nothing yet": []})
    _check(fig)
    assert len(fig.axes[0].lines) == 1


def test_per_class_and_confusion_figures(records):
    runs = claims.select(records, "omit", classes="3")
    per_class = {"as trained": runs[0].metrics["per_class_errors"],
                 "paper shift": runs[0].bias["protocols"]["paper"]["per_class_errors"]}
    _check(plots.per_class_figure(per_class))
    matrices = {"as trained": runs[0].metrics["confusion"],
                "paper shift": runs[0].bias["protocols"]["paper"]["confusion"]}
    _check(plots.confusion_figure(matrices), panels=2)


def test_image_grid_figure():
    images = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    fig = plots.image_grid_figure(images, "twenty digits", columns=8)
    _check(fig)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (3 * 30 + 2, 8 * 30 + 2)  # make_grid: 2-pixel padding


def test_figures_are_not_written_anywhere(records, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plots.training_curves_figure({"teacher": claims.select(records, "teacher")})
    assert list(tmp_path.iterdir()) == []
