"""One experiment end to end: spec in -> model + metrics.json + manifest out.

This is the only library module that reads and writes run files; the CLI
calls it and the Snakefile calls the CLI.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch

from kdrepro.data.mnist import MNIST, load_mnist
from kdrepro.data.transfer import class_indices, validation_split
from kdrepro.io import (
    OutputError,
    bytes_sha256,
    commit_folder,
    folder_lock,
    read_json_object,
    write_json,
)
from kdrepro.outputs import (
    RUN_FILES,
    check_not_input,
    check_output_file,
    check_run_folder,
    file_kind,
    run_folder_of,
)
from kdrepro.provenance import (
    file_sha256,
    make_generator,
    manifest,
    resolve_device,
    seed_everything,
)
from kdrepro.training import bias
from kdrepro.training.checkpoint import FileCheckpoint
from kdrepro.training.engine import error_summary, fit, predict_logits
from kdrepro.training.live_teacher import LiveTeacher
from kdrepro.training.losses import distillation_loss, hard_label_loss, soft_targets
from kdrepro.training.models import MLP, load_model, model_bytes
from kdrepro.training.precision import gemm_mode, plan_gemm
from kdrepro.training.scoring import scored_summary, scoring_set, validation_set
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


def _objective(spec: RunSpec, mnist: MNIST, index: torch.Tensor, logits: torch.Tensor | None,
               live: LiveTeacher | None = None):
    """(targets, loss_fn) for hard-label or soft-target training (cached or live teacher)."""
    labels = mnist.train_labels[index]
    if not spec.distilled:
        return (labels,), hard_label_loss
    weights = {"hard_weight": spec.hard_weight or 0.0,
               "soft_weight": 1.0 if spec.soft_weight is None else spec.soft_weight}
    if live is not None:
        def live_loss(out, target_labels, target_probs):
            return distillation_loss(out, target_probs, target_labels, spec.temperature, **weights)

        return (labels, live), live_loss
    probs = soft_targets(logits[index], spec.temperature)
    if not torch.isfinite(probs).all():  # name the cause before training diverges on it
        raise ValueError(f"the soft targets at temperature {spec.temperature:g} are not finite "
                         "(the logits overflow when divided by T); choose a larger temperature")

    def loss_fn(out, target_probs, target_labels):
        return distillation_loss(out, target_probs, target_labels, spec.temperature, **weights)

    return (probs, labels), loss_fn


def _run_metrics(spec: RunSpec, label: str, index, history, summary, seconds) -> dict:
    return {"schema": SCHEMA, "run": label, "role": spec.role, "hidden": list(spec.hidden),
            "seed": spec.seed, "temperature": spec.temperature,
            "hard_weight": (spec.hard_weight or 0.0) if spec.distilled else None,
            "transfer_set": {"omit": list(spec.omit), "keep": list(spec.keep),
                             "size": int(len(index))},
            "epochs": spec.epochs, **summary, "history": history,
            "train_seconds": round(seconds, 3)}


def teacher_logits_for(spec: RunSpec, mnist: MNIST, soft_targets_path, teacher_path):
    """Cached, checked teacher logits for distilled runs; None for hard-label runs."""
    if not spec.distilled:
        return None
    if spec.teacher_inputs == "live":
        if teacher_path is None:
            raise ValueError(f"role '{spec.role}' with a live teacher needs --teacher")
        return None
    if soft_targets_path is None or teacher_path is None:
        raise ValueError(f"role '{spec.role}' needs --soft-targets and --teacher")
    return load_soft_targets(soft_targets_path, teacher_path, mnist)


def commit_run(out_dir: Path, model: MLP, metrics: dict, manifest_fields: dict,
               extra: dict | None = None) -> None:
    """model.pt, metrics.json and manifest.json (which hashes the other two), all at once
    (kdrepro.io.commit_folder). Call it under kdrepro.io.folder_lock(out_dir).

    `extra` adds top-level manifest fields (a block-trained student's `block`).
    """
    files = {"model.pt": model_bytes(model),
             "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode("utf-8")}
    record = {**manifest(**manifest_fields, outputs={}), **(extra or {})}
    record["outputs"] = {name: bytes_sha256(data) for name, data in files.items()}
    files["manifest.json"] = (json.dumps(record, indent=2) + "\n").encode("utf-8")
    commit_folder(out_dir, files)


def _check_checkpoint(path: Path, out_dir: Path, inputs: dict, explicit: bool) -> None:
    """Refuse a checkpoint path that is an input, a run file, or a file of another kind."""
    run_files = {f"run's {name}": Path(out_dir) / name for name in RUN_FILES}
    check_not_input(path, "--checkpoint", {**inputs, **run_files})
    kind = file_kind(path)
    if kind not in ("missing", "checkpoint"):
        raise OutputError(f"--checkpoint {path} is a {kind}, not a training checkpoint; only "
                          "checkpoints are resumed and removed: choose another path")
    folder = run_folder_of(path)
    if explicit and folder is not None and folder != Path(out_dir).resolve():
        raise OutputError(f"--checkpoint {path} is inside the folder of another run ({folder}); "
                          "choose a path outside it")


def _claim_checkpoint(path: Path, run_print: str, explicit: bool) -> FileCheckpoint:
    """The run's checkpoint; an explicit one of another configuration is never replaced."""
    checkpoint = FileCheckpoint(path, run_print)
    if explicit and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("fingerprint") != run_print:
            raise OutputError(f"--checkpoint {path} belongs to another run configuration (spec, "
                              "data or teacher); it is left alone: choose another path")
    return checkpoint


def _run_fingerprint(spec: RunSpec, mnist: MNIST, soft_targets_path, teacher_path) -> str:
    """Spec, data and, for distilled runs, the teacher and soft targets actually used."""
    if not spec.distilled:
        return fingerprint(spec, mnist.sha256)
    if soft_targets_path is None:  # a live teacher reads no soft-target file
        return fingerprint(spec, mnist.sha256, file_sha256(teacher_path))
    return fingerprint(spec, mnist.sha256, file_sha256(teacher_path),
                       file_sha256(soft_targets_path))


def train_run(spec: RunSpec, data_cache: Path, out_dir: Path, *, label: str,
              soft_targets_path: Path | None = None, teacher_path: Path | None = None,
              checkpoint_path: Path | None = None, threads: int = 1,
              on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one network of section 3 and write model.pt, metrics.json, manifest.json.

    Nothing is written unless every output path is safe (kdrepro.outputs); the run
    folder is locked while the run trains and appears all at once when it is done.
    """
    out_dir = Path(out_dir)
    inputs = {"--data": data_cache, "--soft-targets": soft_targets_path, "--teacher": teacher_path}
    check_run_folder(out_dir, "--out", inputs)
    explicit = checkpoint_path is not None
    checkpoint_path = Path(checkpoint_path or out_dir / "checkpoint.pt")
    _check_checkpoint(checkpoint_path, out_dir, inputs, explicit)
    with folder_lock(out_dir):
        return _train_locked(spec, data_cache, out_dir, label, soft_targets_path, teacher_path,
                             checkpoint_path, explicit, threads, on_epoch)


def _train_locked(spec, data_cache, out_dir, label, soft_targets_path, teacher_path,
                  checkpoint_path, explicit, threads, on_epoch) -> dict:
    started, tic = datetime.now(timezone.utc), time.perf_counter()
    mnist, device = load_mnist(data_cache), resolve_device(spec.device)
    logits = teacher_logits_for(spec, mnist, soft_targets_path, teacher_path)
    index = transfer_indices(spec, mnist.train_labels)
    live = (LiveTeacher(load_model(teacher_path, device), spec.temperature)
            if spec.distilled and spec.teacher_inputs == "live" else None)
    targets, loss_fn = _objective(spec, mnist, index, logits, live)
    checkpoint = _claim_checkpoint(checkpoint_path, _run_fingerprint(
        spec, mnist, soft_targets_path, teacher_path), explicit)
    seed_everything(spec.seed)
    model = MLP(spec.hidden, spec.input_dropout, spec.hidden_dropout, spec.max_norm,
                spec.input_scaling, spec.input_dropout_space).to(device)
    score_images, score_labels = (t.to(device) for t in scoring_set(spec, mnist))
    targets = [t if callable(t) else t.to(device) for t in targets]
    gemm, policy = plan_gemm(spec.precision, device), ThreadPolicy(threads)
    with gemm_mode(gemm, device):
        history = fit(model, mnist.train_images[index].to(device), targets, loss_fn,
                      spec.train_config(), make_generator(spec.seed, device),
                      eval_set=(score_images, score_labels), on_epoch=on_epoch,
                      checkpoint=checkpoint, threads=policy,
                      eval_name="val_errors" if spec.scored_on == "validation" else "test_errors")
        summary = scored_summary(spec, error_summary(predict_logits(model, score_images),
                                                      score_labels))
    metrics = _run_metrics(spec, label, index, history, summary, time.perf_counter() - tic)
    used = (("teacher", teacher_path),) if live else (("soft_targets", soft_targets_path),
                                                       ("teacher", teacher_path))
    inputs = {k: v for k, v in used if spec.distilled and v is not None}
    commit_run(out_dir, model, metrics, dict(
        spec=spec.to_dict(), data_sha256=mnist.sha256, device=str(device), threads=threads,
        wall_seconds=time.perf_counter() - tic, started=started, inputs=inputs),
        {**gemm.fields(), **policy.summary()})
    checkpoint.remove()
    return metrics


def _run_folder_lock(path: Path):
    """The lock of the run folder ``path`` lies in (soft targets, bias.json), if any."""
    folder = run_folder_of(path)
    return folder_lock(folder) if folder is not None else nullcontext()


def soft_targets_run(teacher_path: Path, data_cache: Path, out: Path, threads: int = 1) -> None:
    """Compute and store the teacher's logits on the training set (+ manifest)."""
    teacher_path, out = Path(teacher_path), Path(out)
    inputs = {"--teacher": teacher_path, "--data": data_cache}
    record_path = out.with_suffix(".manifest.json")
    check_output_file(out, "--out", inputs=inputs, replaceable=("soft-target file",),
                      own_folders=[teacher_path.parent])
    check_output_file(record_path, "--out's manifest", inputs=inputs, replaceable=("manifest",),
                      own_folders=[teacher_path.parent])
    tic = time.perf_counter()
    with _run_folder_lock(out):
        mnist = load_mnist(data_cache)
        logits = teacher_logits(load_model(teacher_path), mnist)
        save_soft_targets(out, logits, teacher_path, mnist)
        write_json(record_path, manifest(
            {"soft_targets_of": str(teacher_path)}, data_sha256=mnist.sha256, device="cpu",
            threads=threads, wall_seconds=time.perf_counter() - tic,
            inputs={"teacher": teacher_path}, outputs={out.name: out}))


def _logits_and_labels(model, images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    return predict_logits(model, images), labels


def _run_spec(run_dir: Path) -> RunSpec:
    record = read_json_object(run_dir / "manifest.json", "manifest")
    if not isinstance(record.get("spec"), dict):
        raise ValueError(f"manifest {run_dir / 'manifest.json'} has no 'spec' object; "
                         "it was not written by `kdrepro train`")
    return spec_from_dict(record["spec"])


def shifted_classes(run_dir: Path) -> tuple[str, list[int]]:
    """("omit" or "keep", classes) of a trained transfer run, from its manifest's spec."""
    spec = _run_spec(Path(run_dir))
    if not (spec.omit or spec.keep):
        raise ValueError(f"{run_dir} is not an omit/keep run: its spec shifts no class")
    return ("omit", list(spec.omit)) if spec.omit else ("keep", list(spec.keep))


def bias_run(run_dir: Path, data_cache: Path, paper_shift: float,
             shifts: Sequence[float], out: Path, set_all: float | None = None) -> dict:
    """Sweep the shifted classes' biases of a trained omit/keep run; write bias.json."""
    run_dir, out = Path(run_dir), Path(out)
    inputs = {"--data": data_cache, **{f"run's {n}": run_dir / n for n in RUN_FILES}}
    check_output_file(out, "--out", inputs=inputs, replaceable=("bias.json",),
                      own_folders=[run_dir])
    spec = _run_spec(run_dir)
    classes = list(spec.omit or spec.keep)
    if not classes:
        raise ValueError(f"{run_dir} is not an omit/keep run: its spec shifts no class")
    run_name = read_json_object(run_dir / "metrics.json", "metrics file").get("run")
    mnist, model = load_mnist(data_cache), load_model(run_dir / "model.pt")
    test = _logits_and_labels(model, mnist.test_images, mnist.test_labels)
    validation = None
    if spec.validation_fraction > 0:
        validation = _logits_and_labels(model, *validation_set(spec, mnist))
    all_set = None if set_all is None else (model.layers[-1].bias.detach(), set_all)
    result = bias.bias_experiment(test, validation, classes, paper_shift, shifts, set_all=all_set)
    payload = {"schema": SCHEMA, "run": run_name, **result}
    with _run_folder_lock(out):
        write_json(out, payload)
    return payload


def evaluate_run(model_path: Path, data_cache: Path, out: Path,
                 bias_shift: dict[int, float] | None = None) -> dict:
    """Test-set metrics of a saved model, optionally with shifted output biases."""
    model_path, out = Path(model_path), Path(out)
    check_output_file(out, "--out", inputs={"--model": model_path, "--data": data_cache},
                      replaceable=("evaluation JSON",), own_folders=[model_path.parent])
    mnist, model = load_mnist(data_cache), load_model(model_path)
    logits = predict_logits(model, mnist.test_images)
    for cls, shift in (bias_shift or {}).items():
        logits = bias.shift_logits(logits, [cls], shift)
    metrics = {"schema": SCHEMA, "model": str(model_path),
               "bias_shift": {str(k): v for k, v in (bias_shift or {}).items()},
               **error_summary(logits, mnist.test_labels), "data_sha256": mnist.sha256}
    with _run_folder_lock(out):
        write_json(out, metrics)
    return metrics


# kdrepro.training.blocks writes its students' run folders exactly as train_run does.
run_metrics = _run_metrics
