"""Tuning runs score the validation split and never read the test set (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import write_synthetic_dir

from kdrepro.cli.status import job_row
from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.mnist import load_mnist
from kdrepro.data.transfer import validation_split
from kdrepro.training import runs
from kdrepro.training.scoring import scored_summary, scoring_set
from kdrepro.training.spec import SpecError, spec_from_dict

STUDENT = {"role": "baseline", "hidden": [12, 12], "epochs": 2, "batch_size": 50, "lr": 0.05,
           "seed": 1}
TUNING = {**STUDENT, "validation_fraction": 0.25, "validation_seed": 0,
          "scored_on": "validation"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scoring-data")
    path = root / "mnist.pt"
    fetch_mnist(path, root / "idx", expected=write_synthetic_dir(root / "idx"), sources=("dir",))
    return path


def test_scored_on_needs_a_split_and_a_known_value():
    with pytest.raises(SpecError, match="validation_fraction"):
        spec_from_dict({**STUDENT, "scored_on": "validation"})
    with pytest.raises(SpecError, match=r"'scored_on' = 'train'.*one of test, validation"):
        spec_from_dict({**TUNING, "scored_on": "train"})
    assert spec_from_dict(STUDENT).scored_on == "test"


def test_scoring_set_is_the_held_out_split(cache):
    mnist = load_mnist(cache)
    images, labels = scoring_set(spec_from_dict(TUNING), mnist)
    _, val_index = validation_split(mnist.train_labels, 0.25, 0)
    assert torch.equal(labels, mnist.train_labels[val_index])
    assert torch.equal(images, mnist.train_images[val_index])
    test_images, _ = scoring_set(spec_from_dict(STUDENT), mnist)
    assert torch.equal(test_images, mnist.test_images)


def test_tuning_run_never_scores_the_test_set(cache, tmp_path, monkeypatch):
    """Every scored batch is the validation rows; the metrics say val_*, not test_*."""
    from kdrepro.training import engine

    mnist = load_mnist(cache)
    _, val_index = validation_split(mnist.train_labels, 0.25, 0)
    validation = mnist.train_images[val_index]
    scored = []

    def spy(real):
        def predict(model, images, *args, **kwargs):
            scored.append("test" if torch.equal(images.cpu(), mnist.test_images)
                          else "validation" if torch.equal(images.cpu(), validation) else "?")
            return real(model, images, *args, **kwargs)
        return predict

    monkeypatch.setattr(runs, "predict_logits", spy(runs.predict_logits))
    monkeypatch.setattr(engine, "predict_logits", spy(engine.predict_logits))
    metrics = runs.train_run(spec_from_dict(TUNING), cache, tmp_path / "run", label="tune")
    assert scored == ["validation"] * 3  # after each of 2 epochs, then the final score
    assert metrics["scored_on"] == "validation"
    assert metrics["val_total"] == len(val_index) and "test_errors" not in metrics
    assert [set(r) & {"val_errors", "test_errors"} for r in metrics["history"]] == [
        {"val_errors"}, {"val_errors"}]
    assert metrics["transfer_set"]["size"] == len(mnist.train_labels) - len(val_index)


def test_scored_summary_renames_only_for_validation():
    summary = {"test_errors": 3, "test_total": 10, "per_class_errors": [0] * 10}
    assert scored_summary(spec_from_dict(STUDENT), summary) is summary
    renamed = scored_summary(spec_from_dict(TUNING), summary)
    assert renamed["val_errors"] == 3 and renamed["val_total"] == 10
    assert renamed["scored_on"] == "validation" and "test_errors" not in renamed


def test_status_marks_validation_errors():
    job = {"run": "tune", "state": "running", "epoch": 2, "epochs": 4, "loss": 0.5,
           "val_errors": 17, "updated": 0.0}
    assert job_row(job, 1.0)[4] == "17 (val)"
    assert job_row({**job, "val_errors": None, "test_errors": 9}, 1.0)[4] == "9"
