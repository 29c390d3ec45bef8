"""Tests of kdrepro.training.losses: golden values and gradients of the distillation loss (section 2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdrepro.training.losses import (
    check_temperature,
    distillation_loss,
    hard_label_loss,
    soft_targets,
)

# Fixed, hand-checkable inputs: two examples, three classes, T = 2.
STUDENT = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]
TARGET_PROBS = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
LABELS = [2, 0]
T = 2.0

# Golden values, computed once in float64 with the standard library only:
#   x = z / T;  log q_i = x_i - logsumexp(x);  CE_row = -sum_i p_i log q_i
#   row 1: x = [0.5, 1, 1.5], logsumexp = 1.5 + log(1 + e^-0.5 + e^-1) = 2.1802...,
#          CE = logsumexp - sum_i p_i x_i = 2.1802... - 0.7
#   row 2: x = 0, q uniform, CE = log 3
#   SOFT = T^2 * (CE_1 + CE_2) / 2
#   HARD = mean over rows of logsumexp(z) - z_y (T = 1, labels [2, 0])
#        = ((3 + log(1 + e^-1 + e^-2)) - 3 + log 3) / 2
SOFT = 5.15776391861969
HARD = 0.7531091265562452


def tensors(dtype=torch.float64):
    z = torch.tensor(STUDENT, dtype=dtype, requires_grad=True)
    return z, torch.tensor(TARGET_PROBS, dtype=dtype), torch.tensor(LABELS)


def test_golden_values_match_the_stdlib_computation():
    # Re-derive the literals independently of torch, so a typo in them cannot hide.
    def lse(xs):
        m = max(xs)
        return m + math.log(sum(math.exp(v - m) for v in xs))

    ce = [lse([v / T for v in z]) - sum(p * v / T for p, v in zip(ps, z))
          for z, ps in zip(STUDENT, TARGET_PROBS)]
    assert T * T * sum(ce) / 2 == pytest.approx(SOFT, abs=1e-12)
    hard = sum(lse(z) - z[y] for z, y in zip(STUDENT, LABELS)) / 2
    assert hard == pytest.approx(HARD, abs=1e-12)


def test_soft_term_equals_golden_value():
    z, p, y = tensors()
    loss = distillation_loss(z, p, y, T)  # hard_weight defaults to 0: soft term only
    assert loss.item() == pytest.approx(SOFT, abs=1e-10)


def test_soft_term_in_float32():
    z, p, y = tensors(torch.float32)
    assert distillation_loss(z, p, y, T).item() == pytest.approx(SOFT, rel=1e-6)


@pytest.mark.parametrize("weight", [0.5, 1.0, 3.0])
def test_hard_label_term_is_added_with_its_weight(weight):
    z, p, y = tensors()
    loss = distillation_loss(z, p, y, T, hard_weight=weight)
    assert loss.item() == pytest.approx(SOFT + weight * HARD, abs=1e-10)


def test_hard_weight_without_labels_is_soft_only():
    z, p, _ = tensors()
    assert distillation_loss(z, p, None, T, hard_weight=2.0).item() == pytest.approx(SOFT)


def test_hard_label_loss_is_cross_entropy_at_t1():
    z, _, y = tensors()
    assert hard_label_loss(z, y).item() == pytest.approx(HARD, abs=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0, 20.0])
def test_gradient_is_t_times_q_minus_p_over_batch(temperature):
    """Paper section 2: dC/dz_i = (1/T)(q_i - p_i), times T^2 for the loss; mean over batch."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(5, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(torch.randn(5, 10, generator=gen, dtype=torch.float64) * 3, dim=1)
    distillation_loss(z, p, None, temperature).backward()
    q = torch.softmax(z.detach() / temperature, dim=1)
    expected = temperature**2 * (1 / temperature) * (q - p) / len(z)
    torch.testing.assert_close(z.grad, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(z.grad, temperature * (q - p) / len(z), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_gradient_equals_kl_divergence_gradient(temperature):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    p = torch.softmax(torch.randn(6, 10, generator=gen, dtype=torch.float64), dim=1)
    z1 = logits.clone().requires_grad_(True)
    z2 = logits.clone().requires_grad_(True)
    ce = distillation_loss(z1, p, None, temperature)
    ce.backward()
    kl = F.kl_div(F.log_softmax(z2 / temperature, dim=1), p, reduction="batchmean")
    (kl * temperature**2).backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-10, atol=1e-12)
    # The two losses differ by T^2 times the teacher's mean entropy, a constant.
    entropy = -(p * p.log()).sum(1).mean()
    assert (ce - kl * temperature**2).item() == pytest.approx(
        (temperature**2 * entropy).item(), abs=1e-10)


def test_hard_term_gradient_is_softmax_minus_onehot():
    z, p, y = tensors()
    distillation_loss(z, p, y, T, hard_weight=1.0).backward()
    q_t = torch.softmax(z.detach() / T, dim=1)
    q_1 = torch.softmax(z.detach(), dim=1)
    onehot = F.one_hot(y, 3).double()
    expected = (T * (q_t - p) + (q_1 - onehot)) / len(z)
    torch.testing.assert_close(z.grad, expected, rtol=1e-10, atol=1e-12)


def test_loss_is_minimised_when_student_matches_teacher():
    gen = torch.Generator().manual_seed(2)
    teacher = torch.randn(4, 10, generator=gen, dtype=torch.float64)
    p = soft_targets(teacher, 3.0).double()
    z = teacher.clone().requires_grad_(True)
    distillation_loss(z, p, None, 3.0).backward()
    assert z.grad.abs().max().item() < 1e-6


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.5, float("nan"), "2", None])
def test_nonpositive_or_non_numeric_temperature_raises_naming_value(bad):
    z, p, y = tensors()
    for call in (lambda: distillation_loss(z, p, y, bad),
                 lambda: soft_targets(z.detach(), bad),
                 lambda: check_temperature(bad)):
        with pytest.raises(ValueError) as info:
            call()
        assert repr(bad) in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 20.0, 1000.0])
def test_soft_targets_are_tempered_softmax_rows_summing_to_one(temperature):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(8, 10, generator=gen) * 10
    probs = soft_targets(logits, temperature)
    assert probs.shape == logits.shape
    assert probs.dtype == torch.float32
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(8), rtol=0, atol=1e-6)
    torch.testing.assert_close(probs, torch.softmax(logits / temperature, dim=1))


def test_soft_targets_flatten_with_temperature_and_keep_argmax():
    logits = torch.tensor([[5.0, 1.0, 0.0, -3.0]])
    entropies = []
    for temperature in (1.0, 2.0, 5.0, 20.0):
        probs = soft_targets(logits, temperature)
        assert probs.argmax(1).item() == 0
        entropies.append(-(probs * probs.log()).sum().item())
    assert entropies == sorted(entropies)
    assert entropies[-1] > 0.95 * math.log(4)


def test_soft_targets_accept_half_precision_logits():
    logits = torch.randn(3, 10).half()
    probs = soft_targets(logits, 2.0)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(3), rtol=0, atol=1e-6)
