"""The `kdrepro` command line: thin commands that parse, call the library, print."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from kdrepro import __version__
from kdrepro.cli.errors import clean_errors
from kdrepro.cli.options import DEFAULT_DATA, DataOpt, OutDirAlias, ThreadsOpt, renamed

app = typer.Typer(
    help="Reproduce Hinton, Vinyals & Dean (2015), section 3 (MNIST), and report on it.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)



def _version(value: bool) -> None:
    if value:
        typer.echo(f"kdrepro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More log output.")] = False):
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _parse_shift(items: list[str]) -> dict[int, float]:
    shifts = {}
    for item in items:
        cls, sep, value = item.partition("=")
        bad = ValueError(f"--bias-shift {item!r} is invalid: expected CLASS=SHIFT with a "
                         "class 0..9 and a finite shift, e.g. 3=3.5")
        try:
            cls_id, shift = int(cls), float(value)
        except ValueError:
            raise bad from None
        if not sep or not 0 <= cls_id <= 9 or not math.isfinite(shift):
            raise bad
        shifts[cls_id] = shift
    return shifts


def _parse_range(text: str) -> list[float]:
    from kdrepro.training.bias import shift_grid

    bad = ValueError(f"--shifts {text!r} is invalid: expected finite START:STOP:STEP, "
                     "e.g. -2:10:0.25")
    try:
        start, stop, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise bad from None
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise bad
    return shift_grid(start, stop, step)


@app.command()
def train(
    spec: Annotated[str, typer.Option(help="Run spec: JSON text, or @FILE (JSON/YAML).")],
    data: DataOpt = Path(DEFAULT_DATA),
    out: Annotated[Path, typer.Option(
        help="Folder for model.pt, metrics.json, manifest.json.")] = Path("runs/run"),
    soft_targets: Annotated[Optional[Path], typer.Option(help="Teacher logits (distilled runs).")] = None,
    teacher: Annotated[Optional[Path], typer.Option(
        help="Teacher model.pt the soft targets came from.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="Checkpoint file (default OUT/checkpoint.pt).")] = None,
    label: Annotated[Optional[str], typer.Option(help="Run name recorded in metrics.json.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the spec's seed.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the spec's epochs.")] = None,
    device: Annotated[Optional[str], typer.Option(help="Override the device: cpu, cuda or auto.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="Override the precision: fp32 or bf16.")] = None,
    threads: ThreadsOpt = 1,
    progress: Annotated[Optional[Path], typer.Option(
        help="Progress JSON rewritten after every epoch, for `kdrepro status`.")] = None,
    out_dir: OutDirAlias = None,
) -> None:
    """Train one network (teacher, baseline or distilled student) and write its results."""
    from kdrepro.cli.progress import epoch_reporter
    from kdrepro.progress import progress_file
    from kdrepro.training.runs import train_run
    from kdrepro.training.spec import parse_spec, spec_from_dict

    out = renamed(out, out_dir)
    with clean_errors():
        run_spec = parse_spec(spec)
        overrides = {k: v for k, v in (("seed", seed), ("epochs", epochs), ("device", device),
                                       ("precision", precision)) if v is not None}
        run_spec = spec_from_dict({**run_spec.to_dict(), **overrides})
        _set_threads(threads)
        run = label or str(out)
        with progress_file(progress, run, run_spec.epochs) as tracker, \
                epoch_reporter(run_spec.epochs, run, tracker) as on_epoch:
            metrics = train_run(run_spec, data, out, label=run,
                                soft_targets_path=soft_targets, teacher_path=teacher,
                                checkpoint_path=checkpoint, threads=threads, on_epoch=on_epoch)
            if tracker is not None:
                tracker.finish("finished", metrics.get("test_errors"))
    if metrics.get("scored_on") == "validation":  # a tuning run never reads the test set
        typer.echo(f"{metrics['run']}: {metrics['val_errors']} validation errors -> {out}")
    else:
        typer.echo(f"{metrics['run']}: {metrics['test_errors']} test errors -> {out}")


@app.command("soft-targets")
def soft_targets_cmd(
    teacher: Annotated[Path, typer.Option(help="Teacher model.pt.")],
    out: Annotated[Path, typer.Option(help="Output file for the teacher's training-set logits.")],
    data: DataOpt = Path(DEFAULT_DATA),
    threads: ThreadsOpt = 1,
) -> None:
    """Compute the teacher's logits on the (unjittered) training set, once."""
    from kdrepro.training.runs import soft_targets_run

    with clean_errors():
        _set_threads(threads)
        soft_targets_run(teacher, data, out, threads)
    typer.echo(f"soft targets -> {out}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="A model.pt written by `kdrepro train`.")],
    out: Annotated[Path, typer.Option(help="Metrics JSON to write.")],
    data: DataOpt = Path(DEFAULT_DATA),
    bias_shift: Annotated[Optional[list[str]], typer.Option(
        help="CLASS=SHIFT added to that class's output bias; repeatable.")] = None,
    threads: ThreadsOpt = 1,
) -> None:
    """Score a saved model on the MNIST test set."""
    from kdrepro.training.runs import evaluate_run

    with clean_errors():
        _set_threads(threads)
        metrics = evaluate_run(model, data, out, _parse_shift(bias_shift or []))
    typer.echo(f"{model}: {metrics['test_errors']} test errors -> {out}")


@app.command("bias")
def bias_cmd(
    run_dir: Annotated[Path, typer.Option(help="An omit/keep run folder (model.pt, manifest.json).")],
    out: Annotated[Path, typer.Option(help="bias.json to write.")],
    paper_shift: Annotated[Optional[float], typer.Option(  # noqa: UP045 - typer on Python 3.10
        help="The paper's shift; default from paper.yaml (omit 3: +3.5, keep 7, 8: -7.6), "
             "required for other classes.")] = None,
    shifts: Annotated[str, typer.Option(help="Sweep START:STOP:STEP.")] = "-10:10:0.25",
    set_all_biases: Annotated[Optional[float], typer.Option(  # noqa: UP045 - typer on Python 3.10
        help="Also score the model with all ten output biases set to this value (the 2020 "
             "blog's protocol, not the paper's).")] = None,
    data: DataOpt = Path(DEFAULT_DATA),
    threads: ThreadsOpt = 1,
) -> None:
    """Sweep the shifted classes' output biases; apply the paper's three protocols."""
    from kdrepro.report.paper import paper_bias_shift
    from kdrepro.training.runs import bias_run, shifted_classes

    with clean_errors():
        grid = _parse_range(shifts)
        if paper_shift is None:
            paper_shift = paper_bias_shift(*shifted_classes(run_dir))
        _set_threads(threads)
        result = bias_run(run_dir, data, paper_shift, grid, out, set_all_biases)
    chosen = {k: (v["shift"], v["test_errors"]) for k, v in result["protocols"].items()}
    typer.echo(f"{result['run']}: (shift, test errors) {json.dumps(chosen)} -> {out}")


def _mount_subcommands() -> None:
    from kdrepro.cli.block import register as register_block
    from kdrepro.cli.data import data_app
    from kdrepro.cli.report import register
    from kdrepro.cli.status import status_command

    app.add_typer(data_app, name="data", help="Fetch and verify MNIST.")
    register_block(app)
    register(app)
    app.command("status")(status_command)


_mount_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()
