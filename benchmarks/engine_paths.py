"""Benchmark parts 6-7 (issue 12): GEMM path and precision, and the teacher under load.

6. A teacher epoch with kdrepro's train_epoch in plain float32 (MKL), in
   bf16 mixed precision (oneDNN), and on the default engine path (the
   config's `precision`, after the native-bf16 check); and a competent
   plain-PyTorch in-memory loop (nn.Dropout, gather-based jitter, renorm_,
   default SGD) in float32, the yardstick a reader would write themselves.
7. The same default-path teacher epoch quiet, then beside one busy process
   (a spinning loop pinned to one core), with the engine's thread policy
   (kdrepro.training.threads) and, for comparison, with a fixed thread count.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from kdrepro.data.mnist import normalize
from kdrepro.training.losses import hard_label_loss
from kdrepro.training.precision import gemm_mode, plan_gemm
from kdrepro.training.threads import ThreadPolicy

CPU = torch.device("cpu")


def _plain_model(teacher: dict) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(teacher["input_dropout"])]
    width = 784
    for h in teacher["hidden"]:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(teacher["hidden_dropout"])]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _shift_index(jitter: int) -> torch.Tensor:
    """[S, 784] gather indices of every (dy, dx) shift, clamped at the border."""
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    out = []
    for dy in range(-jitter, jitter + 1):
        for dx in range(-jitter, jitter + 1):
            out.append(((rows + dy).clamp(0, 27) * 28 + (cols + dx).clamp(0, 27)).view(-1))
    return torch.stack(out)


def plain_epoch_runner(teacher: dict, images: torch.Tensor, labels: torch.Tensor):
    """A `make_run` for best_epoch_seconds: the plain in-memory PyTorch loop."""
    cfg = teacher["train"]
    flat = normalize(images).view(len(images), -1)
    shifts = _shift_index(cfg.jitter)

    def make_run():
        torch.manual_seed(1)
        model = _plain_model(teacher)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum_at(0))

        def epoch():
            model.train()
            for index in torch.randperm(len(labels)).split(cfg.batch_size):
                pick = shifts[torch.randint(len(shifts), (len(index),))]
                x = flat[index].gather(1, pick)
                loss = F.cross_entropy(model(x), labels[index])
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for layer in model:
                        if isinstance(layer, nn.Linear):
                            layer.weight.renorm_(2, 0, teacher["max_norm"])
        epoch_on(model, opt, flat[:300], labels[:300], shifts, cfg)  # warm-up
        return epoch
    return make_run


def epoch_on(model, opt, flat, labels, shifts, cfg) -> None:
    for index in torch.arange(len(labels)).split(cfg.batch_size):
        x = flat[index].gather(1, shifts[torch.zeros(len(index), dtype=torch.long)])
        loss = F.cross_entropy(model(x), labels[index])
        opt.zero_grad()
        loss.backward()
        opt.step()


def part_precision(setup, mnist, rows: int, repeats: int, time_epoch, kd_epoch) -> dict:
    """Teacher epoch: fp32 MKL, bf16, the default path; the plain loop (fp32)."""
    teacher = setup["teacher"]
    images, labels = mnist.train_images[:rows], mnist.train_labels[:rows]
    default = plan_gemm(setup.get("precision", "fp32"), CPU)
    paths = {"fp32_mkl_s": plan_gemm("fp32", CPU), "bf16_s": plan_gemm("bf16", CPU),
             "default_s": default}
    result = {"rows_timed": rows, "default_precision": default.precision,
              "default_gemm_path": default.gemm_path, "bf16_native": paths["bf16_s"].fallback is None}
    run = kd_epoch(teacher, images, [labels], hard_label_loss)
    for _ in range(repeats):  # interleaved, so outside load hits every variant alike
        for name, gemm in paths.items():
            with gemm_mode(gemm, CPU):
                result[name] = min(result.get(name, float("inf")), time_epoch(run, rows, 1))
        result["plain_pytorch_s"] = min(result.get("plain_pytorch_s", float("inf")), time_epoch(
            plain_epoch_runner(teacher, images, labels), rows, 1))
    result["speedup_vs_fp32_mkl"] = result["fp32_mkl_s"] / result["default_s"]
    result["speedup_vs_plain"] = result["plain_pytorch_s"] / result["default_s"]
    return result


def _spin(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    while True:
        pass


class BusyCore:
    """A spinning process pinned to the last usable core, for the `with` block."""

    def __enter__(self):
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
        context = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        self.process = context.Process(target=_spin, args=(cores[-1],), daemon=True)
        self.process.start()
        time.sleep(0.3)  # let it start spinning
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.join()


def _policy_epochs(run, rows: int, repeats: int, threads: int, adapt: bool, time_epoch) -> tuple:
    policy = ThreadPolicy(threads, adapt=adapt)
    best, used = float("inf"), []
    for _ in range(repeats):
        used.append(policy.before_epoch())  # what fit does before each epoch
        best = min(best, time_epoch(run, rows, 1))
    return best, used


def part_contention(setup, mnist, rows: int, repeats: int, threads: int, time_epoch,
                    kd_epoch) -> dict:
    """Default-path teacher epoch quiet vs beside one busy core."""
    teacher = setup["teacher"]
    images, labels = mnist.train_images[:rows], mnist.train_labels[:rows]
    run = kd_epoch(teacher, images, [labels], hard_label_loss)
    result = {"rows_timed": rows, "threads": threads}
    with gemm_mode(plan_gemm(setup.get("precision", "fp32"), CPU), CPU):
        result["quiet_s"], result["quiet_threads"] = _policy_epochs(
            run, rows, repeats, threads, True, time_epoch)
        with BusyCore():
            result["busy_s"], result["busy_threads"] = _policy_epochs(
                run, rows, repeats, threads, True, time_epoch)
            result["busy_fixed_threads_s"], _ = _policy_epochs(
                run, rows, repeats, threads, False, time_epoch)
    torch.set_num_threads(threads)
    result["contention_slowdown"] = result["busy_s"] / result["quiet_s"]
    result["fixed_threads_slowdown"] = result["busy_fixed_threads_s"] / result["quiet_s"]
    return result
