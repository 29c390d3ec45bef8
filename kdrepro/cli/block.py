"""`kdrepro train-block`: one process trains every temperature of one (width, seed).

A thin command over :func:`kdrepro.training.blocks.train_block`: it parses the
temperatures, builds one run spec per student and prints one line per student.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from kdrepro.cli.errors import clean_errors

log = logging.getLogger("kdrepro")


def parse_temperatures(text: str) -> list[float]:
    """'2,2.5,3' -> [2.0, 2.5, 3.0]; a ValueError naming the bad item otherwise."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ValueError(f"--temperatures {text!r} is empty: expected comma-separated "
                         "numbers > 0, e.g. 2,2.5,3")
    temperatures = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--temperatures item {item!r} is invalid: expected a number > 0")
        temperatures.append(value)
    return temperatures


def _student_specs(spec_text: str, temperatures: list[float]) -> list:
    from kdrepro.training.spec import parse_spec, spec_from_dict

    base = parse_spec(spec_text).to_dict()
    return [spec_from_dict({**base, "temperature": t}) for t in temperatures]


def _log_epoch(labels: list[str], epochs: int, tracker=None):
    """Log every student's epoch; the block's progress file gets one line for the block
    (mean loss over its students; test errors are per student, so left out there)."""
    from kdrepro.cli.progress import format_epoch

    def on_epoch(records: list[dict]) -> None:
        for label, record in zip(labels, records):
            log.info("%s: %s", label, format_epoch(record, epochs))
        if tracker is not None:
            tracker.update({"epoch": records[0]["epoch"], "seconds": records[0]["seconds"],
                            "loss": sum(r["loss"] for r in records) / len(records)})

    return on_epoch


def train_block_command(
    spec: Annotated[str, typer.Option(
        help="Run spec of the students (JSON or @FILE); each of --temperatures replaces its T.")],
    temperatures: Annotated[str, typer.Option(
        help="Comma-separated temperatures, one student each, e.g. 2,2.5,3.")],
    out_dir: Annotated[list[Path], typer.Option(
        "--out", help="Run folder of each student, in --temperatures order (repeat the option).")],
    soft_targets: Annotated[Path, typer.Option(help="Teacher logits (`kdrepro soft-targets`).")],
    teacher: Annotated[Path, typer.Option(help="Teacher model.pt the soft targets came from.")],
    label: Annotated[Optional[list[str]], typer.Option(
        help="Run name of each student for metrics.json (default: its --out).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="The block's checkpoint (default FIRST_OUT/block_checkpoint.pt).")] = None,
    data: Annotated[Path, typer.Option(
        "--data", help="MNIST cache written by `kdrepro data fetch`.")] = Path("results/data/mnist.pt"),
    threads: Annotated[int, typer.Option(min=1, help="Torch CPU threads.")] = 1,
    progress: Annotated[Optional[Path], typer.Option(
        help="Progress JSON of the block, rewritten after every epoch, for `kdrepro status`.")] = None,
) -> None:
    """Train distilled students that differ only in temperature, in one process."""
    with clean_errors():
        temps = parse_temperatures(temperatures)
        labels = list(label) if label else [str(d) for d in out_dir]
        if len(labels) != len(out_dir) or len(out_dir) != len(temps):
            raise ValueError(f"{len(temps)} temperatures need as many --out (got "
                             f"{len(out_dir)}) and --label options (got {len(labels)})")
        specs = _student_specs(spec, temps)
        import torch

        from kdrepro.progress import progress_file
        from kdrepro.training.blocks import train_block

        torch.set_num_threads(threads)
        name = f"block of {len(labels)}: {labels[0]} .. {labels[-1]}"
        with progress_file(progress, name, specs[0].epochs) as tracker:
            results = train_block(specs, data, list(out_dir), labels=labels,
                                  soft_targets_path=soft_targets, teacher_path=teacher,
                                  checkpoint_path=checkpoint or out_dir[0] / "block_checkpoint.pt",
                                  threads=threads,
                                  on_epoch=_log_epoch(labels, specs[0].epochs, tracker))
            if tracker is not None:
                tracker.finish("finished")
    for metrics, folder in zip(results, out_dir):
        typer.echo(f"{metrics['run']}: {metrics['test_errors']} test errors -> {folder}")


def register(app: typer.Typer) -> None:
    """Add `train-block` to the kdrepro Typer app."""
    app.command("train-block")(train_block_command)
