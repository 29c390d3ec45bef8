"""Progress of training jobs, as one small JSON file per run that `kdrepro status` reads.

`kdrepro train --progress FILE` (the workflow passes
``results/progress/<run>.json``) rewrites the file atomically after every epoch
and marks it finished or failed at the end, so a person can follow the
workflow without opening its logs. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from kdrepro.io import write_atomic

PROGRESS_DIR = "progress"  # under the results folder
STATES = ("running", "stale", "failed", "finished")  # the order `kdrepro status` lists them in


class ProgressFile:
    """One run's progress file: :meth:`update` per epoch, :meth:`finish` at the end."""

    def __init__(self, path: Path, run: str, epochs: int, clock: Callable[[], float] = time.time):
        self.path, self.clock = Path(path), clock
        self.state = {"run": run, "state": "running", "pid": os.getpid(),
                      "host": socket.gethostname(), "epochs": epochs, "epoch": 0,
                      "started": clock(), "updated": clock()}
        self._seconds, self._epochs_seen = 0.0, 0
        self._write()

    def update(self, record: dict) -> None:
        """Record one epoch (a training-history record: epoch, loss, seconds, test_errors)."""
        self._seconds += record["seconds"]
        self._epochs_seen += 1  # epochs run by this process (a resumed run starts later)
        mean = self._seconds / self._epochs_seen
        self.state.update(epoch=record["epoch"], loss=record["loss"],
                          test_errors=record.get("test_errors"), epoch_seconds=record["seconds"],
                          val_errors=record.get("val_errors"),  # tuning runs (never the test set)
                          eta_seconds=mean * (self.state["epochs"] - record["epoch"]))
        self._write()

    def finish(self, state: str = "finished", test_errors: int | None = None) -> None:
        self.state.update(state=state, eta_seconds=0.0 if state == "finished" else None)
        if test_errors is not None:
            self.state["test_errors"] = test_errors
        self._write()

    def _write(self) -> None:
        self.state["updated"] = self.clock()
        write_atomic(self.path, json.dumps(self.state, indent=1) + "\n")


@contextmanager
def progress_file(path: Path | None, run: str, epochs: int) -> Iterator[ProgressFile | None]:
    """A :class:`ProgressFile` at ``path`` (None: no file) that is marked failed if the
    block raises; the caller calls ``finish`` on success."""
    if path is None:
        yield None
        return
    progress = ProgressFile(path, run, epochs)
    try:
        yield progress
    except BaseException:
        progress.finish("failed")
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def job_state(record: dict, host: str | None = None, alive: Callable[[int], bool] = pid_alive) -> str:
    """running, finished or failed as the file says; stale if it says running but its
    process is gone (checked only on the host that wrote it)."""
    state = record.get("state", "running")
    if state != "running":
        return state
    if record.get("host") == (host or socket.gethostname()) and not alive(int(record["pid"])):
        return "stale"
    return "running"


def read_jobs(results_dir: Path) -> list[dict]:
    """Every progress file under ``results_dir/progress``, each with its ``state``
    resolved by :func:`job_state`, running jobs first, then by run name.
    Unreadable files (half-written by a foreign tool) are skipped."""
    jobs = []
    for path in sorted((Path(results_dir) / PROGRESS_DIR).rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and {"run", "pid", "epochs"} <= record.keys():
            jobs.append({**record, "state": job_state(record)})
    return sorted(jobs, key=lambda job: (STATES.index(job["state"])
                                         if job["state"] in STATES else len(STATES), job["run"]))
