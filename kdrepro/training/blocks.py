"""Many students in one process: one width, one seed, every temperature of the grid.

Section 3 sweeps the distillation temperature ("with 300+ units all temperatures
above 8 gave fairly similar results ... with 30 units temperatures in the range
2.5 to 4 worked significantly better"). The students of one (width, seed) cell
row differ only in T, so they are trained as a paired design: the same
initialisation (seed_everything(seed), then MLP, as a single run) and the same
batch order (one generator seeded as a single run's) for every temperature,
with batched GEMMs (kdrepro.training.block_model), one data load and one start-up.
Each student still writes its own run folder in the single-run format.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from kdrepro.data.mnist import load_mnist
from kdrepro.io import folder_lock
from kdrepro.outputs import check_run_folder
from kdrepro.provenance import file_sha256, make_generator, resolve_device, seed_everything
from kdrepro.training.block_model import StudentBlock, block_errors
from kdrepro.training.checkpoint import FileCheckpoint
from kdrepro.training.engine import (
    BatchSource,
    Checkpoint,
    TrainConfig,
    TrainingError,
    error_summary,
    make_optimizer,
    predict_logits,
    resume,
    save_epoch,
    set_schedule,
)
from kdrepro.training.losses import check_temperature, soft_targets
from kdrepro.training.models import MLP
from kdrepro.training.precision import gemm_mode, plan_gemm
from kdrepro.training.runs import (
    commit_run,
    run_metrics,
    teacher_logits_for,
    transfer_indices,
)
from kdrepro.training.spec import RunSpec

# Settings a block shares: everything but the temperature. Regularisers that draw
# from the generator (dropout, jitter) would break the shared batch stream.
_UNREGULARISED = {"input_dropout": 0.0, "hidden_dropout": 0.0, "max_norm": None, "jitter": 0}
# Settings a block's batched loss and inputs implement only at their defaults.
_BLOCK_DEFAULTS = {"input_scaling": "standardize", "teacher_inputs": "cached",
                   "soft_weight": None}


def check_block(specs: Sequence[RunSpec], out_dirs: Sequence[Path]) -> None:
    """One line naming the first problem: empty, mixed settings, regularisers, repeats."""
    if not specs:
        raise ValueError("a student block needs at least one temperature")
    if len(out_dirs) != len(specs):
        raise ValueError(f"a block of {len(specs)} students needs {len(specs)} output "
                         f"folders, got {len(out_dirs)}")
    first = specs[0]
    if not first.distilled:
        raise ValueError(f"a student block trains on soft targets; role '{first.role}' does not")
    for key, value in _UNREGULARISED.items():
        if getattr(first, key) != value:
            raise ValueError(f"a student block trains without dropout, max-norm or jitter; "
                             f"the spec has {key} = {getattr(first, key)!r}")
    for key, value in _BLOCK_DEFAULTS.items():
        if getattr(first, key) not in (value, 1.0 if key == "soft_weight" else value):
            raise ValueError(f"a student block needs {key} = {value!r} (train such students "
                             f"one by one); the spec has {getattr(first, key)!r}")
    shared = lambda s: {k: v for k, v in s.to_dict().items() if k != "temperature"}  # noqa: E731
    for spec in specs[1:]:
        if shared(spec) != shared(first):
            raise ValueError("the students of a block must differ only in temperature")
    temperatures = [s.temperature for s in specs]
    if len(set(temperatures)) != len(temperatures):
        raise ValueError(f"temperatures {temperatures} repeat a value; each student needs its own")
    if len({Path(d).resolve() for d in out_dirs}) != len(out_dirs):
        raise ValueError("every student of a block needs its own output folder")


def block_loss(logits: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
               temperatures: torch.Tensor, hard_weight: float) -> torch.Tensor:
    """Per-student distillation losses [K] of logits [K,B,C] against probs [K,B,C].

    losses.distillation_loss (section 2) for every student at once, each at its
    own T (`temperatures` [K]): T^2 * mean_batch(-sum_i p_i log softmax(z/T)_i)
    plus hard_weight * CE(z, y). Batched: K separate calls made a block of eight
    30-unit students ~1.5x slower per step (best of 4 on 1 thread).
    """
    temps = temperatures.view(-1, 1, 1)
    log_q = F.log_softmax(logits / temps, dim=2)
    losses = -(probs * log_q).sum(dim=2).mean(dim=1) * temperatures**2
    if hard_weight:
        hard = F.cross_entropy(logits.transpose(1, 2), labels.expand(len(logits), -1),
                               reduction="none").mean(dim=1)
        losses = losses + hard_weight * hard
    return losses


def _block_epoch(block: StudentBlock, optimizer, batches: BatchSource, probs: torch.Tensor,
                 labels: torch.Tensor, temperatures: torch.Tensor, hard_weight: float,
                 batch_size: int, generator: torch.Generator) -> list[float]:
    """engine.train_epoch for a block: the same permutation draw, one step per batch."""
    block.train()
    n = len(labels)
    order = torch.randperm(n, generator=generator, device=generator.device)
    total = torch.zeros(block.count, device=generator.device)
    for index in order.split(batch_size):
        target = probs.index_select(0, index).transpose(0, 1)  # [K, B, C]
        losses = block_loss(block(batches(index, generator)), target, labels[index],
                            temperatures, hard_weight)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        total += losses.detach() * len(index)
    return [float(t) / n for t in total]


def fit_block(block: StudentBlock, images: torch.Tensor, probs: torch.Tensor,
              labels: torch.Tensor, temperatures: Sequence[float], hard_weight: float,
              cfg: TrainConfig, generator: torch.Generator, *, eval_set=None,
              on_epoch: Callable[[list[dict]], None] | None = None,
              checkpoint: Checkpoint | None = None) -> list[list[dict]]:
    """engine.fit for a block: `probs` is [N, K, C]; one history per student.

    With a `checkpoint`, state is saved at each epoch boundary and a re-started
    block resumes bit-identically from the last one, as a single run does.
    """
    optimizer = make_optimizer(block, cfg)
    batches = BatchSource(images, 0)
    temps = torch.tensor([float(t) for t in temperatures], device=labels.device)
    start, history = resume(block, optimizer, generator, checkpoint)
    history = history or [[] for _ in range(block.count)]
    for epoch in range(start, cfg.epochs):
        tic = time.perf_counter()
        set_schedule(optimizer, cfg, epoch)
        losses = _block_epoch(block, optimizer, batches, probs, labels, temps, hard_weight,
                              cfg.batch_size, generator)
        for loss, temperature in zip(losses, temperatures):
            if not math.isfinite(loss):
                raise TrainingError(
                    f"training loss of the T={temperature:g} student became {loss} in epoch "
                    f"{epoch + 1}; the learning rate (lr={cfg.lr_at(epoch):g}) is likely too high")
        errors = block_errors(block, *eval_set) if eval_set is not None else [None] * len(losses)
        seconds = time.perf_counter() - tic
        records = [{"epoch": epoch + 1, "loss": loss, "lr": cfg.lr_at(epoch),
                    "momentum": cfg.momentum_at(epoch),
                    **({} if err is None else {"test_errors": err}), "seconds": seconds}
                   for loss, err in zip(losses, errors)]
        for student_history, record in zip(history, records):
            student_history.append(record)
        save_epoch(checkpoint, epoch + 1, block, optimizer, generator, history, cfg)
        if on_epoch is not None:
            on_epoch(records)
    return history


def block_fingerprint(specs: Sequence[RunSpec], data_sha256: str, soft_targets_sha256: str) -> str:
    """Identity of a block's checkpoint: every spec, the data and the soft targets."""
    return json.dumps([[s.to_dict() for s in specs], data_sha256, soft_targets_sha256],
                      sort_keys=True)


def _write_students(block, specs, out_dirs, labels, index, history, test, common) -> list[dict]:
    """Each student's run folder, in the single-run format (plus manifest field `block`)."""
    all_metrics = []
    for k, (spec, out_dir, label) in enumerate(zip(specs, out_dirs, labels)):
        model: MLP = block.student(k)
        summary = error_summary(predict_logits(model, test[0].cpu()), test[1].cpu())
        metrics = run_metrics(spec, label, index, history[k], summary, common["seconds"])
        commit_run(out_dir, model, metrics, dict(
            spec=spec.to_dict(), data_sha256=common["data_sha256"], device=common["device"],
            threads=common["threads"], wall_seconds=time.perf_counter() - common["tic"],
            started=common["started"], inputs=common["inputs"]),
            extra={**common["engine"], "block": {"runs": list(labels), "index": k,
                                                 "temperatures": [s.temperature for s in specs]}})
        all_metrics.append(metrics)
    return all_metrics


def train_block(specs: Sequence[RunSpec], data_cache: Path, out_dirs: Sequence[Path], *,
                labels: Sequence[str], soft_targets_path: Path, teacher_path: Path,
                checkpoint_path: Path, threads: int = 1,
                on_epoch: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Train a block of distilled students and write one run folder per student.

    As for a single run (kdrepro.training.runs.train_run), every output folder is
    checked first (kdrepro.outputs), locked while the block trains, and each
    appears all at once when the block is done.
    """
    check_block(specs, out_dirs)
    inputs = {"--data": data_cache, "--soft-targets": soft_targets_path,
              "--teacher": teacher_path}
    for out_dir in out_dirs:
        check_run_folder(Path(out_dir), "--out", inputs)
    with ExitStack() as locks:
        for out_dir in out_dirs:
            locks.enter_context(folder_lock(Path(out_dir)))
        return _train_block_locked(specs, data_cache, out_dirs, labels, soft_targets_path,
                                   teacher_path, checkpoint_path, threads, on_epoch)


def _train_block_locked(specs, data_cache, out_dirs, labels, soft_targets_path, teacher_path,
                        checkpoint_path, threads, on_epoch) -> list[dict]:
    started, tic = datetime.now(timezone.utc), time.perf_counter()
    for spec in specs:
        check_temperature(spec.temperature)
    first = specs[0]
    mnist, device = load_mnist(data_cache), resolve_device(first.device)
    logits = teacher_logits_for(first, mnist, soft_targets_path, teacher_path)
    index = transfer_indices(first, mnist.train_labels)
    probs = torch.stack([soft_targets(logits[index], s.temperature) for s in specs], dim=1)
    seed_everything(first.seed)
    block = StudentBlock(MLP(first.hidden), len(specs)).to(device)
    checkpoint = FileCheckpoint(checkpoint_path, block_fingerprint(
        specs, mnist.sha256, file_sha256(soft_targets_path)))
    test = (mnist.test_images.to(device), mnist.test_labels.to(device))
    gemm = plan_gemm(first.precision, device)  # the same precision as a single run
    with gemm_mode(gemm, device):
        history = fit_block(block, mnist.train_images[index].to(device), probs.to(device),
                            mnist.train_labels[index].to(device), [s.temperature for s in specs],
                            first.hard_weight or 0.0, first.train_config(),
                            make_generator(first.seed, device), eval_set=test,
                            on_epoch=on_epoch, checkpoint=checkpoint)
        common = {"seconds": time.perf_counter() - tic, "data_sha256": mnist.sha256,
                  "device": str(device), "threads": threads, "tic": tic, "started": started,
                  "inputs": {"soft_targets": soft_targets_path, "teacher": teacher_path},
                  "engine": gemm.fields()}
        metrics = _write_students(block, specs, out_dirs, labels, index, history, test, common)
    checkpoint.remove()
    return metrics
