"""Tests of the `kdrepro` command line (typer's CliRunner on kdrepro.cli.app)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kdrepro import __version__
from kdrepro.cli import app
from kdrepro.training.engine import predict_logits
from kdrepro.training.models import load_model

runner = CliRunner()
BASELINE = {"role": "baseline", "hidden": [8, 8], "epochs": 2, "batch_size": 50, "lr": 0.05}
TEACHER = {"role": "teacher", "hidden": [16], "input_dropout": 0.2, "hidden_dropout": 0.5,
           "max_norm": 3.5, "jitter": 2, "epochs": 1, "batch_size": 50, "lr": 0.05}


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def assert_one_error_line(result, *needles: str) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    return lines[0]


def spec_arg(spec: dict) -> str:
    return json.dumps(spec)


def train(cache: Path, out: Path, spec: dict, *extra: str):
    return invoke("train", "--spec", spec_arg(spec), "--data", cache, "--out-dir", out, *extra)


@pytest.fixture
def cache(synthetic_mnist) -> Path:
    return synthetic_mnist[0]


# ---------------------------------------------------------------- basics


def test_version():
    result = assert_ok(invoke("--version"))
    assert result.stdout.strip() == f"kdrepro {__version__}"


def test_no_arguments_shows_help():
    result = invoke()
    assert "train" in result.output and "evaluate" in result.output


def command_paths(command=None, prefix=()) -> list[tuple[str, ...]]:
    command = command or typer.main.get_command(app)
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*prefix, name))
    return paths


def test_every_expected_command_is_registered():
    names = {" ".join(p) for p in command_paths()}
    assert {"train", "soft-targets", "evaluate", "bias", "data", "data fetch"} <= names


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "kdrepro")
def test_help_of_every_command(path):
    result = assert_ok(invoke(*path, "--help"))
    assert "Usage" in result.stdout


# ---------------------------------------------------------------- successful commands


def test_train_writes_files_and_prints_test_errors(cache, tmp_path):
    out = tmp_path / "runs" / "baseline"
    result = assert_ok(train(cache, out, BASELINE, "--label", "baseline/h8/seed1"))
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "metrics.json", "model.pt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"] == "baseline/h8/seed1" and len(metrics["history"]) == 2
    assert result.stdout.strip() == (
        f"baseline/h8/seed1: {metrics['test_errors']} test errors -> {out}")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["threads"] == 1 and manifest["spec"]["hidden"] == [8, 8]


def test_train_overrides_and_spec_file(cache, tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("role: baseline\nhidden: [8]\nepochs: 1\nbatch_size: 50\n")
    out = tmp_path / "run"
    assert_ok(invoke("train", "--spec", f"@{spec_file}", "--data", cache, "--out-dir", out,
                     "--epochs", "3", "--seed", "7", "--device", "cpu"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 3 and metrics["seed"] == 7
    assert metrics["run"] == str(out)  # the label defaults to the out-dir
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["epochs"] == 3 and manifest["seed"] == 7


def test_pipeline_teacher_soft_targets_omit_bias_evaluate(cache, tmp_path):
    teacher = tmp_path / "teacher"
    assert_ok(train(cache, teacher, TEACHER))
    soft = teacher / "soft_targets.pt"
    result = assert_ok(invoke("soft-targets", "--teacher", teacher / "model.pt", "--out", soft,
                              "--data", cache))
    assert soft.is_file() and str(soft) in result.stdout

    omit = tmp_path / "omit"
    spec = {"role": "omit", "hidden": [8, 8], "epochs": 1, "batch_size": 50, "temperature": 4,
            "omit": [3], "validation_fraction": 0.2}
    assert_ok(train(cache, omit, spec, "--soft-targets", soft, "--teacher", teacher / "model.pt"))

    bias = omit / "bias.json"
    result = assert_ok(invoke("bias", "--run-dir", omit, "--out", bias, "--paper-shift", "3.5",
                              "--shifts", "-1:2:0.5", "--data", cache))
    payload = json.loads(bias.read_text())
    assert [r["shift"] for r in payload["sweep"]] == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert list(payload["protocols"]) == ["as_trained", "paper", "test_tuned", "validation"]
    printed = json.loads(result.stdout.split("(shift, test errors) ", 1)[1].rsplit(" -> ", 1)[0])
    assert printed == {k: [v["shift"], v["test_errors"]] for k, v in payload["protocols"].items()}

    evaluated = tmp_path / "eval.json"
    result = assert_ok(invoke("evaluate", "--model", omit / "model.pt", "--out", evaluated,
                              "--data", cache, "--bias-shift", "3=1.5", "--bias-shift", "0=-0.5"))
    metrics = json.loads(evaluated.read_text())
    assert metrics["bias_shift"] == {"3": 1.5, "0": -0.5}
    assert result.stdout.strip().endswith(f"{metrics['test_errors']} test errors -> {evaluated}")
    from kdrepro.data.mnist import load_mnist

    mnist = load_mnist(cache)
    logits = predict_logits(load_model(omit / "model.pt"), mnist.test_images)
    logits[:, 3] += 1.5
    logits[:, 0] -= 0.5
    assert metrics["test_errors"] == int((logits.argmax(1) != mnist.test_labels).sum())


# ---------------------------------------------------------------- failures


SENTINELS = {"model.pt": b"sentinel model bytes\x00\x01", "metrics.json": b'{"sentinel": 1}\n',
             "manifest.json": b'{"sentinel": 2}\n', "bias.json": b'{"sentinel": 3}\n'}


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An out-dir holding earlier outputs (sentinel bytes) that a failing command must keep."""
    out = tmp_path / "out"
    out.mkdir()
    for name, data in SENTINELS.items():
        (out / name).write_bytes(data)
    return out


def assert_untouched(out: Path) -> None:
    for name, data in SENTINELS.items():
        assert (out / name).read_bytes() == data, name
    stray = {p.name for p in out.iterdir()} - set(SENTINELS) - {"checkpoint.pt"}
    assert not stray, stray


@pytest.mark.parametrize("spec,needles", [
    ('{"role": "baseline", "hidden": [8', ["JSON/YAML"]),
    ("[1, 2, 3]", ["mapping", "list"]),
    (json.dumps({**BASELINE, "colour": "red"}), ["'colour'"]),
    (json.dumps({**BASELINE, "lr": -1}), ["'lr'", "-1"]),
    (json.dumps({**BASELINE, "device": "gpu"}), ["'device'", "gpu"]),
    (json.dumps({**BASELINE, "temperature": 20}), ["'temperature'"]),
    (json.dumps({**BASELINE, "role": "distilled", "temperature": 20}), ["--soft-targets"]),
    (json.dumps({**BASELINE, "role": "distilled", "temperature": 0}), ["'temperature'", "0"]),
    (json.dumps({**BASELINE, "role": "distilled", "temperature": -2.5}), ["'temperature'", "-2.5"]),
    (json.dumps({**BASELINE, "role": "omit", "temperature": 20, "omit": list(range(10))}),
     ["empty transfer set"]),
], ids=["bad-json", "not-a-mapping", "unknown-key", "bad-lr", "bad-device",
        "baseline-with-T", "distilled-without-targets", "T-zero", "T-negative", "omit-all"])
def test_train_bad_spec(cache, out_dir, spec, needles):
    result = invoke("train", "--spec", spec, "--data", cache, "--out-dir", out_dir)
    assert_one_error_line(result, *needles)
    assert_untouched(out_dir)


def test_train_missing_spec_file(cache, out_dir, tmp_path):
    missing = tmp_path / "missing.yaml"
    assert_one_error_line(invoke("train", "--spec", f"@{missing}", "--data", cache,
                                 "--out-dir", out_dir), str(missing))
    assert_untouched(out_dir)


def test_train_bad_override(cache, out_dir):
    assert_one_error_line(train(cache, out_dir, BASELINE, "--epochs", "0"), "'epochs'", "0")
    assert_untouched(out_dir)


def test_train_missing_data_cache(out_dir, tmp_path):
    missing = tmp_path / "no" / "mnist.pt"
    assert_one_error_line(train(missing, out_dir, BASELINE), str(missing), "does not exist")
    assert_untouched(out_dir)


def test_train_on_a_file_that_is_not_a_cache(out_dir, tmp_path):
    bogus = tmp_path / "mnist.pt"
    bogus.write_bytes(b"not a cache")
    assert_one_error_line(train(bogus, out_dir, BASELINE), str(bogus))
    assert_untouched(out_dir)


def test_train_diverging_loss(cache, out_dir):
    spec = json.dumps({**BASELINE, "epochs": 4, "lr": 100, "weight_decay": 1, "hidden": [64]})
    result = invoke("train", "--spec", spec, "--data", cache, "--out-dir", out_dir)
    line = assert_one_error_line(result, "epoch")
    assert "nan" in line or "inf" in line
    assert_untouched(out_dir)


def test_train_spec_written_by_json_dumps_with_a_small_float(cache, tmp_path):
    spec = {**BASELINE, "epochs": 1, "weight_decay": 0.00001}
    assert "1e-05" in json.dumps(spec)
    assert_ok(train(cache, tmp_path / "run", spec))


def test_train_with_another_teachers_soft_targets(cache, out_dir, tmp_path):
    for seed in (1, 2):
        assert_ok(train(cache, tmp_path / f"t{seed}", {**TEACHER, "seed": seed}))
    soft = tmp_path / "t1" / "soft_targets.pt"
    assert_ok(invoke("soft-targets", "--teacher", tmp_path / "t1" / "model.pt", "--out", soft,
                     "--data", cache))
    spec = {**BASELINE, "role": "distilled", "temperature": 4}
    result = train(cache, out_dir, spec, "--soft-targets", soft,
                   "--teacher", tmp_path / "t2" / "model.pt")
    assert_one_error_line(result, str(soft), "another teacher")
    assert_untouched(out_dir)


def test_soft_targets_with_a_missing_teacher(cache, out_dir, tmp_path):
    missing = tmp_path / "absent" / "model.pt"
    result = invoke("soft-targets", "--teacher", missing, "--out", out_dir / "model.pt",
                    "--data", cache)
    assert_one_error_line(result, str(missing))
    assert_untouched(out_dir)


@pytest.fixture
def trained(cache, tmp_path) -> Path:
    run = tmp_path / "trained"
    assert_ok(train(cache, run, {**BASELINE, "epochs": 1}))
    return run


@pytest.mark.parametrize("shift", ["3:3.5", "3", "x=1", "3=big", "10=1", "-1=2", "=3.5"])
def test_evaluate_bad_bias_shift(cache, out_dir, trained, shift):
    result = invoke("evaluate", "--model", trained / "model.pt", "--out", out_dir / "metrics.json",
                    "--data", cache, "--bias-shift", shift)
    assert_one_error_line(result, f"--bias-shift {shift!r}")
    assert_untouched(out_dir)


def test_evaluate_model_that_is_not_a_model(cache, out_dir):
    result = invoke("evaluate", "--model", out_dir / "model.pt", "--out",
                    out_dir / "metrics.json", "--data", cache)
    assert_one_error_line(result, str(out_dir / "model.pt"))
    assert_untouched(out_dir)


@pytest.mark.parametrize("shifts,needle", [
    ("1:2", "'1:2'"), ("a:b:c", "'a:b:c'"), ("0:1:0.5:2", "'0:1:0.5:2'"),
    ("5:1:0.5", "5.0:1.0:0.5"), ("0:1:0", "0.0:1.0:0.0"),
])
def test_bias_bad_shifts(cache, out_dir, trained, shifts, needle):
    result = invoke("bias", "--run-dir", trained, "--out", out_dir / "bias.json",
                    "--paper-shift", "3.5", "--shifts", shifts, "--data", cache)
    assert_one_error_line(result, needle)
    assert_untouched(out_dir)


def test_bias_on_a_run_without_shifted_classes(cache, out_dir, trained):
    result = invoke("bias", "--run-dir", trained, "--out", out_dir / "bias.json",
                    "--paper-shift", "3.5", "--shifts", "0:1:0.5", "--data", cache)
    assert_one_error_line(result, str(trained), "omit/keep")
    assert_untouched(out_dir)


def test_bias_on_a_folder_without_a_run(cache, out_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("bias", "--run-dir", empty, "--out", out_dir / "bias.json",
                    "--paper-shift", "3.5", "--data", cache)
    assert_one_error_line(result, "manifest.json")
    assert_untouched(out_dir)


@pytest.mark.parametrize("shifts", ["0:inf:1", "-inf:0:1", "0:nan:1", "nan:1:0.5"])
def test_bias_non_finite_shifts(cache, out_dir, trained, shifts):
    result = invoke("bias", "--run-dir", trained, "--out", out_dir / "bias.json",
                    "--paper-shift", "3.5", "--shifts", shifts, "--data", cache)
    assert_one_error_line(result, f"'{shifts}'")
    assert_untouched(out_dir)


@pytest.mark.parametrize("shift", ["3=nan", "3=inf", "7=-inf"])
def test_evaluate_non_finite_bias_shift(cache, out_dir, trained, shift):
    result = invoke("evaluate", "--model", trained / "model.pt", "--out", out_dir / "metrics.json",
                    "--data", cache, "--bias-shift", shift)
    assert_one_error_line(result, f"--bias-shift {shift!r}")
    assert_untouched(out_dir)
