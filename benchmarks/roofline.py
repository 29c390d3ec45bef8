"""Matmul peak of this machine and the FLOPs of section 3's networks (benchmark part 1).

The peak is the best float32 GEMM rate over large square products and the
exact products one training step of the teacher and the student makes
(batch 100, in the orientations autograd calls them). An epoch's roofline is
its FLOPs at that peak: nothing else (dropout, jitter, the optimiser) counts.
"""

from __future__ import annotations

import time

import torch

IN, OUT = 784, 10


def layer_sizes(hidden) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer of a 784-H-...-10 net."""
    sizes = [IN, *hidden, OUT]
    return list(zip(sizes, sizes[1:]))


def step_gemms(hidden, batch: int = 100) -> list[tuple[str, int, int, int, bool, bool]]:
    """(name, m, k, n, transpose_a, transpose_b) of one forward + backward pass.

    Forward: x[B,in] @ W^T. Backward: the weight gradient g^T[out,B] @ x[B,in]
    and, except for the first layer (the input needs no gradient), the input
    gradient g[B,out] @ W[out,in].
    """
    gemms = []
    for i, (a, b) in enumerate(layer_sizes(hidden)):
        gemms.append((f"fwd {a}->{b}", batch, a, b, False, True))
        gemms.append((f"dW {a}->{b}", b, batch, a, True, False))
        if i > 0:
            gemms.append((f"dx {a}->{b}", batch, b, a, False, False))
    return gemms


def epoch_flops(hidden, samples: int = 60_000) -> dict:
    """FLOPs of one epoch: what training computes, and the issue's 3x-forward count."""
    macs = sum(a * b for a, b in layer_sizes(hidden))
    needed = 2 * (3 * macs - IN * hidden[0])  # no input gradient for layer 1
    return {"forward_per_sample": 2 * macs, "train_per_sample": needed,
            "train_per_epoch": needed * samples, "issue_3x_forward_per_epoch": 6 * macs * samples}


def _operands(m: int, k: int, n: int, trans_a: bool, trans_b: bool):
    a = torch.randn(k, m).t() if trans_a else torch.randn(m, k)
    b = torch.randn(n, k).t() if trans_b else torch.randn(k, n)
    return a, b, torch.empty(m, n)


def gemm_gflops(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, budget_s: float,
                rounds: int = 3) -> float:
    """Best GFLOP/s of torch.mm(a, b, out=out) over `rounds` timed loops."""
    flops = 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    torch.mm(a, b, out=out)
    tic = time.perf_counter()
    torch.mm(a, b, out=out)
    reps = max(2, int(budget_s / rounds / max(time.perf_counter() - tic, 1e-6)))
    best = float("inf")
    for _ in range(rounds):
        tic = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        best = min(best, (time.perf_counter() - tic) / reps)
    return flops / best / 1e9


def measure_peak(nets: dict, quick: bool) -> dict:
    """GFLOP/s of square and training-step GEMMs; the best is the peak.

    Every shape is timed in several passes spread over the whole measurement,
    keeping its best: the host's load comes and goes in bursts of seconds
    that the guest cannot see. Also: each net's GEMM-only step time, the floor
    its epoch could reach at the rates its own shapes run at.
    """
    passes, budget = (3, 0.03) if quick else (5, 0.08)
    squares = (1024, 2048) if quick else (1024, 1536, 2048, 3072)
    shapes = {f"square {s}": (s, s, s, False, False) for s in squares}
    for name, hidden in nets.items():
        shapes.update({f"{name} {label}": dims for label, *dims in step_gemms(hidden)})
    operands = {key: _operands(*dims) for key, dims in shapes.items()}
    rates: dict[str, float] = {}
    for _ in range(passes):
        for key, ops in operands.items():
            rates[key] = max(rates.get(key, 0.0), gemm_gflops(*ops, budget_s=budget))
    gemm_step_s = {name: sum(2.0 * m * k * n / rates[f"{name} {label}"] / 1e9
                             for label, m, k, n, _, _ in step_gemms(hidden))
                   for name, hidden in nets.items()}
    best = max(rates, key=rates.get)
    return {"threads": torch.get_num_threads(), "peak_gflops": rates[best], "peak_shape": best,
            "gflops": rates, "gemm_step_seconds": gemm_step_s}


def roofline(nets: dict, peak: dict, samples: int = 60_000, batch: int = 100) -> dict:
    """Each net's epoch FLOPs, roofline seconds at the peak, and GEMM-only floor."""
    out = {}
    for name, hidden in nets.items():
        flops = epoch_flops(hidden, samples)
        out[name] = {"hidden": list(hidden), **flops,
                     "roofline_s": flops["train_per_epoch"] / peak["peak_gflops"] / 1e9,
                     "issue_roofline_s": flops["issue_3x_forward_per_epoch"]
                     / peak["peak_gflops"] / 1e9,
                     "gemm_floor_s": peak["gemm_step_seconds"][name] * samples / batch}
    return out
