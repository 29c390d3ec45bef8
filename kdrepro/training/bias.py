"""Shifting output biases of the classes a transfer set lacked (section 3).

The paper raises the bias of class 3 by 3.5 after distilling without any 3,
and lowers the biases of 7 and 8 by 7.6 after distilling on only 7s and 8s.
Only those classes' biases move. Adding a constant to a class's output bias
adds it to that class's logit for every input, so the sweep works on logits
computed once. Three protocols pick the shift: the paper's value, the shift
with fewest test errors (the paper's own protocol: tuned on the test set),
and the shift with fewest errors on a validation split held out of training.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from kdrepro.training.engine import error_summary

SELECTED_BY = {
    "as_trained": "no shift",
    "paper": "the paper's published value",
    "test_tuned": "fewest test errors (the paper's protocol; tuned on the test set)",
    "validation": "fewest errors on the held-out validation split",
    "all_set": "all ten output biases set to one value (the 2020 blog; not the paper's method)",
}


def shift_logits(logits: torch.Tensor, classes: Sequence[int], shift: float) -> torch.Tensor:
    """`logits` with `shift` added to the columns of `classes` only."""
    offset = torch.zeros(logits.shape[1], dtype=logits.dtype, device=logits.device)
    offset[list(classes)] = shift
    return logits + offset


MAX_SHIFTS = 10_000


def shift_grid(start: float, stop: float, step: float) -> list[float]:
    """Shifts from start up to stop (inclusive when on the grid), rounded against drift."""
    if not all(math.isfinite(v) for v in (start, stop, step)) or step <= 0 or stop < start:
        raise ValueError(f"bias sweep {start}:{stop}:{step} is invalid: expected finite "
                         "START <= STOP and STEP > 0")
    count = math.floor((stop - start) / step + 1e-6) + 1
    if count > MAX_SHIFTS:
        raise ValueError(f"bias sweep {start}:{stop}:{step} has {count} shifts; at most "
                         f"{MAX_SHIFTS} are allowed")
    return [round(start + i * step, 6) for i in range(count)]


def _errors(logits, labels, classes) -> tuple[int, int]:
    wrong = logits.argmax(1) != labels
    in_classes = torch.isin(labels, torch.tensor(list(classes), device=labels.device))
    return int(wrong.sum()), int((wrong & in_classes).sum())


def sweep(test: tuple, validation: tuple | None, classes: Sequence[int],
          shifts: Sequence[float]) -> list[dict]:
    """Errors (all, and on `classes`) for each shift, on test and validation logits."""
    rows = []
    for shift in shifts:
        row = {"shift": shift}
        row["test_errors"], row["test_errors_in_classes"] = _errors(
            shift_logits(test[0], classes, shift), test[1], classes)
        if validation is not None:
            row["val_errors"], row["val_errors_in_classes"] = _errors(
                shift_logits(validation[0], classes, shift), validation[1], classes)
        rows.append(row)
    return rows


def best_shift(rows: list[dict], key: str) -> float:
    """The shift with the fewest `key` errors; ties go to the smallest |shift|."""
    return min(rows, key=lambda r: (r[key], abs(r["shift"]), r["shift"]))["shift"]


def protocol(name: str, shift: float, test: tuple, classes: Sequence[int]) -> dict:
    """Test-set evaluation of one chosen shift."""
    summary = error_summary(shift_logits(test[0], classes, shift), test[1])
    in_classes = sum(summary["per_class_errors"][c] for c in classes)
    class_total = sum(summary["per_class_total"][c] for c in classes)
    return {"shift": shift, "selected_by": SELECTED_BY[name], **summary,
            "errors_in_classes": in_classes, "class_total": class_total}


def set_all_biases(logits: torch.Tensor, output_bias: torch.Tensor, value: float) -> torch.Tensor:
    """`logits` as if every output bias were `value` (the 2020 blog's protocol).

    One value for all ten classes shifts every logit alike, so it cannot change an
    arg-max: the result equals dropping the output biases. It is reported as the
    blog did it, with that caveat, never as the paper's shift.
    """
    return logits - output_bias.to(logits) + value


def all_set_protocol(test: tuple, classes: Sequence[int], output_bias: torch.Tensor,
                     value: float) -> dict:
    """Test-set evaluation with every output bias set to `value`."""
    logits = set_all_biases(test[0], output_bias, value)
    result = protocol("as_trained", 0.0, (logits, test[1]), classes)
    return {**result, "shift": None, "bias_value": value, "selected_by": SELECTED_BY["all_set"]}


def bias_experiment(test: tuple, validation: tuple | None, classes: Sequence[int],
                    paper_shift: float, shifts: Sequence[float], *,
                    set_all: tuple[torch.Tensor, float] | None = None) -> dict:
    """The sweep and the four protocols (as trained, paper, test-tuned, validation), and
    with `set_all` = (output bias, value) the blog's all-biases protocol."""
    if not math.isfinite(paper_shift):
        raise ValueError(f"paper shift {paper_shift} is invalid: expected a finite number")
    rows = sweep(test, validation, classes, shifts)
    chosen = {"as_trained": 0.0, "paper": paper_shift,
              "test_tuned": best_shift(rows, "test_errors")}
    if validation is not None:
        chosen["validation"] = best_shift(rows, "val_errors")
    protocols = {k: protocol(k, s, test, classes) for k, s in chosen.items()}
    if set_all is not None:
        protocols["all_set"] = all_set_protocol(test, classes, *set_all)
    return {"classes": list(classes), "paper_shift": paper_shift, "sweep": rows,
            "protocols": protocols}
