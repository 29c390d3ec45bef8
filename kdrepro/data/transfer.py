"""Transfer sets and the validation split of section 3's experiments.

Section 3 distils students on transfer sets that omit the 3s or hold only 7s
and 8s; a stratified validation split held out of them lets a bias shift be
chosen without looking at the test set.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from kdrepro.data.mnist import NUM_CLASSES, DataError


def _check_classes(classes: Sequence[int], what: str) -> list[int]:
    """Validate class ids 0..9 (bools and non-integers rejected); return them sorted."""
    values = set()
    for c in classes:
        try:
            value = -1 if isinstance(c, bool) else operator.index(c)
        except TypeError:
            value = -1
        if not 0 <= value < NUM_CLASSES:
            raise DataError(f"{what}: class {c!r} is not a digit class 0..9")
        values.add(value)
    return sorted(values)


def class_indices(labels: torch.Tensor, *, omit: Sequence[int] = (),
                  keep: Sequence[int] = ()) -> torch.Tensor:
    """Sorted int64 indices of the examples in the transfer set.

    Section 3 trains students on transfer sets that omit the 3s (``omit=(3,)``) or contain
    only 7s and 8s (``keep=(7, 8)``). At most one of ``omit``/``keep`` may be given.
    """
    omit, keep = _check_classes(omit, "omit"), _check_classes(keep, "keep")
    if omit and keep:
        raise DataError(f"give omit {omit} or keep {keep}, not both")
    chosen = keep if keep else [c for c in range(NUM_CLASSES) if c not in omit]
    if not chosen:
        raise DataError("omitting every class leaves an empty transfer set")
    mask = torch.isin(labels, torch.tensor(chosen, dtype=labels.dtype))
    indices = torch.nonzero(mask).flatten().long()
    if len(indices) == 0:
        raise DataError(f"no examples of classes {chosen} in {len(labels)} labels: the transfer "
                        "set would be empty")
    return indices


def validation_split(labels: torch.Tensor, fraction: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): sorted int64, stratified, deterministic for (labels, fraction, seed).

    Each class c gives ``round(fraction * count_c)`` random examples to validation, drawn with a
    local ``torch.Generator`` seeded by ``seed`` (the global RNG is untouched).
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction {fraction!r} is not in the open interval (0, 1)")
    generator = torch.Generator().manual_seed(int(seed))
    val_parts = []
    for c in torch.unique(labels, sorted=True).tolist():
        members = torch.nonzero(labels == c).flatten()
        take = round(fraction * len(members))
        val_parts.append(members[torch.randperm(len(members), generator=generator)[:take]])
    val = torch.sort(torch.cat(val_parts)).values.long() if val_parts else torch.empty(0).long()
    in_val = torch.zeros(len(labels), dtype=torch.bool)
    in_val[val] = True
    train = torch.nonzero(~in_val).flatten().long()
    if len(val) == 0 or len(train) == 0:
        raise DataError(f"validation fraction {fraction} of {len(labels)} labels leaves "
                        f"{len(train)} training and {len(val)} validation examples")
    return train, val
