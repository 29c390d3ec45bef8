"""One experiment end to end: spec in -> model + metrics.json + manifest out.

This is the only library module that reads and writes run files; the CLI
calls it and the Snakefile calls the CLI.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch

from kdrepro.data.mnist import MNIST, load_mnist
from kdrepro.data.transfer import class_indices, validation_split
from kdrepro.io import read_json, write_json
from kdrepro.provenance import make_generator, manifest, resolve_device, seed_everything
from kdrepro.training import bias
from kdrepro.training.checkpoint import FileCheckpoint
from kdrepro.training.engine import error_summary, fit, predict_logits
from kdrepro.training.losses import distillation_loss, hard_label_loss, soft_targets
from kdrepro.training.models import MLP, load_model, save_model
from kdrepro.training.precision import gemm_mode, plan_gemm
from kdrepro.training.soft_targets import load_soft_targets, save_soft_targets, teacher_logits
from kdrepro.training.spec import RunSpec, fingerprint, spec_from_dict
from kdrepro.training.threads import ThreadPolicy

SCHEMA = 1


def transfer_indices(spec: RunSpec, labels: torch.Tensor) -> torch.Tensor:
    """Training rows of this run: minus the validation split, then omit/keep classes."""
    index = torch.arange(len(labels))
    if spec.validation_fraction > 0:
        index, _ = validation_split(labels, spec.validation_fraction, spec.validation_seed)
    if spec.omit or spec.keep:
        chosen = class_indices(labels, omit=spec.omit, keep=spec.keep)
        index = index[torch.isin(index, chosen)]
    return index


def _objective(spec: RunSpec, mnist: MNIST, index: torch.Tensor, logits: torch.Tensor | None):
    """(targets, loss_fn) for hard-label or soft-target training."""
    labels = mnist.train_labels[index]
    if not spec.distilled:
        return (labels,), hard_label_loss
    probs = soft_targets(logits[index], spec.temperature)
    weight = spec.hard_weight or 0.0

    def loss_fn(out, target_probs, target_labels):
        return distillation_loss(out, target_probs, target_labels, spec.temperature, weight)

    return (probs, labels), loss_fn


def _run_metrics(spec: RunSpec, label: str, index, history, summary, seconds) -> dict:
    return {"schema": SCHEMA, "run": label, "role": spec.role, "hidden": list(spec.hidden),
            "seed": spec.seed, "temperature": spec.temperature,
            "hard_weight": (spec.hard_weight or 0.0) if spec.distilled else None,
            "transfer_set": {"omit": list(spec.omit), "keep": list(spec.keep),
                             "size": int(len(index))},
            "epochs": spec.epochs, **summary, "history": history,
            "train_seconds": round(seconds, 3)}


def _teacher_logits_for(spec: RunSpec, mnist: MNIST, soft_targets_path, teacher_path):
    """Cached, checked teacher logits for distilled runs; None for hard-label runs."""
    if not spec.distilled:
        return None
    if soft_targets_path is None or teacher_path is None:
        raise ValueError(f"role '{spec.role}' needs --soft-targets and --teacher")
    return load_soft_targets(soft_targets_path, teacher_path, mnist)


def _write_run(out_dir: Path, model: MLP, metrics: dict, manifest_fields: dict,
               engine_fields: dict) -> None:
    """model.pt, metrics.json, then manifest.json (which hashes the other two).

    `engine_fields`: what the engine decided (precision, GEMM path, threads)."""
    out_dir = Path(out_dir)
    save_model(model, out_dir / "model.pt")
    write_json(out_dir / "metrics.json", metrics)
    outputs = {"model.pt": out_dir / "model.pt", "metrics.json": out_dir / "metrics.json"}
    record = manifest(**manifest_fields, outputs=outputs)
    write_json(out_dir / "manifest.json", {**record, **engine_fields})


def train_run(spec: RunSpec, data_cache: Path, out_dir: Path, *, label: str,
              soft_targets_path: Path | None = None, teacher_path: Path | None = None,
              checkpoint_path: Path | None = None, threads: int = 1,
              on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one network of section 3 and write model.pt, metrics.json, manifest.json."""
    started, tic = datetime.now(timezone.utc), time.perf_counter()
    mnist, device = load_mnist(data_cache), resolve_device(spec.device)
    logits = _teacher_logits_for(spec, mnist, soft_targets_path, teacher_path)
    index = transfer_indices(spec, mnist.train_labels)
    targets, loss_fn = _objective(spec, mnist, index, logits)
    seed_everything(spec.seed)
    model = MLP(spec.hidden, spec.input_dropout, spec.hidden_dropout, spec.max_norm).to(device)
    checkpoint = FileCheckpoint(checkpoint_path or Path(out_dir) / "checkpoint.pt",
                                fingerprint(spec, mnist.sha256))
    test_images, test_labels = mnist.test_images.to(device), mnist.test_labels.to(device)
    gemm, policy = plan_gemm(spec.precision, device), ThreadPolicy(threads)
    with gemm_mode(gemm, device):
        history = fit(model, mnist.train_images[index].to(device),
                      [t.to(device) for t in targets], loss_fn, spec.train_config(),
                      make_generator(spec.seed, device), eval_set=(test_images, test_labels),
                      on_epoch=on_epoch, checkpoint=checkpoint, threads=policy)
        summary = error_summary(predict_logits(model, test_images), test_labels)
    metrics = _run_metrics(spec, label, index, history, summary, time.perf_counter() - tic)
    inputs = {"soft_targets": soft_targets_path, "teacher": teacher_path} if spec.distilled else {}
    _write_run(out_dir, model, metrics, dict(
        spec=spec.to_dict(), data_sha256=mnist.sha256, device=str(device), threads=threads,
        wall_seconds=time.perf_counter() - tic, started=started, inputs=inputs),
        {**gemm.fields(), **policy.summary()})
    checkpoint.remove()
    return metrics


def soft_targets_run(teacher_path: Path, data_cache: Path, out: Path, threads: int = 1) -> None:
    """Compute and store the teacher's logits on the training set (+ manifest)."""
    tic = time.perf_counter()
    mnist = load_mnist(data_cache)
    logits = teacher_logits(load_model(teacher_path), mnist)
    save_soft_targets(out, logits, teacher_path, mnist)
    write_json(Path(out).with_suffix(".manifest.json"), manifest(
        {"soft_targets_of": str(teacher_path)}, data_sha256=mnist.sha256, device="cpu",
        threads=threads, wall_seconds=time.perf_counter() - tic,
        inputs={"teacher": Path(teacher_path)}, outputs={Path(out).name: Path(out)}))


def _logits_and_labels(model, images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    return predict_logits(model, images), labels


def bias_run(run_dir: Path, data_cache: Path, paper_shift: float,
             shifts: Sequence[float], out: Path) -> dict:
    """Sweep the shifted classes' biases of a trained omit/keep run; write bias.json."""
    run_dir = Path(run_dir)
    spec = spec_from_dict(read_json(run_dir / "manifest.json")["spec"])
    classes = list(spec.omit or spec.keep)
    if not classes:
        raise ValueError(f"{run_dir} is not an omit/keep run: its spec shifts no class")
    mnist, model = load_mnist(data_cache), load_model(run_dir / "model.pt")
    test = _logits_and_labels(model, mnist.test_images, mnist.test_labels)
    validation = None
    if spec.validation_fraction > 0:
        _, val_index = validation_split(mnist.train_labels, spec.validation_fraction,
                                        spec.validation_seed)
        validation = _logits_and_labels(model, mnist.train_images[val_index],
                                        mnist.train_labels[val_index])
    result = bias.bias_experiment(test, validation, classes, paper_shift, shifts)
    payload = {"schema": SCHEMA, "run": read_json(run_dir / "metrics.json")["run"], **result}
    write_json(Path(out), payload)
    return payload


def evaluate_run(model_path: Path, data_cache: Path, out: Path,
                 bias_shift: dict[int, float] | None = None) -> dict:
    """Test-set metrics of a saved model, optionally with shifted output biases."""
    mnist, model = load_mnist(data_cache), load_model(model_path)
    logits = predict_logits(model, mnist.test_images)
    for cls, shift in (bias_shift or {}).items():
        logits = bias.shift_logits(logits, [cls], shift)
    metrics = {"schema": SCHEMA, "model": str(model_path),
               "bias_shift": {str(k): v for k, v in (bias_shift or {}).items()},
               **error_summary(logits, mnist.test_labels), "data_sha256": mnist.sha256}
    write_json(Path(out), metrics)
    return metrics
