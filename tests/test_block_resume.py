"""A student block killed with SIGKILL resumes from its checkpoint bit-identically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_resume import _kill_after_first_checkpoint

from kdrepro.data.fetch import fetch_mnist
from kdrepro.training.runs import soft_targets_run, train_run
from kdrepro.training.spec import spec_from_dict

# A keep-{0,1} transfer set (~12,700 rows) keeps the three epochs short.
STUDENT = {"role": "keep", "keep": [0, 1], "hidden": [30, 30], "epochs": 3, "batch_size": 100, "lr": 0.05,
           "lr_decay": 0.9, "momentum_ramp_epochs": 2, "seed": 7, "temperature": 2.0}
TEMPERATURES = "2,20"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, real_mnist_dir) -> tuple[Path, Path, Path]:
    """(MNIST cache, teacher model.pt, soft targets) with a one-epoch 16-unit teacher."""
    root = tmp_path_factory.mktemp("block-resume")
    fetch_mnist(root / "mnist.pt", real_mnist_dir, sources=("dir",))
    teacher = {"role": "teacher", "hidden": [16], "epochs": 1, "batch_size": 100, "lr": 0.05}
    train_run(spec_from_dict(teacher), root / "mnist.pt", root / "teacher", label="teacher")
    soft_targets_run(root / "teacher" / "model.pt", root / "mnist.pt", root / "soft.pt")
    return root / "mnist.pt", root / "teacher" / "model.pt", root / "soft.pt"


def _block_cmd(inputs, out: Path, checkpoint: Path) -> list[str]:
    cache, teacher, soft = inputs
    return [sys.executable, "-m", "kdrepro", "train-block", "--spec", json.dumps(STUDENT),
            "--temperatures", TEMPERATURES, "--out", str(out / "T2"),
            "--out", str(out / "T20"), "--soft-targets", str(soft), "--teacher",
            str(teacher), "--data", str(cache), "--checkpoint", str(checkpoint), "--threads", "1"]


def _without_time(metrics: dict) -> dict:
    history = [{k: v for k, v in r.items() if k != "seconds"} for r in metrics["history"]]
    return {**{k: v for k, v in metrics.items() if k not in ("train_seconds", "run")},
            "history": history}


def test_sigkill_then_rerun_is_bit_identical(tmp_path, inputs):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    subprocess.run(_block_cmd(inputs, straight, tmp_path / "a.ckpt"), check=True,
                   capture_output=True)
    checkpoint = tmp_path / "b.ckpt"
    _kill_after_first_checkpoint(_block_cmd(inputs, resumed, checkpoint), checkpoint)
    assert checkpoint.exists() and not (resumed / "T2" / "metrics.json").exists()
    rerun = subprocess.run(_block_cmd(inputs, resumed, checkpoint), check=True,
                           capture_output=True, text=True)
    assert "resuming from" in rerun.stderr
    assert not checkpoint.exists(), "the checkpoint is removed once the block completes"
    for student in ("T2", "T20"):
        a = torch.load(straight / student / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(resumed / student / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), student
        ma, mb = (json.loads((d / student / "metrics.json").read_text())
                  for d in (straight, resumed))
        assert _without_time(ma) == _without_time(mb), student
