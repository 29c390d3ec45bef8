"""Progress files of training jobs (kdrepro.progress)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from kdrepro.progress import ProgressFile, job_state, pid_alive, progress_file, read_jobs


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_updates_give_epoch_loss_errors_and_eta(tmp_path):
    clock = Clock()
    path = tmp_path / "progress" / "teacher" / "seed1.json"
    progress = ProgressFile(path, "teacher/seed1", epochs=10, clock=clock)
    assert json.loads(path.read_text())["epoch"] == 0
    clock.now = 1006.0
    progress.update({"epoch": 1, "loss": 0.5, "seconds": 6.0, "test_errors": 300})
    progress.update({"epoch": 2, "loss": 0.25, "seconds": 4.0})
    state = json.loads(path.read_text())
    assert state["run"] == "teacher/seed1" and state["state"] == "running"
    assert state["epoch"] == 2 and state["loss"] == 0.25 and state["test_errors"] is None
    assert state["eta_seconds"] == pytest.approx(5.0 * 8)  # mean epoch 5 s, 8 epochs to go
    assert state["pid"] == os.getpid() and state["updated"] == 1006.0
    assert [p.name for p in path.parent.iterdir()] == ["seed1.json"]  # no temp files left


def test_a_resumed_run_estimates_from_its_own_epochs(tmp_path):
    progress = ProgressFile(tmp_path / "p.json", "run", epochs=100)
    progress.update({"epoch": 91, "loss": 0.1, "seconds": 2.0})
    assert progress.state["eta_seconds"] == pytest.approx(2.0 * 9)


def test_finish_and_failure_are_recorded(tmp_path):
    done, failed = tmp_path / "done.json", tmp_path / "failed.json"
    with progress_file(done, "a", 3) as progress:
        progress.finish("finished", test_errors=71)
    with pytest.raises(RuntimeError), progress_file(failed, "b", 3):
        raise RuntimeError("boom")
    assert json.loads(done.read_text())["state"] == "finished"
    assert json.loads(done.read_text())["test_errors"] == 71
    assert json.loads(failed.read_text())["state"] == "failed"


def test_no_path_no_file(tmp_path):
    with progress_file(None, "a", 3) as progress:
        assert progress is None
    assert list(tmp_path.iterdir()) == []


def test_a_dead_process_is_stale_only_on_its_own_host():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    assert not pid_alive(pid) and pid_alive(os.getpid())
    here = socket.gethostname()
    assert job_state({"state": "running", "pid": pid, "host": here}) == "stale"
    assert job_state({"state": "running", "pid": os.getpid(), "host": here}) == "running"
    assert job_state({"state": "running", "pid": pid, "host": "node17"}) == "running"
    assert job_state({"state": "finished", "pid": pid, "host": here}) == "finished"


def test_read_jobs_lists_running_first_and_skips_junk(tmp_path):
    root = tmp_path / "progress"
    for run, state in (("a/seed1", "finished"), ("b/seed1", "running"), ("c/seed1", "failed")):
        (root / run).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{run}.json").write_text(json.dumps(
            {"run": run, "state": state, "pid": os.getpid(), "host": socket.gethostname(),
             "epochs": 5, "epoch": 1}))
    (root / "torn.json").write_text('{"run": ')
    (root / "other.json").write_text('[1, 2]')
    assert [(j["run"], j["state"]) for j in read_jobs(tmp_path)] == [
        ("b/seed1", "running"), ("c/seed1", "failed"), ("a/seed1", "finished")]


def test_read_jobs_without_progress_folder(tmp_path):
    assert read_jobs(tmp_path) == []
