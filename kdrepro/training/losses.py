"""Training objectives: hard-label cross-entropy and the distillation loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's softmax at temperature T: p_i = exp(v_i/T) / sum_j exp(v_j/T)."""
    check_temperature(temperature)
    return torch.softmax(teacher_logits.float() / temperature, dim=1)


def check_temperature(temperature: float) -> None:
    """Reject T <= 0 (and non-numbers) with one clear line."""
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")


def distillation_loss(student_logits: torch.Tensor, target_probs: torch.Tensor,
                      labels: torch.Tensor | None, temperature: float,
                      hard_weight: float = 0.0, soft_weight: float = 1.0) -> torch.Tensor:
    """Soft-target cross-entropy at temperature T, scaled by T^2, plus hard labels.

    Hinton, Vinyals & Dean (2015), section 2:

        L = s * T^2 * mean_batch( -sum_i p_i log q_i )  +  w * CE(z, y)

    where q_i = softmax(z/T)_i is the student's and p_i = softmax(v/T)_i the
    teacher's distribution at temperature T (`target_probs`), and the second
    term is the ordinary cross-entropy with the correct labels at T = 1 with
    weight w = `hard_weight` (s = `soft_weight`, 1 in the paper; the 2020 blog used
    s = 0.7, w = 0.3 with KL(p || q), which differs from the cross-entropy here
    by s * T^2 * mean entropy of p, a constant). For one example the soft term's gradient is
    dL/dz_i = T^2 * (1/T)(q_i - p_i) = T (q_i - p_i): the T^2 factor keeps
    the soft gradients' magnitude roughly independent of T, as the paper
    prescribes ("multiply them by T^2"). Cross-entropy and KL(p || q) differ
    only by the teacher's entropy, a constant, so their gradients agree.
    """
    check_temperature(temperature)
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    soft = -(target_probs * log_q).sum(dim=1).mean() * temperature**2
    if soft_weight != 1.0:
        soft = soft_weight * soft
    if hard_weight and labels is not None:
        return soft + hard_weight * F.cross_entropy(student_logits, labels)
    return soft


def hard_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy with the correct labels (teacher and baseline student)."""
    return F.cross_entropy(logits, labels)
