"""`kdrepro status` (kdrepro.cli.status) on fake progress files, and `train --progress`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdrepro.cli.app import app
from kdrepro.cli.status import fmt_duration

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _write(results: Path, run: str, **fields) -> None:
    path = results / "progress" / f"{run}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"run": run, "state": "running", "pid": os.getpid(), "host": socket.gethostname(),
              "epochs": 120, "epoch": 0, "started": time.time() - 100, "updated": time.time()}
    path.write_text(json.dumps({**record, **fields}))


@pytest.fixture
def results(tmp_path) -> Path:
    results = tmp_path / "results"
    _write(results, "teacher/seed1", epoch=37, loss=0.08123, test_errors=91,
           epoch_seconds=6.2, eta_seconds=(120 - 37) * 6.2)
    _write(results, "baseline/h800/seed1", epochs=60, epoch=60, loss=0.001, test_errors=155,
           state="finished", eta_seconds=0.0)
    _write(results, "distilled/h800/T20/seed1", epochs=60, epoch=12, loss=0.5,
           pid=_dead_pid())
    return results


def test_status_lists_running_stale_and_finished_jobs(results):
    result = runner.invoke(app, ["status", "--results", str(results)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    teacher = next(line for line in lines if "teacher/seed1" in line)
    for cell in ("running", "37/120", "0.0812", "91", "6 s", "8 min 35 s"):
        assert cell in teacher, (cell, teacher)
    assert "stale" in next(line for line in lines if "distilled/h800/T20/seed1" in line)
    assert "finished" in next(line for line in lines if "baseline/h800/seed1" in line)
    assert lines[-1] == "1 running, 1 finished, 1 stale"
    # running first, then stale, then finished
    order = [next(i for i, line in enumerate(lines) if run in line)
             for run in ("teacher/seed1", "distilled/h800", "baseline/h800")]
    assert order == sorted(order)


def test_status_json(results):
    result = runner.invoke(app, ["status", "--results", str(results), "--json"])
    assert result.exit_code == 0, result.output
    jobs = json.loads(result.stdout)
    assert {j["run"]: j["state"] for j in jobs} == {
        "teacher/seed1": "running", "distilled/h800/T20/seed1": "stale",
        "baseline/h800/seed1": "finished"}


def test_status_without_jobs(tmp_path):
    result = runner.invoke(app, ["status", "--results", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout.startswith("no training job has reported progress yet")


def test_status_of_a_missing_folder_is_one_error_line(tmp_path):
    result = runner.invoke(app, ["status", "--results", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: results folder not found: {tmp_path / 'nope'}"


@pytest.mark.parametrize("seconds, text", [
    (None, "—"), (4.4, "4 s"), (59.6, "1 min 00 s"), (515, "8 min 35 s"), (3725, "1 h 02 min")])
def test_fmt_duration(seconds, text):
    assert fmt_duration(seconds) == text


def test_status_does_not_import_torch(results):
    """The command and kdrepro.progress import no torch. (The package's __init__ mounts
    every command, so it is bypassed here: only what `status` itself imports is loaded.)"""
    code = f"""
import sys, types
cli = types.ModuleType("kdrepro.cli"); cli.__path__ = [{str(ROOT / "kdrepro" / "cli")!r}]
sys.modules["kdrepro.cli"] = cli
import typer
from typer.testing import CliRunner
from kdrepro.cli.status import status_command
app = typer.Typer(); app.command()(status_command)
result = CliRunner().invoke(app, ["--results", {str(results)!r}])
assert result.exit_code == 0 and "teacher/seed1" in result.stdout, result.output
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_train_writes_a_finished_progress_file(synthetic_mnist, tmp_path):
    progress = tmp_path / "results" / "progress" / "baseline" / "h8" / "seed1.json"
    spec = {"role": "baseline", "hidden": [8, 8], "epochs": 2, "batch_size": 50, "lr": 0.05}
    result = runner.invoke(app, [
        "train", "--spec", json.dumps(spec), "--data", str(synthetic_mnist[0]),
        "--out", str(tmp_path / "run"), "--label", "baseline/h8/seed1",
        "--progress", str(progress)])
    assert result.exit_code == 0, result.output
    state = json.loads(progress.read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert state["state"] == "finished" and state["epoch"] == 2 and state["epochs"] == 2
    assert state["test_errors"] == metrics["test_errors"]
    assert state["loss"] == metrics["history"][-1]["loss"]
