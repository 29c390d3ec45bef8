"""What a run is scored on: the test set, or (tuning runs) the validation split.

The brief's rule: recipes are chosen on a validation split of the training set and
the test set is read only for the final score. A spec with `scored_on: validation`
holds `validation_fraction` of each class out of training and scores that split
after every epoch and at the end, so a tuning run never touches the test set.
"""

from __future__ import annotations

import torch

from kdrepro.data.mnist import MNIST
from kdrepro.data.transfer import validation_split
from kdrepro.training.spec import RunSpec


def scoring_set(spec: RunSpec, mnist: MNIST) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) a run is scored on: the test set, or for a tuning run
    (`scored_on: validation`) the held-out validation split, so that choosing a
    recipe never reads the test set."""
    if spec.scored_on != "validation":
        return mnist.test_images, mnist.test_labels
    return validation_set(spec, mnist)


def validation_set(spec: RunSpec, mnist: MNIST) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the spec's held-out validation split (validation_fraction > 0)."""
    _, val_index = validation_split(mnist.train_labels, spec.validation_fraction,
                                    spec.validation_seed)
    return mnist.train_images[val_index], mnist.train_labels[val_index]


def scored_summary(spec: RunSpec, summary: dict) -> dict:
    """A tuning run's totals are named val_* (and `wrong_indices` index the split)."""
    if spec.scored_on != "validation":
        return summary
    renamed = {"test_errors": "val_errors", "test_total": "val_total"}
    return {"scored_on": "validation", **{renamed.get(k, k): v for k, v in summary.items()}}
