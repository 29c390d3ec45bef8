"""A teacher evaluated on each training batch, as the 2020 blog distils.

Section 3 distils from soft targets of the unjittered transfer set, computed
once (kdrepro.training.soft_targets). The 2020 blog instead feeds the same
augmented batch to teacher and student, so the targets follow the jitter.
`fit` calls a callable target with the batch's inputs (kdrepro.training.engine).
"""

from __future__ import annotations

import torch

from kdrepro.training.losses import soft_targets
from kdrepro.training.models import MLP


class LiveTeacher:
    """Soft targets at temperature T of a frozen teacher (eval mode) on given inputs."""

    def __init__(self, teacher: MLP, temperature: float):
        self.teacher = teacher.eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.temperature = temperature

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        probs = soft_targets(self.teacher(inputs), self.temperature)
        if not torch.isfinite(probs).all():
            raise ValueError(f"the live teacher's soft targets at temperature "
                             f"{self.temperature:g} are not finite; choose a larger temperature")
        return probs
