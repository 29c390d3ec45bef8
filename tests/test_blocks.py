"""Tests of kdrepro.training.blocks: many students in one process (issue 12, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_synthetic_dir
from test_cli import assert_one_error_line, invoke
from test_runs import MANIFEST_KEYS, METRICS_KEYS

from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.mnist import load_mnist
from kdrepro.provenance import file_sha256, make_generator, seed_everything
from kdrepro.report.collect import load_runs
from kdrepro.training.block_model import StudentBlock
from kdrepro.training.blocks import (
    block_fingerprint,
    block_loss,
    check_block,
    fit_block,
    train_block,
)
from kdrepro.training.checkpoint import FileCheckpoint
from kdrepro.training.engine import error_summary, fit, predict_logits
from kdrepro.training.losses import distillation_loss, soft_targets
from kdrepro.training.models import MLP, load_model
from kdrepro.training.runs import soft_targets_run, train_run
from kdrepro.training.spec import spec_from_dict

TEMPERATURES = [1.0, 2.5, 20.0]
STUDENT = {"role": "distilled", "hidden": [12, 12], "epochs": 2, "batch_size": 50, "lr": 0.05,
           "lr_decay": 0.9, "momentum_ramp_epochs": 1, "weight_decay": 1e-4, "seed": 4,
           "hard_weight": 0.3, "temperature": 1.0}
TEACHER = {"role": "teacher", "hidden": [16, 16], "epochs": 1, "batch_size": 50, "lr": 0.05,
           "seed": 3}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blocks-data")
    expected = write_synthetic_dir(root / "idx")
    fetch_mnist(root / "mnist.pt", root / "idx", expected=expected, sources=("dir",))
    return root / "mnist.pt"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, cache) -> tuple[Path, Path]:
    """(teacher model.pt, its soft targets) of a tiny teacher on the synthetic MNIST."""
    out = tmp_path_factory.mktemp("blocks-teacher")
    train_run(spec_from_dict(TEACHER), cache, out, label="teacher/seed3")
    soft_targets_run(out / "model.pt", cache, out / "soft_targets.pt")
    return out / "model.pt", out / "soft_targets.pt"


def _specs(temperatures=TEMPERATURES, **changes):
    return [spec_from_dict({**STUDENT, **changes, "temperature": t}) for t in temperatures]


def test_block_loss_is_each_students_distillation_loss():
    gen = torch.Generator().manual_seed(0)
    logits, teacher = torch.randn(3, 20, 10, generator=gen), torch.randn(20, 10, generator=gen)
    labels = torch.randint(0, 10, (20,), generator=gen)
    probs = torch.stack([soft_targets(teacher, t) for t in TEMPERATURES])
    losses = block_loss(logits, probs, labels, torch.tensor(TEMPERATURES), 0.3)
    expected = torch.stack([distillation_loss(logits[k], probs[k], labels, t, 0.3)
                            for k, t in enumerate(TEMPERATURES)])
    torch.testing.assert_close(losses, expected, rtol=1e-6, atol=1e-6)


def test_a_block_trains_each_student_as_it_would_alone():
    """Paired design: same init, same batches; 8 SGD steps agree to float rounding."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (200, 28, 28), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 10, (200,), generator=gen)
    teacher = torch.randn(200, 10, generator=gen) * 4
    spec = _specs()[0]
    cfg = spec.train_config()
    seed_everything(spec.seed)
    block = StudentBlock(MLP(spec.hidden), len(TEMPERATURES))
    probs = torch.stack([soft_targets(teacher, t) for t in TEMPERATURES], dim=1)
    block_history = fit_block(block, images, probs, labels, TEMPERATURES, spec.hard_weight, cfg,
                              make_generator(spec.seed, "cpu"))
    for k, t in enumerate(TEMPERATURES):
        seed_everything(spec.seed)
        alone = MLP(spec.hidden)
        loss = lambda out, p, y, t=t: distillation_loss(out, p, y, t, spec.hard_weight)  # noqa: E731
        history = fit(alone, images, [soft_targets(teacher, t), labels], loss, cfg,
                      make_generator(spec.seed, "cpu"))
        trained = block.student(k).state_dict()
        for name, weight in alone.state_dict().items():
            torch.testing.assert_close(trained[name], weight, rtol=1e-5, atol=1e-7)
        assert [r["loss"] for r in block_history[k]] == pytest.approx(
            [r["loss"] for r in history], rel=1e-5)


def test_check_block_rejects_what_a_block_cannot_share(tmp_path):
    dirs = [tmp_path / str(k) for k in range(3)]
    with pytest.raises(ValueError, match="at least one temperature"):
        check_block([], [])
    with pytest.raises(ValueError, match="differ only in temperature"):
        check_block(_specs()[:2] + _specs(seed=5)[2:], dirs)
    with pytest.raises(ValueError, match="hidden_dropout = 0.5"):
        check_block(_specs(hidden_dropout=0.5), dirs)
    with pytest.raises(ValueError, match="repeat"):
        check_block(_specs([2.0, 3.0, 2.0]), dirs)
    with pytest.raises(ValueError, match="its own output folder"):
        check_block(_specs(), [dirs[0]] * 3)


def test_block_writes_one_valid_run_folder_per_student(tmp_path, cache, teacher):
    teacher_path, soft = teacher
    runs = [f"distilled/h12/T{t:g}/seed4" for t in TEMPERATURES]
    dirs = [tmp_path / "results" / r for r in runs]
    checkpoint = tmp_path / "block.pt"
    train_block(_specs(), cache, dirs, labels=runs, soft_targets_path=soft,
                teacher_path=teacher_path, checkpoint_path=checkpoint)
    assert not checkpoint.exists(), "the checkpoint is removed once every folder is written"
    mnist = load_mnist(cache)
    for k, (run, folder) in enumerate(zip(runs, dirs)):
        metrics = json.loads((folder / "metrics.json").read_text())
        manifest = json.loads((folder / "manifest.json").read_text())
        assert set(metrics) == METRICS_KEYS and MANIFEST_KEYS | {"block"} <= set(manifest)
        assert metrics["run"] == run and metrics["temperature"] == TEMPERATURES[k]
        assert manifest["spec"] == _specs()[k].to_dict()
        assert manifest["block"] == {"runs": runs, "index": k, "temperatures": TEMPERATURES}
        assert manifest["outputs"]["model.pt"] == file_sha256(folder / "model.pt")
        assert manifest["inputs"]["soft_targets"] == file_sha256(soft)
        model = load_model(folder / "model.pt")
        summary = error_summary(predict_logits(model, mnist.test_images), mnist.test_labels)
        assert summary["wrong_indices"] == metrics["wrong_indices"]
        assert len(metrics["history"]) == STUDENT["epochs"]
    records = load_runs(tmp_path / "results")
    assert sorted(r.run for r in records) == sorted(runs)


def test_block_students_start_from_the_single_runs_initialisation(tmp_path, cache, teacher):
    """train_block and train_run build the same init, batch order and targets (4 steps)."""
    teacher_path, soft = teacher
    spec = spec_from_dict({**STUDENT, "temperature": 2.5, "epochs": 1})
    single = tmp_path / "single"
    train_run(spec, cache, single, label="single", soft_targets_path=soft,
              teacher_path=teacher_path)
    block_dir = tmp_path / "block"
    train_block([spec, spec_from_dict({**spec.to_dict(), "temperature": 4.0})], cache,
                [block_dir, tmp_path / "other"], labels=["a", "b"], soft_targets_path=soft,
                teacher_path=teacher_path, checkpoint_path=tmp_path / "c.pt")
    a = torch.load(single / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(block_dir / "model.pt", weights_only=True)["state_dict"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-7)


def test_a_checkpoint_of_other_soft_targets_is_ignored(tmp_path, cache, teacher, caplog):
    """The fingerprint covers the soft targets' bytes: another file means start over."""
    teacher_path, soft = teacher
    other = tmp_path / "soft.pt"
    torch.save({**torch.load(soft, weights_only=True), "note": "another file"}, other)
    specs, checkpoint = _specs(), tmp_path / "block.pt"
    sha = load_mnist(cache).sha256
    assert block_fingerprint(specs, sha, file_sha256(soft)) != \
        block_fingerprint(specs, sha, file_sha256(other))
    FileCheckpoint(checkpoint, block_fingerprint(specs, sha, file_sha256(soft))).save(
        {"epoch": STUDENT["epochs"], "model": {}, "history": []})
    with caplog.at_level("WARNING"):
        train_block(specs, cache, [tmp_path / str(k) for k in range(3)], labels=["a", "b", "c"],
                    soft_targets_path=other, teacher_path=teacher_path, checkpoint_path=checkpoint)
    assert "belongs to another configuration" in caplog.text
    history = json.loads((tmp_path / "0" / "metrics.json").read_text())["history"]
    assert len(history) == STUDENT["epochs"], "trained from scratch, not resumed"


@pytest.mark.parametrize("temperatures, needle", [
    ("", "--temperatures '' is empty"),
    ("2,-1", "item '-1' is invalid"),
    ("0", "item '0' is invalid"),
    ("2,abc", "item 'abc' is invalid"),
    ("2,2", "repeat a value"),
    ("2,3,4", "3 temperatures need as many --out"),
])
def test_bad_temperatures_are_one_error_line(tmp_path, cache, teacher, temperatures, needle):
    teacher_path, soft = teacher
    spec = json.dumps({**STUDENT, "temperature": 2})
    result = invoke("train-block", "--spec", spec, "--temperatures", temperatures,
                    "--out", tmp_path / "a", "--out", tmp_path / "b",
                    "--soft-targets", soft, "--teacher", teacher_path, "--data", cache)
    assert_one_error_line(result, needle)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
