"""Tests of kdrepro.training.bias: shifting the output biases of classes a transfer set lacked."""

from __future__ import annotations

import math

import pytest
import torch

from kdrepro.training.bias import (
    SELECTED_BY,
    best_shift,
    bias_experiment,
    protocol,
    shift_grid,
    shift_logits,
    sweep,
)
from kdrepro.training.engine import error_summary

PROTOCOL_KEYS = {"shift", "selected_by", "test_errors", "test_total", "errors_in_classes",
                 "class_total", "per_class_errors", "per_class_total", "confusion",
                 "wrong_indices"}


# ---------------------------------------------------------------- shift_logits


@pytest.mark.parametrize("classes,shift", [([3], 3.5), ([7, 8], -7.6), ([0, 9], 1.0), ([], 2.0)])
def test_shift_logits_moves_only_the_chosen_columns(classes, shift):
    logits = torch.randn(20, 10, generator=torch.Generator().manual_seed(0))
    original = logits.clone()
    out = shift_logits(logits, classes, shift)
    assert torch.equal(logits, original)  # not in place
    assert out.shape == logits.shape and out.dtype == logits.dtype
    others = [c for c in range(10) if c not in classes]
    assert torch.equal(out[:, others], logits[:, others])
    for c in classes:
        torch.testing.assert_close(out[:, c], logits[:, c] + shift, rtol=0, atol=1e-6)


def test_shift_logits_zero_is_identity_and_float64_kept():
    logits = torch.randn(5, 10, dtype=torch.float64)
    out = shift_logits(logits, [3], 0.0)
    assert out.dtype == torch.float64 and torch.equal(out, logits)


# ---------------------------------------------------------------- shift_grid


def test_shift_grid_is_inclusive_and_exact():
    assert shift_grid(0, 1, 0.1) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    grid = shift_grid(-2.0, 10.0, 0.25)
    assert len(grid) == 49 and grid[0] == -2.0 and grid[-1] == 10.0
    assert grid == [-2.0 + 0.25 * i for i in range(49)]
    keep = shift_grid(-15.0, 2.0, 0.25)
    assert keep[0] == -15.0 and keep[-1] == 2.0 and -7.5 in keep and 0.0 in keep
    assert shift_grid(-1.2, 1.2, 0.3) == [-1.2, -0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9, 1.2]
    assert shift_grid(3.5, 3.5, 0.25) == [3.5]


@pytest.mark.parametrize("args", [(0, 1, 0), (0, 1, -0.5), (1, 0, 0.25)])
def test_shift_grid_rejects_bad_ranges(args):
    with pytest.raises(ValueError) as info:
        shift_grid(*args)
    assert str(args[1]) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("args", [(0, 1, 0.35), (-2, 10, 0.95), (-10, 10, 0.3)])
def test_shift_grid_never_exceeds_stop(args):
    start, stop, step = args
    grid = shift_grid(start, stop, step)
    assert grid[0] == start and all(start <= s <= stop for s in grid)
    assert len(grid) == math.floor((stop - start) / step + 1e-6) + 1


# ---------------------------------------------------------------- best_shift


def rows_with(errors: dict[float, int], key: str = "test_errors") -> list[dict]:
    return [{"shift": s, key: e} for s, e in errors.items()]


def test_best_shift_takes_fewest_errors():
    assert best_shift(rows_with({-1.0: 9, 0.0: 7, 2.5: 3, 3.0: 4}), "test_errors") == 2.5


def test_best_shift_ties_go_to_smallest_magnitude_then_smallest_value():
    assert best_shift(rows_with({-2.0: 3, -1.0: 3, 1.5: 3, 2.0: 3}), "test_errors") == -1.0
    assert best_shift(rows_with({-1.0: 3, 0.0: 3, 1.0: 3}), "test_errors") == 0.0
    assert best_shift(rows_with({-0.5: 3, 0.5: 3}), "test_errors") == -0.5
    assert best_shift(rows_with({0.5: 3, -0.5: 3}), "test_errors") == -0.5  # order-free


def test_best_shift_uses_the_given_key():
    rows = [{"shift": 1.0, "test_errors": 1, "val_errors": 5},
            {"shift": 2.0, "test_errors": 4, "val_errors": 2}]
    assert best_shift(rows, "test_errors") == 1.0
    assert best_shift(rows, "val_errors") == 2.0


# ---------------------------------------------------------------- synthetic experiments


def omit_split(low: float, high: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, callable]:
    """Logits whose class-3 column is too low: only shifts in (low, high) give no errors.

    A 3 is right iff 0 + shift > its runner-up r (r <= low); any other digit is right iff
    its own logit t beats t - m + shift, i.e. shift < m (m >= high). Returns the logits,
    labels and the exact (errors, errors on 3s) as a function of the shift.
    """
    g = torch.Generator().manual_seed(seed)
    runner_ups = [low - 1.3, low - 0.8, low - 0.35, low]
    margins = [high, high + 0.3, high + 1.2, high + 2.8, high + 0.05]
    rows, labels = [], []
    for i, r in enumerate(runner_ups):
        row = torch.full((10,), -10.0)
        row[3], row[[0, 1, 2, 4, 5, 6, 7, 8, 9][i % 9]] = 0.0, r
        rows.append(row)
        labels.append(3)
    others = [c for c in range(10) if c != 3]
    for i in range(18):
        c = others[i % 9]
        t = float(torch.rand((), generator=g) * 4)
        row = torch.full((10,), -10.0)
        row[c], row[3] = t, t - margins[i % len(margins)]
        rows.append(row)
        labels.append(c)

    def errors(shift: float) -> tuple[int, int]:
        in_class = sum(shift <= r for r in runner_ups)
        other = sum(shift >= margins[i % len(margins)] for i in range(18))
        return in_class + other, in_class

    return torch.stack(rows), torch.tensor(labels), errors


def test_sweep_counts_errors_exactly():
    logits, labels, errors = omit_split(1.9, 2.1, seed=0)
    val_logits, val_labels, val_errors = omit_split(2.9, 3.1, seed=1)
    shifts = shift_grid(-1.0, 5.0, 0.25)
    rows = sweep((logits, labels), (val_logits, val_labels), [3], shifts)
    assert [r["shift"] for r in rows] == shifts
    for row in rows:
        assert (row["test_errors"], row["test_errors_in_classes"]) == errors(row["shift"])
        assert (row["val_errors"], row["val_errors_in_classes"]) == val_errors(row["shift"])
    assert all(set(r) == {"shift", "test_errors", "test_errors_in_classes"}
               for r in sweep((logits, labels), None, [3], shifts))


def test_bias_experiment_recovers_the_known_shift_for_both_protocols():
    logits, labels, _ = omit_split(1.9, 2.1, seed=0)  # test: only 2.0 on the grid is perfect
    val_logits, val_labels, _ = omit_split(2.9, 3.1, seed=1)  # validation: only 3.0
    result = bias_experiment((logits, labels), (val_logits, val_labels), [3], 3.5,
                             shift_grid(-1.0, 5.0, 0.25))
    assert result["classes"] == [3] and result["paper_shift"] == 3.5
    assert len(result["sweep"]) == 25
    protocols = result["protocols"]
    assert list(protocols) == ["as_trained", "paper", "test_tuned", "validation"]
    shifts = {name: p["shift"] for name, p in protocols.items()}
    assert shifts == {"as_trained": 0.0, "paper": 3.5, "test_tuned": 2.0, "validation": 3.0}
    assert protocols["test_tuned"]["test_errors"] == 0
    assert protocols["as_trained"]["test_errors"] == 4  # the four 3s
    assert protocols["as_trained"]["errors_in_classes"] == 4
    assert protocols["validation"]["test_errors"] > 0  # chosen on validation, scored on test
    for name, p in protocols.items():
        assert set(p) == PROTOCOL_KEYS, name
        assert p["selected_by"] == SELECTED_BY[name]
        assert p["class_total"] == 4 and p["test_total"] == len(labels)
        expected = error_summary(shift_logits(logits, [3], p["shift"]), labels)
        for key in ("test_errors", "per_class_errors", "per_class_total", "confusion",
                    "wrong_indices"):
            assert p[key] == expected[key], (name, key)
        assert p["errors_in_classes"] == expected["per_class_errors"][3]


def test_bias_experiment_without_validation_has_three_protocols():
    logits, labels, _ = omit_split(1.9, 2.1, seed=0)
    result = bias_experiment((logits, labels), None, [3], 3.5, shift_grid(-1.0, 5.0, 0.25))
    assert list(result["protocols"]) == ["as_trained", "paper", "test_tuned"]
    assert result["protocols"]["test_tuned"]["shift"] == 2.0
    assert all("val_errors" not in row for row in result["sweep"])


def keep_split() -> tuple[torch.Tensor, torch.Tensor]:
    """Columns 7 and 8 too high: only shifts in (-5.4, -5.1) give no errors."""
    rows, labels = [], []
    for i, (c, gap) in enumerate([(7, 5.4), (8, 5.6), (7, 6.0), (8, 8.0)]):
        row = torch.full((10,), -10.0)
        row[c], row[(c + 1 + i) % 7] = 0.0, -gap  # runner-up outside 7, 8
        rows.append(row)
        labels.append(c)
    for i, excess in enumerate([5.1, 4.0, 2.5, 0.3, 4.9, 5.05]):
        c = i % 7
        row = torch.full((10,), -10.0)
        row[c], row[7 + i % 2] = 1.0, 1.0 + excess
        rows.append(row)
        labels.append(c)
    return torch.stack(rows), torch.tensor(labels)


def test_bias_experiment_two_classes_negative_shift():
    logits, labels = keep_split()
    result = bias_experiment((logits, labels), None, [7, 8], -7.6, shift_grid(-8, 1, 0.25))
    p = result["protocols"]
    assert p["as_trained"]["test_errors"] == 6
    assert p["as_trained"]["errors_in_classes"] == 0 and p["as_trained"]["class_total"] == 4
    assert p["test_tuned"]["shift"] == -5.25 and p["test_tuned"]["test_errors"] == 0
    assert p["paper"]["shift"] == -7.6
    assert p["paper"]["errors_in_classes"] == 3  # too far: 7s and 8s with gap < 7.6 are lost


def test_protocol_counts_in_class_errors():
    logits, labels, errors = omit_split(1.9, 2.1, seed=0)
    result = protocol("paper", 1.0, (logits, labels), [3])
    assert result["selected_by"] == SELECTED_BY["paper"]
    assert (result["test_errors"], result["errors_in_classes"]) == errors(1.0)


def test_selected_by_documents_four_protocols_and_the_blogs():
    assert set(SELECTED_BY) == {"as_trained", "paper", "test_tuned", "validation", "all_set"}
