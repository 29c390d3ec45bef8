"""A training process killed with SIGKILL resumes from its checkpoint bit-identically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdrepro.data.fetch import fetch_mnist

SPEC = {"role": "baseline", "hidden": [96, 96], "epochs": 4, "batch_size": 100, "lr": 0.05,
        "lr_decay": 0.9, "momentum_start": 0.5, "momentum_end": 0.9, "momentum_ramp_epochs": 2,
        "seed": 7, "input_dropout": 0.2, "hidden_dropout": 0.5, "max_norm": 3.0, "jitter": 2}


@pytest.fixture(scope="module")
def mnist_cache(tmp_path_factory, real_mnist_dir) -> Path:
    cache = tmp_path_factory.mktemp("resume") / "mnist.pt"
    fetch_mnist(cache, real_mnist_dir, sources=("dir",))
    return cache


def _train_cmd(cache: Path, out: Path, checkpoint: Path) -> list[str]:
    return [sys.executable, "-m", "kdrepro", "train", "--spec", json.dumps(SPEC),
            "--data", str(cache), "--out", str(out), "--checkpoint", str(checkpoint),
            "--threads", "1", "--label", "resume-test"]


def _kill_after_first_checkpoint(cmd: list[str], checkpoint: Path) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert proc.poll() is None, "training finished before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared within 120 s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_then_rerun_is_bit_identical(tmp_path, mnist_cache):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    subprocess.run(_train_cmd(mnist_cache, straight, tmp_path / "a.ckpt"), check=True,
                   capture_output=True)
    checkpoint = tmp_path / "b.ckpt"
    _kill_after_first_checkpoint(_train_cmd(mnist_cache, resumed, checkpoint), checkpoint)
    assert checkpoint.exists() and not (resumed / "metrics.json").exists()
    rerun = subprocess.run(_train_cmd(mnist_cache, resumed, checkpoint), check=True,
                           capture_output=True, text=True)
    assert "resuming from" in rerun.stderr
    assert not checkpoint.exists(), "the checkpoint is removed once the run completes"
    a = torch.load(straight / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (straight, resumed))
    drop_time = lambda m: [{k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
                           for r in m["history"]]
    assert drop_time(ma) == drop_time(mb)
    for key in ("test_errors", "per_class_errors", "confusion", "wrong_indices"):
        assert ma[key] == mb[key], key
