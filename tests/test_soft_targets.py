"""Tests of kdrepro.training.soft_targets: teacher logits stored once, checked before every use."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kdrepro.provenance import file_sha256
from kdrepro.training.engine import predict_logits
from kdrepro.training.models import MLP, save_model
from kdrepro.training.soft_targets import (
    SPOT_CHECK_ROWS,
    SoftTargetError,
    load_soft_targets,
    logits_sha256,
    save_soft_targets,
    teacher_logits,
)


def make_teacher(path, seed: int) -> MLP:
    torch.manual_seed(seed)
    model = MLP([16, 16], input_dropout=0.2, hidden_dropout=0.5, max_norm=3.5)
    save_model(model, path)
    return model


@pytest.fixture
def stored(tmp_path, synthetic_mnist):
    """(mnist, teacher path, soft-target path, logits) for a tiny saved teacher."""
    _, mnist = synthetic_mnist
    teacher_path = tmp_path / "teacher" / "model.pt"
    teacher = make_teacher(teacher_path, seed=0)
    logits = teacher_logits(teacher, mnist)
    path = tmp_path / "teacher" / "soft_targets.pt"
    save_soft_targets(path, logits, teacher_path, mnist)
    return mnist, teacher_path, path, logits


def one_line(exc: BaseException) -> str:
    assert "\n" not in str(exc)
    return str(exc)


def test_teacher_logits_are_eval_mode_logits_on_the_training_images(synthetic_mnist):
    _, mnist = synthetic_mnist
    torch.manual_seed(0)
    teacher = MLP([16], input_dropout=0.5, hidden_dropout=0.5).train()
    logits = teacher_logits(teacher, mnist)
    assert logits.shape == (len(mnist.train_labels), 10)
    assert logits.device.type == "cpu"
    assert teacher.training  # mode restored
    assert torch.equal(logits, teacher_logits(teacher, mnist))  # no dropout: deterministic
    torch.testing.assert_close(logits, predict_logits(teacher, mnist.train_images))


def test_round_trip(stored):
    mnist, teacher_path, path, logits = stored
    loaded = load_soft_targets(path, teacher_path, mnist)
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded, logits)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_file_records_the_teacher_and_data_checksums(stored):
    mnist, teacher_path, path, _ = stored
    payload = torch.load(path, weights_only=True)
    assert payload["teacher_sha256"] == file_sha256(teacher_path)
    assert payload["data_sha256"] == mnist.sha256


def test_soft_targets_from_another_teacher(stored, tmp_path):
    mnist, _, path, _ = stored
    other = tmp_path / "other" / "model.pt"
    make_teacher(other, seed=1)
    with pytest.raises(SoftTargetError) as info:
        load_soft_targets(path, other, mnist)
    message = one_line(info.value)
    assert str(path) in message and "another teacher" in message


def test_retrained_teacher_at_the_same_path_is_detected(stored):
    mnist, teacher_path, path, _ = stored
    make_teacher(teacher_path, seed=2)  # overwrite the teacher after the targets were made
    with pytest.raises(SoftTargetError, match="another teacher"):
        load_soft_targets(path, teacher_path, mnist)


def test_soft_targets_for_other_data(stored):
    mnist, teacher_path, path, _ = stored
    other = dataclasses.replace(mnist, sha256="0" * 64)
    with pytest.raises(SoftTargetError) as info:
        load_soft_targets(path, teacher_path, other)
    assert "other data" in one_line(info.value)


def test_soft_targets_with_the_wrong_number_of_rows(stored):
    mnist, teacher_path, path, logits = stored
    save_soft_targets(path, logits[:-1], teacher_path, mnist)
    with pytest.raises(SoftTargetError, match="other data"):
        load_soft_targets(path, teacher_path, mnist)


def spot_rows(n: int) -> list[int]:
    return sorted(set(torch.linspace(0, n - 1, SPOT_CHECK_ROWS).long().tolist()))


@pytest.mark.parametrize("which", ["first", "middle", "last"])
@pytest.mark.parametrize("delta", [1.0, 1e-2])
def test_tampered_rows_are_caught_by_the_spot_check(stored, which, delta):
    mnist, teacher_path, path, logits = stored
    rows = spot_rows(len(logits))
    row = {"first": rows[0], "middle": rows[len(rows) // 2], "last": rows[-1]}[which]
    payload = torch.load(path, weights_only=True)
    payload["logits"] = payload["logits"].clone()
    payload["logits"][row, 4] += delta
    payload["logits_sha256"] = logits_sha256(payload["logits"])  # a consistent forgery
    torch.save(payload, path)  # checksums intact: only the spot check can notice
    with pytest.raises(SoftTargetError) as info:
        load_soft_targets(path, teacher_path, mnist)
    message = one_line(info.value)
    assert str(path) in message and "live teacher" in message


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_not_a_soft_target_file(stored, content):
    mnist, teacher_path, path, _ = stored
    if content is None:
        torch.save(torch.zeros(3), path)
    else:
        path.write_bytes(content)
    with pytest.raises(SoftTargetError) as info:
        load_soft_targets(path, teacher_path, mnist)
    assert str(path) in str(info.value)


def test_missing_soft_target_file(stored, tmp_path):
    mnist, teacher_path, _, _ = stored
    missing = tmp_path / "absent.pt"
    with pytest.raises(SoftTargetError) as info:
        load_soft_targets(missing, teacher_path, mnist)
    assert str(missing) in str(info.value)


def test_rows_the_spot_check_skips_are_caught_by_the_logits_hash(stored):
    """The issue's case: nearly every row swapped for another class's, spot rows kept."""
    mnist, teacher_path, path, logits = stored
    payload = torch.load(path, weights_only=True)
    keep = torch.zeros(len(logits), dtype=torch.bool)
    keep[spot_rows(len(logits))] = True
    rolled = payload["logits"].roll(1, dims=1)
    payload["logits"] = torch.where(keep[:, None], payload["logits"], rolled)
    torch.save(payload, path)
    with pytest.raises(SoftTargetError) as info:
        load_soft_targets(path, teacher_path, mnist)
    assert str(path) in one_line(info.value) and "SHA-256" in str(info.value)


@pytest.mark.parametrize("bad", ["five_columns", "one_dim", "float64", "int64", "nan"])
def test_soft_targets_of_the_wrong_shape_dtype_or_values(stored, bad):
    mnist, teacher_path, path, logits = stored
    forged = {"five_columns": logits[:, :5], "one_dim": logits[:, 0],
              "float64": logits.double(), "int64": logits.long(),
              "nan": logits.clone().index_fill_(0, torch.tensor([3]), float("nan"))}[bad]
    payload = torch.load(path, weights_only=True)
    payload["logits"] = forged.contiguous()
    torch.save(payload, path)
    with pytest.raises(SoftTargetError) as info:
        load_soft_targets(path, teacher_path, mnist)
    message = one_line(info.value)
    assert str(path) in message
    assert ("non-finite" if bad == "nan" else "expected float32 [N, 10]") in message
