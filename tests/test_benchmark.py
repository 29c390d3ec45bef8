"""Smoke test of benchmarks/train_speed.py: it runs end to end and states its targets.

Tiny slices, one repeat: the figures mean nothing; that the benchmark still
runs against today's config and code (and writes targets) is what is tested.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def train_speed(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import train_speed

    return train_speed


def test_smoke_run_writes_every_target(train_speed, real_mnist_dir, tmp_path, capsys):
    from kdrepro.data.fetch import fetch_mnist

    data = tmp_path / "mnist.pt"
    fetch_mnist(data, real_mnist_dir, sources=("dir",))
    out = tmp_path / "speed.json"
    assert train_speed.main(["--smoke", "--threads", "2", "--data", str(data), "--out", str(out),
                             "--skip", "peak", "jobs"]) == 0
    figures = json.loads(out.read_text())
    expected = {"reference_speedup", "cached_over_plain", "teacher_speedup_vs_fp32_mkl",
                "engine_speedup_vs_plain", "contention_slowdown"}
    if not figures["precision"]["bf16_native"]:
        expected.discard("teacher_speedup_vs_fp32_mkl")
    if "grid30" in figures:  # benchmarks/blocks.py exists
        expected.add("grid30_speedup")
    assert expected <= set(figures["targets"])
    for target in figures["targets"].values():
        assert {"value", "threshold", "passed"} <= set(target)
        assert target["value"] > 0 and isinstance(target["passed"], bool)
    assert figures["precision"]["default_precision"] in ("fp32", "bf16")
    printed = capsys.readouterr().out
    assert "[PASS]" in printed or "[MISS]" in printed
    sys.modules.pop("train_speed", None)


def test_parallel_jobs_part_trains_the_epochs_it_asks_for(train_speed):
    """The config's optimiser settings carry `epochs` too; the part's own count wins."""
    import jobs

    setup = train_speed.load_setup(ROOT / "config" / "config.yaml")
    spec = jobs.job_spec(setup["student"], 300, 1, 1, 0.1)
    assert spec["epochs"] == 1 and spec["hidden"] == [300, 300]
    assert spec["validation_fraction"] == pytest.approx(0.9)
    assert spec["lr"] == setup["student"]["optimizer_spec"]["lr"]
