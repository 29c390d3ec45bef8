"""The teacher's logits on the transfer set, computed once per teacher.

Section 3's transfer set is not jittered, so every student distilled from a
teacher sees the same teacher logits: they are a file target keyed by the
teacher file's SHA-256, and students read rows of it. A cheap spot check
recomputes a few rows with the live teacher before a student trains.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdrepro.data.mnist import MNIST
from kdrepro.io import torch_save_atomic
from kdrepro.provenance import file_sha256
from kdrepro.training.engine import predict_logits
from kdrepro.training.models import MLP, load_model

SPOT_CHECK_ROWS = 16


class SoftTargetError(RuntimeError):
    """A soft-target file does not belong to the teacher or data at hand."""


def teacher_logits(teacher: MLP, mnist: MNIST) -> torch.Tensor:
    """Logits of the teacher (eval mode) on the unjittered training images."""
    return predict_logits(teacher, mnist.train_images).cpu()


def save_soft_targets(path: Path, logits: torch.Tensor, teacher_path: Path, mnist: MNIST) -> None:
    """Write the logits with the teacher's and the data's checksums, atomically."""
    payload = {"logits": logits.float().contiguous(), "teacher_sha256": file_sha256(teacher_path),
               "data_sha256": mnist.sha256}
    torch_save_atomic(path, payload)


def load_soft_targets(path: Path, teacher_path: Path, mnist: MNIST) -> torch.Tensor:
    """Teacher logits [N, 10] after checking checksums and spot-checking rows."""
    path, teacher_path = Path(path), Path(teacher_path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("logits"), torch.Tensor):
            raise TypeError("not a mapping with a 'logits' tensor")
        logits = payload["logits"]
    except Exception as exc:  # never relay torch's weights_only=False advice
        raise SoftTargetError(f"{path} is not a soft-target file written by `kdrepro "
                              f"soft-targets` (loading failed with {type(exc).__name__})") from None
    if payload.get("teacher_sha256") != file_sha256(teacher_path):
        raise SoftTargetError(f"{path} was computed from another teacher than {teacher_path}; "
                              "rebuild it with `kdrepro soft-targets`")
    if payload.get("data_sha256") != mnist.sha256 or len(logits) != len(mnist.train_labels):
        raise SoftTargetError(f"{path} was computed on other data than the MNIST cache given")
    _spot_check(path, logits, load_model(teacher_path), mnist)
    return logits


def _spot_check(path: Path, logits: torch.Tensor, teacher: MLP, mnist: MNIST) -> None:
    rows = torch.linspace(0, len(logits) - 1, SPOT_CHECK_ROWS).long()
    live = predict_logits(teacher, mnist.train_images[rows]).cpu()
    if not torch.allclose(live, logits[rows], rtol=1e-4, atol=1e-4):
        worst = (live - logits[rows]).abs().max().item()
        raise SoftTargetError(f"{path} disagrees with the live teacher (max |diff| {worst:.3g} "
                              "on spot-checked rows); delete it and rebuild")
