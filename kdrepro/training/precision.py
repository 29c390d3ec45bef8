"""Matmul precision and GEMM path of a run: exact float32, or bf16 mixed precision.

`fp32`: every product in IEEE float32. On CPU torch sends float32 matmuls to
the BLAS it was built with (MKL in the pip wheels); oneDNN's float32 kernels
are reachable only through mkldnn-layout tensors (an inference API), so the
BLAS *is* the fastest exact float32 path a training step can take (the rule;
benchmarks/README.md has the figures).

`bf16`: mixed precision. Only the matmuls (forward and both backward
products) round their inputs to bfloat16 and accumulate in float32; weights,
activations, dropout masks, optimiser state, loss and max-norm stay float32.
On CPU this is oneDNN's bf16 GEMM, switched on for float32 tensors with
`torch.backends.mkldnn.matmul.fp32_precision = "bf16"`; on CUDA it is
`torch.autocast` with its weight-cast cache off (with the cache on, an
autocast region around many optimiser steps keeps reusing the bf16 copies of
the *first* step's weights, so the network never learns; docs/tuning.md).
bf16 runs only where the hardware does it natively (x86 avx512_bf16 or AMX,
a CUDA GPU with bf16); elsewhere the run falls back to fp32, says so once and
records it in the manifest.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class GemmPlan:
    """What a run asked for and what it gets: recorded in its manifest."""

    precision_requested: str
    precision: str
    gemm_path: str
    fallback: str | None = None

    def fields(self) -> dict:
        """Manifest fields."""
        return asdict(self)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is absent."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 natively (not emulated in float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if not torch.backends.mkldnn.is_available():
        return False
    # torch's own check accepts plain AVX-512 (bf16 emulated, slower than fp32): ask for the flags
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()
                and cpu_flags() & set(NATIVE_BF16_FLAGS))


def fp32_gemm_path(device: torch.device) -> str:
    """Name of the library that runs exact float32 matmuls on `device`."""
    if device.type == "cuda":
        return "cublas"
    return "mkl" if torch.backends.mkl.is_available() else "blas"


def plan_gemm(requested: str, device: torch.device) -> GemmPlan:
    """The run's precision and GEMM path; bf16 falls back to fp32 where not native."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if requested == "fp32":
        return GemmPlan("fp32", "fp32", fp32_gemm_path(device))
    if native_bf16(device):
        return GemmPlan("bf16", "bf16", "cublas-bf16" if device.type == "cuda" else "onednn-bf16")
    reason = f"{device.type} has no native bf16 matmul ({'/'.join(NATIVE_BF16_FLAGS)})"
    if reason not in _warned:  # once per process, not once per run of a block
        _warned.add(reason)
        log.warning("precision bf16 asked for, but %s: training in fp32 instead", reason)
    return GemmPlan("bf16", "fp32", fp32_gemm_path(device), fallback=reason)


@contextlib.contextmanager
def gemm_mode(plan: GemmPlan, device: torch.device):
    """Run the enclosed training and evaluation with `plan`'s matmul precision."""
    if plan.precision == "fp32":
        yield
        return
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            yield
        return
    matmul = torch.backends.mkldnn.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        matmul.fp32_precision = before
