"""`kdrepro status`: each training job's epoch, loss, test errors and ETA, from the
progress files under RESULTS/progress/ (kdrepro.progress); no torch import."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from kdrepro.cli.errors import fail

STYLES = {"running": "cyan", "finished": "green", "failed": "red", "stale": "yellow"}


def fmt_duration(seconds: float | None) -> str:
    """'42 s', '7 min 05 s', '1 h 02 min'; '—' when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def job_row(job: dict, now: float) -> list[str]:
    """The table cells of one job."""
    loss = job.get("loss")
    errors, val_errors = job.get("test_errors"), job.get("val_errors")
    shown = (str(errors) if errors is not None
             else f"{val_errors} (val)" if val_errors is not None else "—")
    return [job["run"], job["state"], f"{job.get('epoch', 0)}/{job['epochs']}",
            "—" if loss is None else f"{loss:.4f}", shown,
            fmt_duration(job.get("epoch_seconds")),
            fmt_duration(job.get("eta_seconds")) if job["state"] == "running" else "—",
            fmt_duration(now - job["updated"]) + " ago" if "updated" in job else "—"]


def _print_table(jobs: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Training jobs")
    for column in ("run", "state", "epoch", "loss", "test errors", "epoch time", "ETA",
                   "updated"):
        table.add_column(column, justify="left" if column in ("run", "state") else "right")
    now = time.time()
    for job in jobs:
        cells = job_row(job, now)
        cells[1] = f"[{STYLES.get(job['state'], 'white')}]{cells[1]}[/]"
        table.add_row(*cells)
    Console().print(table)


def status_command(
    results: Annotated[Path, typer.Option("--results", help="Results folder.")] = Path("results"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON.")] = False,
) -> None:
    """Show every training job: running, finished, failed or stale (its process gone)."""
    from kdrepro.progress import PROGRESS_DIR, read_jobs

    if not results.is_dir():
        fail(f"results folder not found: {results}")
    jobs = read_jobs(results)
    if as_json:
        typer.echo(json.dumps(jobs, indent=2))
        return
    if not jobs:
        typer.echo(f"no training job has reported progress yet ({results / PROGRESS_DIR})")
        return
    _print_table(jobs)
    counts = {state: sum(job["state"] == state for job in jobs) for state in STYLES}
    typer.echo(", ".join(f"{n} {state}" for state, n in counts.items() if n))
