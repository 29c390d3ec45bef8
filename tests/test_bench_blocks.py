"""Smoke test of benchmarks/blocks.py (slow: it starts four training processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kdrepro.data.fetch import fetch_mnist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import blocks  # noqa: E402

pytestmark = pytest.mark.slow


def test_measure_grid30_reports_a_speedup(tmp_path, real_mnist_dir):
    cache = tmp_path / "mnist.pt"
    fetch_mnist(cache, real_mnist_dir, sources=("dir",))
    result = blocks.measure_grid30(cache, quick=True)
    assert {"value", "threshold", "passed", "block_seconds", "single_seconds",
            "students"} <= set(result)
    assert result["students"] == 3 and result["epochs"] == 1
    assert result["block_seconds"] > 0 and result["single_seconds"] > 0
    assert result["value"] == pytest.approx(result["single_seconds"] / result["block_seconds"],
                                            rel=0.01)
    assert result["passed"] == (result["value"] >= result["threshold"])
