"""Benchmark part 5: two `kdrepro train` jobs side by side vs one after the other.

Snakemake `--cores 2` runs two `threads: 1` rules at once; each job is a
separate `kdrepro train --threads 1` process. This times exactly that (start-
up, data load and verification, training, evaluation, writing outputs)
against the same two jobs in series, and against the two in series with
`--threads 2` each (what one 2-core job per rule would give).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def job_spec(student: dict, width: int, seed: int, epochs: int, rows_fraction: float) -> dict:
    """A short hard-label student run; `rows_fraction` < 1 trains on fewer rows."""
    # the profile's optimiser settings, but this benchmark's epochs (they hold `epochs` too)
    return {**student["optimizer_spec"], "role": "baseline", "hidden": [width, width],
            "seed": seed, "epochs": epochs, "validation_fraction": round(1.0 - rows_fraction, 6)}


def _command(spec: dict, data: Path, out_dir: Path, threads: int) -> list[str]:
    return [sys.executable, "-m", "kdrepro", "train", "--spec", json.dumps(spec),
            "--data", str(data), "--out", str(out_dir), "--threads", str(threads),
            "--label", out_dir.name]


def _check(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        tail = (err or b"").decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"`kdrepro train` failed ({proc.returncode}): {' | '.join(tail)}")


def run_jobs(specs: list[dict], data: Path, threads: int, parallel: bool) -> float:
    """Wall seconds for running `specs` as `kdrepro train` processes."""
    with tempfile.TemporaryDirectory(prefix="kdrepro-bench-") as tmp:
        commands = [_command(s, data, Path(tmp) / f"job{i}", threads) for i, s in enumerate(specs)]
        tic = time.perf_counter()
        if parallel:
            procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for c in commands]
            for proc in procs:
                _check(proc)
        else:
            for command in commands:
                _check(subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE))
        return time.perf_counter() - tic


def side_by_side(specs: list[dict], data: Path, repeats: int) -> dict:
    """Best-of-`repeats` wall seconds: parallel (1 thread each) vs series (1 and 2 threads)."""
    best = {"parallel_1_thread_s": float("inf"), "series_1_thread_s": float("inf"),
            "series_2_threads_s": float("inf")}
    for _ in range(repeats):  # interleaved, so a burst of outside load hits all three
        best["series_1_thread_s"] = min(best["series_1_thread_s"],
                                        run_jobs(specs, data, 1, parallel=False))
        best["parallel_1_thread_s"] = min(best["parallel_1_thread_s"],
                                          run_jobs(specs, data, 1, parallel=True))
        best["series_2_threads_s"] = min(best["series_2_threads_s"],
                                         run_jobs(specs, data, 2, parallel=False))
    best["parallel_over_series"] = best["parallel_1_thread_s"] / best["series_1_thread_s"]
    best["specs"] = specs
    return best
