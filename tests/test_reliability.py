"""Issue 13: hostile inputs and faults give one `error:` line naming the culprit, exit 1,
and leave every earlier output byte-identical (synthetic MNIST, tiny networks)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import write_synthetic_dir
from typer.testing import CliRunner

from kdrepro.cli import app
from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.mnist import MNIST_FILES, DataError, _idx_digest, combined_sha256
from kdrepro.io import OutputError, commit_folder, folder_lock
from kdrepro.training.runs import soft_targets_run, train_run
from kdrepro.training.spec import spec_from_dict

runner = CliRunner()
TEACHER = {"role": "teacher", "hidden": [16], "epochs": 1, "batch_size": 50, "lr": 0.05}
BASELINE = {"role": "baseline", "hidden": [8], "epochs": 1, "batch_size": 50, "lr": 0.05}
DISTILLED = {**BASELINE, "role": "distilled", "temperature": 4.0}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Earlier outputs: an MNIST cache, a teacher run with soft targets, a baseline run."""
    root = tmp_path_factory.mktemp("world")
    expected = write_synthetic_dir(root / "idx")
    cache = root / "data" / "mnist.pt"
    fetch_mnist(cache, root / "idx", expected=expected, sources=("dir",))
    train_run(spec_from_dict(TEACHER), cache, root / "teacher", label="teacher")
    soft = root / "teacher" / "soft_targets.pt"
    soft_targets_run(root / "teacher" / "model.pt", cache, soft)
    train_run(spec_from_dict(BASELINE), cache, root / "baseline", label="baseline")
    return {"root": root, "idx": root / "idx", "cache": cache, "teacher": root / "teacher",
            "soft": soft, "baseline": root / "baseline"}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def assert_refused(root: Path, args: list, *needles: str) -> str:
    """Run the CLI; one error line with every needle; no earlier file changed or lost."""
    before = snapshot(root)
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    after = snapshot(root)
    assert {k: after.get(k) for k in before} == before
    return lines[0]


def train_args(w, out: Path, spec: dict, *extra) -> list:
    return ["train", "--spec", json.dumps(spec), "--data", w["cache"], "--out", out, *extra]


def distilled_args(w, out: Path, *extra) -> list:
    return train_args(w, out, DISTILLED, "--soft-targets", w["soft"],
                      "--teacher", w["teacher"] / "model.pt", *extra)


# ---------------------------------------------------------------- outputs never alias inputs

def test_checkpoint_that_is_another_runs_model(world, tmp_path):
    model = world["baseline"] / "model.pt"
    assert_refused(world["root"], train_args(world, tmp_path / "run", BASELINE,
                                             "--checkpoint", model), model, "model file")


def test_checkpoint_that_is_the_runs_own_model(world):
    model = world["baseline"] / "model.pt"
    assert_refused(world["root"], train_args(world, world["baseline"], BASELINE,
                                             "--checkpoint", model), model)


def test_checkpoint_that_is_the_mnist_cache(world, tmp_path):
    assert_refused(world["root"], train_args(world, tmp_path / "run", BASELINE, "--checkpoint",
                                             world["cache"]), world["cache"], "--data input")


def test_checkpoint_of_another_configuration_is_left_alone(world, tmp_path):
    checkpoint = tmp_path / "ck.pt"
    with pytest.raises(RuntimeError, match="stop"):
        train_run(spec_from_dict({**BASELINE, "epochs": 2}), world["cache"], tmp_path / "a",
                  label="a", checkpoint_path=checkpoint, on_epoch=_stop)
    assert_refused(tmp_path, train_args(world, tmp_path / "b", {**BASELINE, "seed": 9},
                                        "--checkpoint", checkpoint), checkpoint,
                   "another run configuration")


def _stop(record):
    raise RuntimeError("stop")


def test_student_checkpoint_after_the_teacher_changed(world, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(world["teacher"], teacher)
    soft, checkpoint = teacher / "soft_targets.pt", tmp_path / "student.ckpt"
    with pytest.raises(RuntimeError, match="stop"):
        train_run(spec_from_dict({**DISTILLED, "epochs": 2}), world["cache"], tmp_path / "s",
                  label="s", soft_targets_path=soft, teacher_path=teacher / "model.pt",
                  checkpoint_path=checkpoint, on_epoch=_stop)
    train_run(spec_from_dict({**TEACHER, "seed": 5}), world["cache"], teacher, label="t")
    soft_targets_run(teacher / "model.pt", world["cache"], soft)
    args = train_args(world, tmp_path / "s", {**DISTILLED, "epochs": 2}, "--soft-targets", soft,
                      "--teacher", teacher / "model.pt", "--checkpoint", checkpoint)
    assert_refused(tmp_path, args, checkpoint, "another run configuration")


def test_fetch_over_a_model(world):
    model = world["baseline"] / "model.pt"
    assert_refused(world["root"], ["data", "fetch", "--data", model, "--source-dir",
                                   world["idx"]], model, "model file")


def test_evaluate_out_is_the_model(world):
    model = world["baseline"] / "model.pt"
    assert_refused(world["root"], ["evaluate", "--model", model, "--out", model, "--data",
                                   world["cache"]], model, "--model input")


def test_evaluate_out_is_a_runs_metrics(world, tmp_path):
    metrics = world["teacher"] / "metrics.json"
    assert_refused(world["root"], ["evaluate", "--model", world["baseline"] / "model.pt",
                                   "--out", metrics, "--data", world["cache"]], metrics)


def test_soft_targets_out_inside_another_run(world):
    out = world["baseline"] / "soft_targets.pt"
    assert_refused(world["root"], ["soft-targets", "--teacher", world["teacher"] / "model.pt",
                                   "--out", out, "--data", world["cache"]], out,
                   "another run", world["baseline"])


def test_out_dir_inside_another_run(world):
    out = world["baseline"] / "nested"
    assert_refused(world["root"], train_args(world, out, BASELINE), out, "another run")


def test_student_out_dir_is_the_teachers_folder(world):
    assert_refused(world["root"], distilled_args(world, world["teacher"]), "--teacher input")


def test_second_writer_of_an_out_dir_fails_clearly(world, tmp_path):
    out = tmp_path / "run"
    with folder_lock(out):
        assert_refused(tmp_path, train_args(world, out, BASELINE), out,
                       "being written by another kdrepro process")


# ---------------------------------------------------------------- run folders appear at once

def test_crash_between_file_writes_keeps_the_previous_run(world, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(world["baseline"], run)
    before = snapshot(tmp_path)
    import kdrepro.io

    calls = []

    def failing_write(path, data):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError("disk full")
        original(path, data)

    original = kdrepro.io._write_file
    monkeypatch.setattr(kdrepro.io, "_write_file", failing_write)
    with pytest.raises(OSError, match="disk full"):
        train_run(spec_from_dict({**BASELINE, "seed": 4}), world["cache"], run, label="x")
    after = snapshot(tmp_path)
    assert {k: after.get(k) for k in before} == before  # the previous run, whole
    assert set(after) - set(before) == {str(run / "checkpoint.pt")}  # kept for a resume
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]  # no staging


def test_rerun_replaces_the_run_and_keeps_other_files(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world["teacher"], run)
    soft = (run / "soft_targets.pt").read_bytes()
    train_run(spec_from_dict({**TEACHER, "seed": 8}), world["cache"], run, label="t8")
    assert (run / "soft_targets.pt").read_bytes() == soft  # not ours to delete
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["spec"]["seed"] == 8
    for name, digest in manifest["outputs"].items():
        assert hashlib.sha256((run / name).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]


def test_workflow_shaped_call_into_a_precreated_empty_folder(world, tmp_path):
    out = tmp_path / "results" / "baseline" / "h8" / "seed1"
    out.mkdir(parents=True)  # Snakemake creates output folders before the job
    result = runner.invoke(app, [str(a) for a in train_args(world, out, BASELINE)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "metrics.json", "model.pt"]
    assert sorted(p.name for p in out.parent.iterdir()) == [".seed1.lock", "seed1"]


def test_commit_folder_refuses_a_folder_with_subfolders(tmp_path):
    folder = tmp_path / "results"
    (folder / "teacher").mkdir(parents=True)
    with pytest.raises(OutputError, match="not a run folder"):
        commit_folder(folder, {"model.pt": b"x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


# ---------------------------------------------------------------- content is verified

def test_cache_of_other_data_with_recomputed_hashes(world, tmp_path):
    payload = torch.load(world["cache"], weights_only=True)
    payload["train_images"][: len(payload["train_images"]) // 2] = 0
    hashes = {name: _idx_digest(payload[key]) for key, name in MNIST_FILES.items()}
    payload.update(raw_sha256=hashes, sha256=combined_sha256(hashes))
    forged = tmp_path / "forged.pt"
    torch.save(payload, forged)
    args = ["train", "--spec", json.dumps(BASELINE), "--data", forged, "--out",
            world["baseline"]]
    assert_refused(world["root"], args, forged, "other data than the pinned MNIST")


def test_other_data_is_accepted_only_on_purpose(world, tmp_path, monkeypatch):
    from kdrepro.data.mnist import ENV_ACCEPT_SHA256, load_mnist

    payload = torch.load(world["cache"], weights_only=True)
    payload["test_labels"] = payload["test_labels"].flip(0)
    hashes = {name: _idx_digest(payload[key]) for key, name in MNIST_FILES.items()}
    payload.update(raw_sha256=hashes, sha256=combined_sha256(hashes))
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(DataError, match=ENV_ACCEPT_SHA256):
        load_mnist(other)
    monkeypatch.setenv(ENV_ACCEPT_SHA256, payload["sha256"])
    assert load_mnist(other).sha256 == payload["sha256"]


def test_soft_targets_with_most_rows_replaced(world, tmp_path):
    soft = tmp_path / "soft.pt"
    payload = torch.load(world["soft"], weights_only=True)
    payload["logits"][1:-1] = payload["logits"][1:-1].roll(1, dims=1)
    torch.save(payload, soft)
    args = train_args(world, world["baseline"], DISTILLED, "--soft-targets", soft,
                      "--teacher", world["teacher"] / "model.pt")
    assert_refused(world["root"], args, soft, "SHA-256")


@pytest.mark.parametrize("shape", ["five_columns", "one_dim", "float64", "int64", "nan"])
def test_soft_targets_of_the_wrong_shape_or_type(world, tmp_path, shape):
    logits = torch.load(world["soft"], weights_only=True)["logits"]
    forged = {"five_columns": logits[:, :5], "one_dim": logits[:, 0], "float64": logits.double(),
              "int64": logits.long(), "nan": logits * float("nan")}[shape]
    soft = tmp_path / "soft.pt"
    torch.save({**torch.load(world["soft"], weights_only=True), "logits": forged.contiguous()},
               soft)
    args = train_args(world, tmp_path / "run", DISTILLED, "--soft-targets", soft,
                      "--teacher", world["teacher"] / "model.pt")
    assert_refused(world["root"], args, soft)


def test_model_with_nan_weights(world, tmp_path):
    saved = torch.load(world["baseline"] / "model.pt", weights_only=True)
    saved["state_dict"]["layers.0.weight"][0, 0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(saved, bad)
    assert_refused(world["root"], ["evaluate", "--model", bad, "--out", tmp_path / "e.json",
                                   "--data", world["cache"]], bad, "non-finite weights")


def test_gzip_that_expands_past_the_mnist_size(world, tmp_path):
    source = tmp_path / "idx"
    shutil.copytree(world["idx"], source)
    (source / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(48 << 20)))
    with pytest.raises(DataError, match="more than 47,040,016 bytes"):
        fetch_mnist(tmp_path / "m.pt", source, sources=("dir",))
    assert not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------- bounds and tracebacks

@pytest.mark.parametrize("spec, needles", [
    ({**BASELINE, "epochs": 10**12}, ["'epochs'", "1000000000000"]),
    ({**BASELINE, "batch_size": 10**12}, ["'batch_size'"]),
    ({**BASELINE, "hidden": [100_000, 100_000]}, ["'hidden'", "100000"]),
    ({**BASELINE, "hidden": [True]}, ["'hidden'", "True"]),
    ({**BASELINE, "hidden": [1e9]}, ["'hidden'"]),
    ({**BASELINE, "hidden": [1_000_000_000]}, ["'hidden'"]),
    ({**BASELINE, "hidden": [2**63]}, ["'hidden'", str(2**63)]),
    ({**BASELINE, "max_norm": float("inf")}, ["'max_norm'", "inf"]),
    ({**DISTILLED, "hard_weight": float("inf")}, ["'hard_weight'", "inf"]),
    ({**DISTILLED, "temperature": float("inf")}, ["'temperature'", "inf"]),
    ({**BASELINE, "weight_decay": float("inf")}, ["'weight_decay'", "inf"]),
    ({**BASELINE, "lr": float("nan")}, ["'lr'", "nan"]),
    ({**DISTILLED, "role": "omit"}, ["role 'omit'", "'omit'"]),
    ({**BASELINE, "seed": 2**70}, ["'seed'", str(2**70)]),
], ids=["epochs", "batch", "hidden-huge", "hidden-true", "hidden-1e9-float", "hidden-1e9",
        "hidden-2^63", "max-norm-inf", "hard-weight-inf", "temperature-inf",
        "weight-decay-inf", "lr-nan", "omit-without-list", "seed-2^70"])
def test_spec_out_of_bounds(world, spec, needles):
    assert_refused(world["root"], train_args(world, world["baseline"], spec), *needles)


def test_temperature_so_small_the_soft_targets_overflow(world, tmp_path):
    assert_refused(world["root"], train_args(world, tmp_path / "run", {
        **DISTILLED, "temperature": 1e-300}, "--soft-targets", world["soft"], "--teacher",
        world["teacher"] / "model.pt"), "temperature 1e-300", "not finite")


def test_seed_override_too_large(world):
    assert_refused(world["root"], train_args(world, world["baseline"], BASELINE, "--seed",
                                             str(2**70)), "'seed'")


def test_yaml_spec_with_integer_keys(world, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("role: baseline\nhidden: [8]\n1: 2\n")
    assert_refused(world["root"], ["train", "--spec", f"@{spec}", "--data", world["cache"],
                                   "--out", world["baseline"]], "must be strings", "1")


def copy_run(world, tmp_path, manifest: bytes | None = None, metrics: bytes | None = None):
    run = tmp_path / "run"
    shutil.copytree(world["baseline"], run)
    if manifest is not None:
        (run / "manifest.json").write_bytes(manifest)
    if metrics is not None:
        (run / "metrics.json").write_bytes(metrics)
    return run


@pytest.mark.parametrize("manifest, needle", [(b"[]\n", "JSON list"),
                                              (b'{"spec": {"role": "omit"', "not valid JSON")])
def test_bias_on_a_broken_manifest(world, tmp_path, manifest, needle):
    run = copy_run(world, tmp_path, manifest=manifest)
    assert_refused(tmp_path, ["bias", "--run-dir", run, "--out", tmp_path / "bias.json",
                              "--paper-shift", "3.5", "--data", world["cache"]],
                   run / "manifest.json", needle)


@pytest.mark.parametrize("command", ["collect", "summarize"])
def test_metrics_that_is_a_list(world, tmp_path, command):
    results = tmp_path / "results"
    copy_run(world, results, metrics=b"[1, 2]\n")
    extra = ["--out", tmp_path / "metrics.csv"] if command == "collect" else []
    assert_refused(tmp_path, [command, results, *extra], "metrics.json", "JSON list")


def test_manifest_that_is_a_list_in_collect(world, tmp_path):
    results = tmp_path / "results"
    copy_run(world, results, manifest=b"[]\n")
    assert_refused(tmp_path, ["collect", results, "--out", tmp_path / "m.csv"], "manifest.json")


def test_model_passed_as_data(world):
    model = world["baseline"] / "model.pt"
    line = assert_refused(world["root"], train_args(world, world["teacher"], BASELINE)[:4]
                          + [model, "--out", world["root"] / "new"], model, "model file")
    assert "delete" not in line


def test_collect_out_over_a_runs_file(world):
    metrics = world["baseline"] / "metrics.json"
    assert_refused(world["root"], ["collect", world["root"], "--out", metrics], metrics)
