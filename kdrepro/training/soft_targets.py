"""The teacher's logits on the transfer set, computed once per teacher.

Section 3's transfer set is not jittered, so every student distilled from a
teacher sees the same teacher logits: they are a file target keyed by the
teacher file's SHA-256, and students read rows of it. Before a student trains,
every row is checked against a SHA-256 of the logits written with them, and a
cheap spot check recomputes a few rows with the live teacher.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdrepro.data.mnist import MNIST
from kdrepro.io import bytes_sha256, torch_save_atomic
from kdrepro.provenance import file_sha256
from kdrepro.training.engine import predict_logits
from kdrepro.training.models import MLP, NUM_CLASSES, load_model

SPOT_CHECK_ROWS = 16


class SoftTargetError(RuntimeError):
    """A soft-target file does not belong to the teacher or data at hand."""


def teacher_logits(teacher: MLP, mnist: MNIST) -> torch.Tensor:
    """Logits of the teacher (eval mode) on the unjittered training images."""
    return predict_logits(teacher, mnist.train_images).cpu()


def logits_sha256(logits: torch.Tensor) -> str:
    """SHA-256 of the float32 logits' bytes (every row)."""
    return bytes_sha256(logits.detach().cpu().float().contiguous().numpy().tobytes())


def save_soft_targets(path: Path, logits: torch.Tensor, teacher_path: Path, mnist: MNIST) -> None:
    """Write the logits with their own, the teacher's and the data's checksums, atomically."""
    logits = logits.float().contiguous()
    payload = {"logits": logits, "logits_sha256": logits_sha256(logits),
               "teacher_sha256": file_sha256(teacher_path), "data_sha256": mnist.sha256}
    torch_save_atomic(path, payload)


def _check_logits(path: Path, payload: dict) -> torch.Tensor:
    """float32 [N, 10], finite, and equal to the hash written with them."""
    logits = payload["logits"]
    if logits.dim() != 2 or logits.shape[1] != NUM_CLASSES or logits.dtype != torch.float32:
        raise SoftTargetError(f"{path} holds {logits.dtype} logits of shape {list(logits.shape)}, "
                              f"expected float32 [N, {NUM_CLASSES}]; rebuild it with "
                              "`kdrepro soft-targets`")
    if not torch.isfinite(logits).all():
        raise SoftTargetError(f"{path} holds non-finite logits (NaN or infinity); rebuild it "
                              "with `kdrepro soft-targets` from a finite teacher")
    if payload.get("logits_sha256") != logits_sha256(logits):
        raise SoftTargetError(f"{path}: its logits do not match the SHA-256 written with them "
                              "(changed after `kdrepro soft-targets` wrote them); rebuild it")
    return logits


def load_soft_targets(path: Path, teacher_path: Path, mnist: MNIST) -> torch.Tensor:
    """Teacher logits [N, 10] after checking checksums and spot-checking rows."""
    path, teacher_path = Path(path), Path(teacher_path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("logits"), torch.Tensor):
            raise TypeError("not a mapping with a 'logits' tensor")
    except Exception as exc:  # never relay torch's weights_only=False advice
        raise SoftTargetError(f"{path} is not a soft-target file written by `kdrepro "
                              f"soft-targets` (loading failed with {type(exc).__name__})") from None
    logits = _check_logits(path, payload)
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
