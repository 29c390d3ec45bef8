"""Matmul precision (kdrepro.training.precision), its plumbing and the thread policy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from kdrepro import plan
from kdrepro.config import validate_config
from kdrepro.training import precision, threads
from kdrepro.training.engine import TrainConfig, fit
from kdrepro.training.losses import hard_label_loss
from kdrepro.training.models import MLP
from kdrepro.training.precision import gemm_mode, plan_gemm
from kdrepro.training.spec import SpecError, spec_from_dict

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not precision.native_bf16(CPU), reason="no native bf16 CPU")


def _relative_error(x: torch.Tensor, exact: torch.Tensor) -> float:
    return float((x.double() - exact).abs().max() / exact.abs().max())


def test_spec_takes_precision_and_rejects_others():
    assert spec_from_dict({"role": "baseline", "hidden": [10]}).precision == "fp32"
    assert spec_from_dict({"role": "baseline", "hidden": [10], "precision": "bf16"}).precision \
        == "bf16"
    with pytest.raises(SpecError, match="'precision' = 'fp16'.*one of fp32, bf16"):
        spec_from_dict({"role": "baseline", "hidden": [10], "precision": "fp16"})


def test_plan_passes_the_config_precision_to_every_run():
    root = Path(__file__).resolve().parents[1]
    base = yaml.safe_load((root / "config" / "config.yaml").read_text())
    for chosen in ("bf16", "fp32"):
        config = validate_config(plan.merge_config(base, {"precision": chosen}),
                                 root / "workflow" / "schemas" / "config.schema.yaml")
        assert json.loads(plan.student_spec(config, "distilled", 30, 1, 20.0))["precision"] == chosen
        assert json.loads(plan.teacher_spec(config, 1))["precision"] == chosen


def test_fp32_plan_is_exact_and_names_the_blas():
    gemm = plan_gemm("fp32", CPU)
    assert (gemm.precision, gemm.fallback) == ("fp32", None)
    assert gemm.gemm_path == ("mkl" if torch.backends.mkl.is_available() else "blas")
    a, b = torch.randn(64, 300), torch.randn(300, 200)
    with gemm_mode(gemm, CPU):
        assert _relative_error(a @ b, a.double() @ b.double()) < 1e-5


@needs_bf16
def test_bf16_rounds_forward_and_backward_matmuls_and_restores_the_switch():
    gemm = plan_gemm("bf16", CPU)
    assert (gemm.precision, gemm.gemm_path) == ("bf16", "onednn-bf16")
    torch.manual_seed(0)
    a, w = torch.randn(100, 784), torch.randn(300, 784, requires_grad=True)
    grad_out = torch.randn(100, 300)
    before = torch.backends.mkldnn.matmul.fp32_precision
    with gemm_mode(gemm, CPU):
        out = torch.nn.functional.linear(a, w)
        (grad_w,) = torch.autograd.grad(out, w, grad_out)
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    assert out.dtype == grad_w.dtype == torch.float32
    # bf16 keeps 8 significand bits: errors of ~1e-3, far above float32's ~1e-7
    for got, exact in ((out, a.double() @ w.detach().double().t()),
                       (grad_w, grad_out.double().t() @ a.double())):
        assert 1e-4 < _relative_error(got.detach(), exact) < 2e-2


def _train(precision_name: str, thread_count: int = 1) -> tuple[list[float], MLP]:
    torch.set_num_threads(thread_count)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    centres = torch.randint(0, 256, (10, 28, 28), generator=gen).to(torch.uint8)
    labels = torch.arange(10).repeat(60)
    noise = torch.randint(-40, 41, (600, 28, 28), generator=gen)
    images = (centres[labels].int() + noise).clamp(0, 255).to(torch.uint8)
    model = MLP([64, 64], max_norm=3.0)
    with gemm_mode(plan_gemm(precision_name, CPU), CPU):
        history = fit(model, images, [labels], hard_label_loss,
                      TrainConfig(epochs=5, batch_size=50, lr=0.01, jitter=1),
                      torch.Generator().manual_seed(1))
    return [r["loss"] for r in history], model


@needs_bf16
def test_bf16_trains_like_fp32_and_is_bit_reproducible():
    fp32_losses, _ = _train("fp32")
    bf16_losses, model = _train("bf16")
    again, model_again = _train("bf16")
    assert bf16_losses[-1] < 0.3 * bf16_losses[0]  # it learns (chance is ln 10 = 2.3)
    assert bf16_losses[-1] == pytest.approx(fp32_losses[-1], rel=0.2)
    assert bf16_losses != fp32_losses  # the matmuls really were rounded
    assert again == bf16_losses
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model_again.parameters()))


def test_bf16_falls_back_to_fp32_once_where_not_native(monkeypatch, caplog):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="kdrepro.training.precision"):
        first, second = plan_gemm("bf16", CPU), plan_gemm("bf16", CPU)
    assert first == second
    assert (first.precision_requested, first.precision) == ("bf16", "fp32")
    assert "no native bf16" in first.fallback
    assert len([r for r in caplog.records if "training in fp32" in r.message]) == 1
    before = torch.backends.mkldnn.matmul.fp32_precision
    with gemm_mode(first, CPU):
        assert torch.backends.mkldnn.matmul.fp32_precision == before


def test_native_check_needs_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx2"})
    assert not precision.native_bf16(CPU)


def test_thread_policy_leaves_busy_cores_to_others(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    policy = threads.ThreadPolicy(2, adapt=True)
    assert [policy.choose(x) for x in (None, 0.0, 0.5, 0.9, 1.2, 3.0)] == [2, 2, 2, 1, 1, 1]
    assert threads.ThreadPolicy(2, adapt=False).choose(1.5) == 2


def test_thread_policy_adapts_only_when_mkl_is_thread_count_independent(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "AUTO,STRICT")
    assert threads.ThreadPolicy(2).adapt and not threads.ThreadPolicy(1).adapt
    monkeypatch.delenv("MKL_CBWR")
    assert not threads.ThreadPolicy(2).adapt


def test_thread_policy_records_the_counts_it_used():
    policy = threads.ThreadPolicy(1)
    before = torch.get_num_threads()
    try:
        assert [policy.before_epoch() for _ in range(3)] == [1, 1, 1]
    finally:
        torch.set_num_threads(before)
    assert policy.summary() == {"threads_requested": 1, "threads_adaptive": False,
                                "epochs_per_thread_count": {"1": 3}}
