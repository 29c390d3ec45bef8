"""Tests of kdrepro.training.runs: one experiment end to end on the synthetic MNIST (docs/results.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_synthetic_dir

from kdrepro import __version__
from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.mnist import load_mnist
from kdrepro.data.transfer import class_indices, validation_split
from kdrepro.provenance import file_sha256
from kdrepro.training.bias import SELECTED_BY, shift_logits
from kdrepro.training.engine import error_summary, predict_logits
from kdrepro.training.models import load_model
from kdrepro.training.runs import (
    SCHEMA,
    bias_run,
    evaluate_run,
    soft_targets_run,
    train_run,
    transfer_indices,
)
from kdrepro.training.spec import spec_from_dict

TEACHER = {"role": "teacher", "hidden": [16, 16], "input_dropout": 0.2, "hidden_dropout": 0.5,
           "max_norm": 3.5, "jitter": 2, "epochs": 2, "batch_size": 50, "lr": 0.05,
           "lr_decay": 0.9, "momentum_ramp_epochs": 1, "seed": 3}
STUDENT = {"hidden": [12, 12], "epochs": 2, "batch_size": 50, "lr": 0.05, "seed": 1}
METRICS_KEYS = {"schema", "run", "role", "hidden", "seed", "temperature", "hard_weight",
                "transfer_set", "epochs", "test_errors", "test_total", "per_class_errors",
                "per_class_total", "confusion", "wrong_indices", "history", "train_seconds"}
MANIFEST_KEYS = {"spec", "seed", "command", "versions", "git_commit", "data_sha256", "device",
                 "threads", "wall_seconds", "started", "host", "platform", "slurm_job_id",
                 "inputs", "outputs"}
PROTOCOL_KEYS = {"shift", "selected_by", "test_errors", "test_total", "errors_in_classes",
                 "class_total", "per_class_errors", "per_class_total", "confusion",
                 "wrong_indices"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """The synthetic MNIST cache (200 train, 50 test images, every class in each split)."""
    root = tmp_path_factory.mktemp("runs-data")
    expected = write_synthetic_dir(root / "idx")
    path = root / "mnist.pt"
    fetch_mnist(path, root / "idx", expected=expected, sources=("dir",))
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, cache) -> tuple[Path, dict]:
    """A tiny teacher run (dropout, max-norm, jitter 2) and its metrics."""
    out = tmp_path_factory.mktemp("teacher")
    metrics = train_run(spec_from_dict(TEACHER), cache, out, label="teacher/seed3")
    return out, metrics


@pytest.fixture(scope="module")
def soft(tmp_path_factory, cache, teacher) -> Path:
    path = tmp_path_factory.mktemp("soft") / "soft_targets.pt"
    soft_targets_run(teacher[0] / "model.pt", cache, path)
    return path


def read(path: Path):
    return json.loads(Path(path).read_text())


def assert_metrics_contract(metrics: dict, spec: dict, mnist, label: str) -> None:
    assert set(metrics) == METRICS_KEYS
    assert metrics["schema"] == SCHEMA == 1
    assert metrics["run"] == label and metrics["role"] == spec["role"]
    assert metrics["hidden"] == spec["hidden"] and metrics["seed"] == spec.get("seed", 1)
    assert metrics["epochs"] == spec["epochs"]
    assert type(metrics["test_errors"]) is int
    assert metrics["test_total"] == len(mnist.test_labels) == 50
    assert len(metrics["per_class_errors"]) == 10 and len(metrics["per_class_total"]) == 10
    assert metrics["per_class_total"] == torch.bincount(mnist.test_labels, minlength=10).tolist()
    assert sum(metrics["per_class_errors"]) == metrics["test_errors"]
    confusion = metrics["confusion"]
    assert len(confusion) == 10 and all(len(row) == 10 for row in confusion)
    assert sum(map(sum, confusion)) == 50
    assert 50 - sum(confusion[i][i] for i in range(10)) == metrics["test_errors"]
    assert [sum(row) for row in confusion] == metrics["per_class_total"]
    assert len(metrics["wrong_indices"]) == metrics["test_errors"]
    wrong = metrics["wrong_indices"]
    assert wrong == sorted(set(wrong)) and all(0 <= i < 50 for i in wrong)
    history = metrics["history"]
    assert len(history) == spec["epochs"]
    assert [r["epoch"] for r in history] == list(range(1, spec["epochs"] + 1))
    for record in history:
        assert {"epoch", "loss", "test_errors", "lr", "momentum", "seconds"} <= set(record)
    assert history[-1]["test_errors"] == metrics["test_errors"]
    assert isinstance(metrics["train_seconds"], float) and metrics["train_seconds"] >= 0


def assert_model_matches_metrics(out: Path, metrics: dict, mnist) -> None:
    """The saved model.pt reproduces the recorded test errors exactly."""
    model = load_model(out / "model.pt")
    summary = error_summary(predict_logits(model, mnist.test_images), mnist.test_labels)
    for key in ("test_errors", "per_class_errors", "confusion", "wrong_indices"):
        assert summary[key] == metrics[key], key


def assert_manifest_contract(out: Path, spec: dict, mnist) -> dict:
    manifest = read(out / "manifest.json")
    assert MANIFEST_KEYS <= set(manifest)
    assert manifest["spec"] == spec_from_dict(spec).to_dict()
    assert manifest["seed"] == spec.get("seed", 1)
    assert manifest["versions"]["kdrepro"] == __version__
    assert manifest["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert "python" in manifest["versions"]
    assert manifest["git_commit"] is None or isinstance(manifest["git_commit"], str)
    assert manifest["data_sha256"] == mnist.sha256
    assert manifest["device"] == "cpu"
    assert isinstance(manifest["wall_seconds"], float) and manifest["wall_seconds"] >= 0
    assert set(manifest["outputs"]) == {"model.pt", "metrics.json"}
    for name, digest in manifest["outputs"].items():
        assert digest == file_sha256(out / name), name
    return manifest


def assert_clean_run_dir(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "metrics.json", "model.pt"]


# ---------------------------------------------------------------- teacher


def test_teacher_run_writes_the_documented_files(teacher, cache):
    out, metrics = teacher
    mnist = load_mnist(cache)
    assert_clean_run_dir(out)  # checkpoint removed, no temp files
    assert read(out / "metrics.json") == metrics
    assert_metrics_contract(metrics, TEACHER, mnist, "teacher/seed3")
    assert metrics["temperature"] is None and metrics["hard_weight"] is None
    assert metrics["transfer_set"] == {"omit": [], "keep": [], "size": 200}
    assert [r["lr"] for r in metrics["history"]] == pytest.approx([0.05, 0.045])
    assert [r["momentum"] for r in metrics["history"]] == pytest.approx([0.5, 0.9])
    assert_model_matches_metrics(out, metrics, mnist)
    manifest = assert_manifest_contract(out, TEACHER, mnist)
    assert manifest["inputs"] == {}
    model = load_model(out / "model.pt")
    assert model.architecture() == {"hidden": [16, 16], "input_dropout": 0.2,
                                    "hidden_dropout": 0.5, "max_norm": 3.5}
    for layer in model.layers:
        assert layer.weight.norm(dim=1).max().item() <= 3.5 + 1e-5


def test_same_spec_gives_the_same_model(teacher, cache, tmp_path):
    out, metrics = teacher
    again = train_run(spec_from_dict(TEACHER), cache, tmp_path, label="teacher/seed3")
    first, second = load_model(out / "model.pt"), load_model(tmp_path / "model.pt")
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), k
    strip = lambda m: {k: v for k, v in m.items() if k not in ("history", "train_seconds")}  # noqa: E731
    assert strip(again) == strip(metrics)


def test_interrupted_run_resumes_to_the_same_model(teacher, cache, tmp_path):
    class Stop(Exception):
        pass

    def stop(record):
        if record["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        train_run(spec_from_dict(TEACHER), cache, tmp_path, label="teacher/seed3", on_epoch=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    metrics = train_run(spec_from_dict(TEACHER), cache, tmp_path, label="teacher/seed3")
    assert_clean_run_dir(tmp_path)
    reference = load_model(teacher[0] / "model.pt").state_dict()
    resumed = load_model(tmp_path / "model.pt").state_dict()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert metrics["test_errors"] == teacher[1]["test_errors"]


def test_explicit_checkpoint_path_is_used_and_removed(cache, tmp_path):
    checkpoint = tmp_path / "elsewhere" / "ck.pt"
    seen = []

    def watch(record):
        seen.append(checkpoint.is_file())

    spec = {**STUDENT, "role": "baseline"}
    train_run(spec_from_dict(spec), cache, tmp_path / "run", label="b",
              checkpoint_path=checkpoint, on_epoch=watch)
    assert seen == [True, True]
    assert not checkpoint.exists()
    assert_clean_run_dir(tmp_path / "run")


# ---------------------------------------------------------------- distilled


def test_soft_targets_run(soft, teacher, cache):
    mnist = load_mnist(cache)
    payload = torch.load(soft, weights_only=True)
    assert payload["logits"].shape == (200, 10)
    teacher_model = load_model(teacher[0] / "model.pt")
    torch.testing.assert_close(payload["logits"],
                               predict_logits(teacher_model, mnist.train_images))
    manifest = read(soft.with_suffix(".manifest.json"))
    assert manifest["inputs"] == {"teacher": file_sha256(teacher[0] / "model.pt")}
    assert manifest["outputs"] == {soft.name: file_sha256(soft)}
    assert manifest["data_sha256"] == mnist.sha256


def test_distilled_run(soft, teacher, cache, tmp_path):
    spec = {**STUDENT, "role": "distilled", "temperature": 4.0, "hard_weight": 0.0}
    metrics = train_run(spec_from_dict(spec), cache, tmp_path, label="distilled/h12/T4/seed1",
                        soft_targets_path=soft, teacher_path=teacher[0] / "model.pt")
    mnist = load_mnist(cache)
    assert_clean_run_dir(tmp_path)
    assert_metrics_contract(metrics, spec, mnist, "distilled/h12/T4/seed1")
    assert metrics["temperature"] == 4.0 and metrics["hard_weight"] == 0.0
    assert metrics["transfer_set"]["size"] == 200
    assert_model_matches_metrics(tmp_path, metrics, mnist)
    manifest = assert_manifest_contract(tmp_path, spec, mnist)
    assert manifest["inputs"] == {"soft_targets": file_sha256(soft),
                                  "teacher": file_sha256(teacher[0] / "model.pt")}


def test_distilled_run_differs_with_temperature(soft, teacher, cache, tmp_path):
    models = []
    for t in (1.0, 8.0):
        spec = {**STUDENT, "role": "distilled", "temperature": t, "epochs": 1}
        train_run(spec_from_dict(spec), cache, tmp_path / str(t), label="d",
                  soft_targets_path=soft, teacher_path=teacher[0] / "model.pt")
        models.append(load_model(tmp_path / str(t) / "model.pt"))
    assert not torch.equal(models[0].layers[0].weight, models[1].layers[0].weight)


def test_distilled_run_without_soft_targets_fails_before_writing(cache, tmp_path):
    spec = {**STUDENT, "role": "distilled", "temperature": 4.0}
    with pytest.raises(ValueError, match="soft-targets"):
        train_run(spec_from_dict(spec), cache, tmp_path, label="d")
    assert list(tmp_path.iterdir()) == []


def test_distilled_run_with_another_teachers_targets(soft, cache, tmp_path):
    other = tmp_path / "other"
    train_run(spec_from_dict({**TEACHER, "seed": 4, "epochs": 1}), cache, other, label="t4")
    spec = {**STUDENT, "role": "distilled", "temperature": 4.0}
    from kdrepro.training.soft_targets import SoftTargetError

    with pytest.raises(SoftTargetError):
        train_run(spec_from_dict(spec), cache, tmp_path / "student", label="d",
                  soft_targets_path=soft, teacher_path=other / "model.pt")
    assert not (tmp_path / "student").exists()


# ---------------------------------------------------------------- omit + bias


OMIT = {**STUDENT, "role": "omit", "temperature": 4.0, "omit": [3], "validation_fraction": 0.2,
        "validation_seed": 0}


@pytest.fixture(scope="module")
def omit_run(tmp_path_factory, cache, teacher, soft) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("omit")
    metrics = train_run(spec_from_dict(OMIT), cache, out, label="omit/c3/seed1",
                        soft_targets_path=soft, teacher_path=teacher[0] / "model.pt")
    return out, metrics


def test_transfer_indices_hold_out_validation_and_omit_the_class(cache):
    mnist = load_mnist(cache)
    index = transfer_indices(spec_from_dict(OMIT), mnist.train_labels)
    train, val = validation_split(mnist.train_labels, 0.2, 0)
    assert len(val) == 40  # 20 per class, 4 held out of each
    assert not set(index.tolist()) & set(val.tolist())
    assert 3 not in mnist.train_labels[index].tolist()
    assert set(mnist.train_labels[index].tolist()) == set(range(10)) - {3}
    assert len(index) == 200 - 40 - 16
    expected = sorted(set(train.tolist()) & set(class_indices(mnist.train_labels,
                                                               omit=[3]).tolist()))
    assert index.tolist() == expected
    keep = transfer_indices(spec_from_dict({**OMIT, "role": "keep", "omit": [], "keep": [7, 8],
                                            "validation_fraction": 0.0}), mnist.train_labels)
    assert set(mnist.train_labels[keep].tolist()) == {7, 8} and len(keep) == 40


def test_omit_run_metrics(omit_run, cache):
    out, metrics = omit_run
    mnist = load_mnist(cache)
    assert_clean_run_dir(out)
    assert_metrics_contract(metrics, OMIT, mnist, "omit/c3/seed1")
    assert metrics["transfer_set"] == {"omit": [3], "keep": [], "size": 144}
    assert_manifest_contract(out, OMIT, mnist)


def test_bias_run_writes_four_protocols_shifting_only_class_3(omit_run, cache, tmp_path):
    out, _ = omit_run
    shifts = [-2.0, -1.0, 0.0, 1.0, 2.5, 4.0]
    bias_path = tmp_path / "bias.json"
    payload = bias_run(out, cache, 3.5, shifts, bias_path)
    assert read(bias_path) == payload
    assert payload["schema"] == 1 and payload["run"] == "omit/c3/seed1"
    assert payload["classes"] == [3] and payload["paper_shift"] == 3.5
    assert [row["shift"] for row in payload["sweep"]] == shifts
    assert list(payload["protocols"]) == ["as_trained", "paper", "test_tuned", "validation"]

    mnist = load_mnist(cache)
    model = load_model(out / "model.pt")
    test_logits = predict_logits(model, mnist.test_images)
    _, val_index = validation_split(mnist.train_labels, 0.2, 0)
    val_logits = predict_logits(model, mnist.train_images[val_index])
    val_labels = mnist.train_labels[val_index]
    is_three = mnist.test_labels == 3
    for row in payload["sweep"]:
        # Recompute each row with only column 3 moved.
        wrong = shift_logits(test_logits, [3], row["shift"]).argmax(1) != mnist.test_labels
        assert row["test_errors"] == int(wrong.sum())
        assert row["test_errors_in_classes"] == int((wrong & is_three).sum())
        val_wrong = shift_logits(val_logits, [3], row["shift"]).argmax(1) != val_labels
        assert row["val_errors"] == int(val_wrong.sum())
    for name, p in payload["protocols"].items():
        assert set(p) == PROTOCOL_KEYS and p["selected_by"] == SELECTED_BY[name]
        summary = error_summary(shift_logits(test_logits, [3], p["shift"]), mnist.test_labels)
        assert p["confusion"] == summary["confusion"], name
        assert p["class_total"] == int(is_three.sum())
    protocols = payload["protocols"]
    assert protocols["as_trained"]["shift"] == 0.0 and protocols["paper"]["shift"] == 3.5
    best_test = min(r["test_errors"] for r in payload["sweep"])
    assert protocols["test_tuned"]["test_errors"] == best_test
    best_val = min(r["val_errors"] for r in payload["sweep"])
    chosen = protocols["validation"]["shift"]
    assert next(r for r in payload["sweep"] if r["shift"] == chosen)["val_errors"] == best_val
    assert protocols["as_trained"]["test_errors"] == read(out / "metrics.json")["test_errors"]


def test_bias_run_on_a_run_without_shifted_classes(teacher, cache, tmp_path):
    with pytest.raises(ValueError, match="omit/keep"):
        bias_run(teacher[0], cache, 3.5, [0.0, 1.0], tmp_path / "bias.json")
    assert not (tmp_path / "bias.json").exists()


# ---------------------------------------------------------------- evaluate


def test_evaluate_run_plain_and_with_bias_shift(omit_run, cache, tmp_path):
    out, metrics = omit_run
    mnist = load_mnist(cache)
    plain = evaluate_run(out / "model.pt", cache, tmp_path / "plain.json")
    assert read(tmp_path / "plain.json") == plain
    assert plain["test_errors"] == metrics["test_errors"]
    assert plain["confusion"] == metrics["confusion"]
    assert plain["bias_shift"] == {} and plain["data_sha256"] == mnist.sha256

    shifted = evaluate_run(out / "model.pt", cache, tmp_path / "shifted.json", {3: 2.5})
    assert shifted["bias_shift"] == {"3": 2.5}
    logits = predict_logits(load_model(out / "model.pt"), mnist.test_images)
    expected = error_summary(shift_logits(logits, [3], 2.5), mnist.test_labels)
    for key in ("test_errors", "per_class_errors", "confusion", "wrong_indices"):
        assert shifted[key] == expected[key], key

    two = evaluate_run(out / "model.pt", cache, tmp_path / "two.json", {7: -1.5, 8: -1.5})
    expected = error_summary(shift_logits(logits, [7, 8], -1.5), mnist.test_labels)
    assert two["confusion"] == expected["confusion"]
    assert two["bias_shift"] == {"7": -1.5, "8": -1.5}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_spec_without_a_gpu_fails_before_writing(cache, tmp_path):
    spec = {**STUDENT, "role": "baseline", "device": "cuda"}
    with pytest.raises(ValueError, match="cuda"):
        train_run(spec_from_dict(spec), cache, tmp_path / "run", label="b")
    assert not (tmp_path / "run").exists()
