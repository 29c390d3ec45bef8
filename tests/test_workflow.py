"""The Snakemake workflow end to end on the quick overlay (real MNIST, real training).

Marked `workflow`; it is part of the default run (a few minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdrepro.config import validate_config
from kdrepro.plan import experiment_runs, grid_blocks, merge_config

ROOT = Path(__file__).resolve().parents[1]
COPY = ("Snakefile", "workflow", "config", "templates")

pytestmark = pytest.mark.workflow


def _snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    bindir = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=full_env,
                          capture_output=True, text=True, timeout=1800)


def _project_copy(tmp: Path) -> Path:
    for name in COPY:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / name)
    return tmp


def _expected_runs(config: dict, quick: dict) -> list[str]:
    """Run folders the quick overlay must produce: the plan's, every experiment x seed."""
    merged = validate_config(merge_config(config, quick), ROOT / "workflow" / "schemas" /
                             "config.schema.yaml")
    return experiment_runs(merged)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, real_mnist_dir):
    workdir = _project_copy(tmp_path_factory.mktemp("workflow"))
    result = _snakemake(workdir, "reports/report.html", "--cores", "2", "--configfile",
                        "config/quick.yaml", "--config", f"mnist_dir={real_mnist_dir}")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_quick_overlay_produces_every_experiment(quick_run):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    quick = yaml.safe_load((ROOT / "config" / "quick.yaml").read_text())
    for run in _expected_runs(config, quick):
        metrics = json.loads((quick_run / "results" / run / "metrics.json").read_text())
        assert isinstance(metrics["test_errors"], int), run
        assert (quick_run / "results" / run / "manifest.json").is_file(), run
    for run in ("omit/c3/seed1", "keep/c78/seed1"):
        bias = json.loads((quick_run / "results" / run / "bias.json").read_text())
        assert set(bias["protocols"]) == {"as_trained", "paper", "test_tuned", "validation"}
    merged = validate_config(merge_config(config, quick), ROOT / "workflow" / "schemas" /
                             "config.schema.yaml")
    in_blocks = {run: b["name"] for b in grid_blocks(merged) for run in b["runs"]}
    for run in _expected_runs(config, quick):  # `kdrepro status` reads these
        name = f"blocks/{in_blocks[run]}" if run in in_blocks else run
        progress = json.loads((quick_run / "results" / "progress" / f"{name}.json").read_text())
        assert progress["state"] == "finished", run
    assert (quick_run / "reports" / "report.html").stat().st_size > 0
    assert (quick_run / "reports" / "report.md").stat().st_size > 0
    published = (quick_run / "reports" / "metrics.csv").read_text().splitlines()
    assert len(published) == 1 + len(set(_expected_runs(config, quick)))  # header + a row per run


def test_second_invocation_does_no_work(quick_run, real_mnist_dir):
    result = _snakemake(quick_run, "reports/report.html", "-n", "--cores", "2", "--configfile",
                        "config/quick.yaml", "--config", f"mnist_dir={real_mnist_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_checkpoints_are_removed_after_success(quick_run):
    leftovers = list((quick_run / "results").rglob("*checkpoint*.pt"))
    leftovers += list((quick_run / "results" / "checkpoints").rglob("*.pt")) \
        if (quick_run / "results" / "checkpoints").exists() else []
    assert leftovers == []


@pytest.mark.parametrize("override, key", [
    ({"distill": {"temperature": 0}}, "distill.temperature"),
    ({"tempreature": 3}, "tempreature"),
    ({"teacher": {"optimizer": {"epochs": -1}}}, "teacher.optimizer.epochs"),
    ({"omit": {"classes": [3, 11]}}, "omit.classes.1"),
    ({"temperature_grid": {"per_width": [{"width": 64, "temperatures": [2]}]}},
     "temperature_grid.per_width.0.width"),
])
def test_bad_config_stops_before_any_job(tmp_path, override, key):
    workdir = _project_copy(tmp_path)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(override))
    result = _snakemake(workdir, "reports/report.html", "--cores", "1", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert f"'{key}'" in result.stderr
    assert not (workdir / "results").exists()


def test_dry_run_lists_every_experiment(tmp_path):
    workdir = _project_copy(tmp_path)
    result = _snakemake(workdir, "reports/report.html", "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-2000:]
    for rule in ("fetch_mnist", "train_teacher", "soft_targets", "train_baseline",
                 "train_distilled", "train_transfer", "bias_sweep", "collect", "report"):
        assert rule in result.stdout, rule


@pytest.mark.parametrize(("teacher_seeds", "threads"), [([1, 2], 1), ([1], 2)])
def test_teachers_side_by_side_train_on_one_thread(tmp_path, teacher_seeds, threads):
    """Two teachers share the 2 CPUs one thread each; a single teacher gets both."""
    workdir = _project_copy(tmp_path)
    (workdir / "teachers.yaml").write_text(yaml.safe_dump({"teacher": {"seeds": teacher_seeds}}))
    result = _snakemake(workdir, "results/metrics.csv", "-n", "-p", "--cores", "2",
                        "--configfile=teachers.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    teacher_lines = [line for line in result.stdout.splitlines()
                     if "kdrepro train " in line and '"role": "teacher"' in line]
    assert len(teacher_lines) == len(teacher_seeds)
    assert all(f"--threads {threads} " in line for line in teacher_lines)
