"""One training loop for every network of section 3, plus evaluation.

The whole data set lives in tensors on the chosen device; an epoch is a
seeded permutation cut into index batches (no Dataset/DataLoader). The loss
is a parameter, so hard-label training and distillation share this loop.
Optimisation follows the dropout work the paper cites (Hinton et al. 2012):
SGD with momentum ramped up linearly, a learning rate decayed geometrically
per epoch, and max-norm applied after every step.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Protocol, Sequence

import torch

from kdrepro.data.jitter import Jitter
from kdrepro.data.mnist import normalize
from kdrepro.training.models import MLP, NUM_CLASSES

LossFn = Callable[..., torch.Tensor]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss is no longer finite)."""


class Checkpoint(Protocol):
    """Where `fit` keeps its state between epochs (see kdrepro.training.checkpoint)."""

    def load(self) -> dict | None: ...

    def save(self, state: dict) -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are a small, safe student recipe."""

    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.1
    lr_decay: float = 1.0
    lr_schedule: str = "geometric"
    momentum_start: float = 0.5
    momentum_end: float = 0.9
    momentum_ramp_epochs: int = 0
    weight_decay: float = 0.0
    jitter: int = 0
    jitter_axes: str = "both"
    lr_step_size: int = 30
    lr_gamma: float = 0.1

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based `epoch`.

        geometric: lr * lr_decay**epoch (Hinton et al. 2012, the dropout work
        section 3 cites). cosine: lr * (1 + cos(pi * epoch / epochs)) / 2, which
        holds the rate high for longer and anneals to ~0 by the last epoch, so a
        short CPU budget ends converged; lr_decay is then unused. step: the 2020
        blog's StepLR, see `step_lr`.
        """
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))
        if self.lr_schedule == "step":
            return step_lr(self.lr, self.lr_gamma, self.lr_step_size, epoch)
        return self.lr * self.lr_decay**epoch

    def momentum_at(self, epoch: int) -> float:
        """Momentum ramped linearly from start to end over the ramp epochs."""
        if self.momentum_ramp_epochs <= 0:
            return self.momentum_end
        frac = min(1.0, epoch / self.momentum_ramp_epochs)
        return self.momentum_start + (self.momentum_end - self.momentum_start) * frac


def step_lr(lr: float, gamma: float, step_size: int, epoch: int) -> float:
    """The rate of 0-based `epoch` under the 2020 blog's StepLR(step_size, gamma).

    The blog calls `scheduler.step()` at the start of each epoch, before any
    optimiser step, so PyTorch's first value is skipped: epoch e trains at
    lr * gamma**((e + 1) // step_size), i.e. the rate drops after step_size - 1
    epochs (29 for StepLR(30, 0.1)) and then every step_size epochs.
    """
    return lr * gamma ** ((epoch + 1) // step_size)


class BatchSource:
    """Network inputs for index batches: normalised, optionally jittered."""

    def __init__(self, images: torch.Tensor, jitter: int, axes: str = "both"):
        self.jitter = Jitter(images, jitter, axes) if jitter > 0 else None
        self.inputs = None if self.jitter else normalize(images)

    def __call__(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.jitter is None:
            return self.inputs.index_select(0, index)
        return normalize(self.jitter(index, generator))


def set_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr_at(epoch)
        group["momentum"] = cfg.momentum_at(epoch)


def make_optimizer(model: MLP, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum, fused: one pass over each tensor per step (foreach makes three).

    Same update as foreach; on CPU the bits are equal too except in the last
    few elements of tensors whose size is not a multiple of 16 (the output
    bias, for one), which take a scalar path and may differ in the last bit.
    """
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum_at(0),
                           weight_decay=cfg.weight_decay, fused=True)


def train_epoch(model: MLP, optimizer, batches: BatchSource, targets: Sequence[torch.Tensor],
                loss_fn: LossFn, batch_size: int, generator: torch.Generator) -> float:
    """One pass over a seeded permutation of the rows of `targets`; mean loss."""
    model.train()
    n = len(targets[0])
    order = torch.randperm(n, generator=generator, device=generator.device)
    total = torch.zeros((), device=generator.device)
    for index in order.split(batch_size):
        inputs = batches(index, generator)
        # a callable target is a function of the batch's inputs (a live teacher)
        rows = (t(inputs) if callable(t) else t[index] for t in targets)
        loss = loss_fn(model(inputs), *rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.apply_max_norm()
        total += loss.detach() * len(index)
    return float(total) / n


def resume(model, optimizer, generator, checkpoint: Checkpoint | None) -> tuple[int, list]:
    state = checkpoint.load() if checkpoint is not None else None
    if state is None:
        return 0, []
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return state["epoch"], state["history"]


def fit(model: MLP, images: torch.Tensor, targets: Sequence[torch.Tensor], loss_fn: LossFn,
        cfg: TrainConfig, generator: torch.Generator, *, eval_set=None,
        on_epoch: Callable[[dict], None] | None = None,
        checkpoint: Checkpoint | None = None, threads=None,
        eval_name: str = "test_errors") -> list[dict]:
    """Train `model` on `images` (uint8 [N,28,28]) against `targets`; return the history.

    `loss_fn(logits, *target_rows)` receives the rows of every tensor in
    `targets` for the batch (labels, soft targets, ...). `eval_set` is an
    optional (images, labels) pair scored after each epoch for the history
    (under `eval_name`: "val_errors" when it is the validation split).
    With a `checkpoint`, state is saved at each epoch boundary and a
    re-started run resumes bit-identically from the last one. `threads`
    (a kdrepro.training.threads.ThreadPolicy) re-decides the thread count
    before each epoch.
    """
    model.generator = generator
    optimizer = make_optimizer(model, cfg)
    batches = BatchSource(images, cfg.jitter, cfg.jitter_axes)
    start, history = resume(model, optimizer, generator, checkpoint)
    for epoch in range(start, cfg.epochs):
        if threads is not None:
            threads.before_epoch()
        tic = time.perf_counter()
        set_schedule(optimizer, cfg, epoch)
        loss = train_epoch(model, optimizer, batches, targets, loss_fn, cfg.batch_size, generator)
        if not math.isfinite(loss):
            raise TrainingError(
                f"training loss became {loss} in epoch {epoch + 1}; the learning rate "
                f"(lr={cfg.lr_at(epoch):g}) is likely too high for this network")
        record = {"epoch": epoch + 1, "loss": loss, "lr": cfg.lr_at(epoch),
                  "momentum": cfg.momentum_at(epoch)}
        if eval_set is not None:
            record[eval_name] = count_errors(predict_logits(model, eval_set[0]), eval_set[1])
        record["seconds"] = time.perf_counter() - tic
        history.append(record)
        save_epoch(checkpoint, epoch + 1, model, optimizer, generator, history, cfg)
        if on_epoch is not None:
            on_epoch(record)
    return history


def save_epoch(checkpoint: Checkpoint | None, epoch: int, model, optimizer, generator,
               history, cfg: TrainConfig) -> None:
    """Checkpoint the state at an epoch boundary (a single net or a block of students);
    `resume` restores it bit-identically."""
    if checkpoint is not None:
        checkpoint.save({"epoch": epoch, "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(),
                         "generator": generator.get_state(), "history": history,
                         "config": asdict(cfg)})


@torch.no_grad()
def predict_logits(model: MLP, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits of `model` (eval mode, no dropout) on uint8 images, in large batches.

    1000 rows keep a 1200-unit layer's activations (5 MB) in cache; 10,000-row
    batches were ~20% slower on CPU. Rows are independent: with MKL the logits
    came out bit-identical for both batch sizes.
    """
    was_training = model.training
    model.eval()
    out = [model(normalize(chunk)) for chunk in images.split(batch_size)]
    model.train(was_training)
    return torch.cat(out)


def count_errors(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """Number of rows whose arg-max is not the label."""
    return int((logits.argmax(1) != labels).sum())


def error_summary(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Total and per-class errors, confusion matrix and misclassified indices."""
    predicted = logits.argmax(1).cpu()
    labels = labels.cpu()
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64)
    confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    per_class_total = confusion.sum(1)
    per_class_errors = per_class_total - confusion.diagonal()
    wrong = (predicted != labels).nonzero().flatten()
    return {"test_errors": int(per_class_errors.sum()), "test_total": int(len(labels)),
            "per_class_errors": per_class_errors.tolist(),
            "per_class_total": per_class_total.tolist(),
            "confusion": confusion.tolist(), "wrong_indices": wrong.tolist()}
