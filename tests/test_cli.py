"""Tests of the `kdrepro` command line (typer's CliRunner on kdrepro.cli.app)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kdrepro import __version__
from kdrepro.cli import app
from kdrepro.training.engine import predict_logits
from kdrepro.training.models import load_model

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[1]
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
    return invoke("train", "--spec", spec_arg(spec), "--data", cache, "--out", out, *extra)


@pytest.fixture
def cache(synthetic_mnist) -> Path:
    return synthetic_mnist[0]


# ---------------------------------------------------------------- basics


def test_version():
    result = assert_ok(invoke("--version"))
    assert result.stdout.strip() == f"kdrepro {__version__}"


def command_paths(command=None, prefix=()) -> list[tuple[str, ...]]:
    command = command or typer.main.get_command(app)
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*prefix, name))
    return paths


def click_command(path: tuple[str, ...]):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


EXPECTED_COMMANDS = {"train", "soft-targets", "evaluate", "bias", "collect", "report",
                     "summarize", "data", "data fetch"}


def test_no_arguments_lists_every_command():
    result = invoke()
    assert result.exit_code in (0, 2), result.output  # click: help shown, no command run
    for name in EXPECTED_COMMANDS - {"data fetch"}:
        assert f" {name} " in result.output, name


def test_every_expected_command_is_registered():
    names = {" ".join(p) for p in command_paths()}
    assert EXPECTED_COMMANDS <= names


@pytest.mark.parametrize("path", [p for p in command_paths() if p],
                         ids=lambda p: " ".join(p))
def test_help_of_every_command_lists_its_options(path):
    command = click_command(path)
    result = assert_ok(invoke(*path, "--help"))
    summary = (command.help or "").split(".")[0].split()[:4]
    assert " ".join(summary) in " ".join(result.stdout.split()), summary
    for param in command.params:
        if getattr(param, "hidden", False) or not param.opts[0].startswith("--"):
            continue
        assert param.opts[0] in result.stdout, (path, param.opts[0])
    assert "--out-dir" not in result.stdout and "--cache" not in result.stdout


# ---------------------------------------------------------------- one vocabulary


def visible_options(path) -> dict[str, object]:
    """{option name: default} of a command's listed options."""
    return {p.opts[0]: p.default for p in click_command(path).params
            if p.opts[0].startswith("--") and not getattr(p, "hidden", False)}


@pytest.mark.parametrize("path", [("train",), ("soft-targets",), ("evaluate",), ("bias",),
                                  ("data", "fetch")], ids=" ".join)
def test_the_mnist_cache_is_data_with_the_workflows_default(path):
    options = visible_options(path)
    assert Path(options["--data"]) == Path("results/data/mnist.pt")  # common.smk's DATA
    # every command writes to --out, except `data fetch`, whose output is the cache itself
    assert ("--out" in options) != (path == ("data", "fetch"))


@pytest.mark.parametrize("path", [("collect",), ("report",), ("summarize",)], ids=" ".join)
def test_the_results_folder_is_one_option(path):
    command = click_command(path)
    assert Path(visible_options(path)["--results"]) == Path("results")
    assert not [p for p in command.params if p.param_type_name == "argument"]


def test_every_output_is_out():
    for path in command_paths():
        names = set(visible_options(path)) if path else set()
        assert not names & {"--out-dir", "--output", "--cache", "--results-dir"}, path


def test_workflow_rules_use_the_vocabulary():
    rules = "".join(p.read_text() for p in (REPO_ROOT / "workflow" / "rules").glob("*.smk"))
    assert "--out-dir" not in rules and "--cache" not in rules
    assert "kdrepro collect --results results" in rules


def test_train_default_data_is_the_workflows_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--spec", spec_arg(BASELINE), "--out", tmp_path / "run")
    assert_one_error_line(result, "results/data/mnist.pt", "does not exist")


def test_old_out_dir_name_still_works(cache, tmp_path):
    out = tmp_path / "old"
    assert_ok(invoke("train", "--spec", spec_arg({**BASELINE, "epochs": 1}), "--data", cache,
                     "--out-dir", out))
    assert (out / "metrics.json").is_file()


# ---------------------------------------------------------------- no torch for --help


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(REPO_ROOT),
                                                       "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


def test_help_of_every_command_does_not_import_torch():
    helps = [list(p) + ["--help"] for p in command_paths()]
    code = ("from typer.testing import CliRunner\nfrom kdrepro.cli import app\n"
            f"for args in {helps!r}:\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0, args")
    loaded = modules_after(code)
    assert "kdrepro.cli.app" in loaded and "typer" in loaded
    assert "torch" not in loaded, "a --help imported torch"


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
    assert_ok(invoke("train", "--spec", f"@{spec_file}", "--data", cache, "--out", out,
                     "--epochs", "3", "--seed", "7", "--device", "cpu"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 3 and metrics["seed"] == 7
    assert metrics["run"] == str(out)  # the label defaults to --out
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
    result = assert_ok(invoke("bias", "--run-dir", omit, "--out", bias,  # paper.yaml's +3.5
                              "--shifts", "-1:2:0.5", "--data", cache))
    payload = json.loads(bias.read_text())
    assert payload["paper_shift"] == 3.5 and payload["protocols"]["paper"]["shift"] == 3.5
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
    """An output folder holding earlier outputs (sentinel bytes) that a failing command must keep."""
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
    result = invoke("train", "--spec", spec, "--data", cache, "--out", out_dir)
    assert_one_error_line(result, *needles)
    assert_untouched(out_dir)


def test_train_missing_spec_file(cache, out_dir, tmp_path):
    missing = tmp_path / "missing.yaml"
    assert_one_error_line(invoke("train", "--spec", f"@{missing}", "--data", cache,
                                 "--out", out_dir), str(missing))
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
    result = invoke("train", "--spec", spec, "--data", cache, "--out", out_dir)
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


def _transfer_manifest(trained: Path, dest: Path, **transfer) -> Path:
    """A copy of a trained run whose manifest says it is an omit/keep run of ``transfer``."""
    dest.mkdir()
    for name in ("model.pt", "metrics.json"):
        (dest / name).write_bytes((trained / name).read_bytes())
    manifest = json.loads((trained / "manifest.json").read_text())
    role = "omit" if "omit" in transfer else "keep"
    manifest["spec"] = {**manifest["spec"], "role": role, "temperature": 4.0, **transfer}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_bias_paper_shift_defaults_from_paper_yaml(cache, tmp_path, trained):
    run = _transfer_manifest(trained, tmp_path / "keep", keep=[8, 7])
    bias = tmp_path / "bias.json"
    assert_ok(invoke("bias", "--run-dir", run, "--out", bias, "--shifts", "-8:0:4",
                     "--data", cache))
    assert json.loads(bias.read_text())["paper_shift"] == -7.6
    assert_ok(invoke("bias", "--run-dir", run, "--out", bias, "--shifts", "-8:0:4",
                     "--data", cache, "--paper-shift", "-2"))
    assert json.loads(bias.read_text())["paper_shift"] == -2.0


def test_bias_paper_shift_is_required_for_other_classes(cache, out_dir, tmp_path, trained):
    run = _transfer_manifest(trained, tmp_path / "omit5", omit=[5])
    result = invoke("bias", "--run-dir", run, "--out", out_dir / "bias.json", "--data", cache)
    assert_one_error_line(result, "no bias shift for omit [5]", "--paper-shift", "omit3 (+3.5)",
                          "keep78 (-7.6)")
    assert_untouched(out_dir)
