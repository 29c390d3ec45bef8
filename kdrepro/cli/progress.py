"""Progress of long training runs: a bar on a terminal, one line per epoch in logs,
and (given a :class:`kdrepro.progress.ProgressFile`) the progress file `kdrepro status` reads."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from kdrepro.progress import ProgressFile

log = logging.getLogger("kdrepro")


def format_epoch(record: dict, epochs: int) -> str:
    """'epoch 3/60  loss 0.2154  test errors 112  2.4 s' from a history record."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['loss']:.4f}"]
    if "test_errors" in record:
        parts.append(f"test errors {record['test_errors']}")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)


@contextmanager
def epoch_reporter(epochs: int, label: str, tracker: ProgressFile | None = None,
                   interactive: bool | None = None) -> Iterator[Callable[[dict], None]]:
    """Yield an on-epoch callback: a rich bar on a TTY, plain log lines otherwise;
    each epoch also goes to ``tracker``'s progress file if one is given."""
    interactive = sys.stderr.isatty() if interactive is None else interactive
    track = tracker.update if tracker is not None else lambda record: None
    if not interactive:
        def log_line(record: dict) -> None:
            log.info("%s: %s", label, format_epoch(record, epochs))
            track(record)

        yield log_line
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task(label, total=epochs, status="")

        def update(record: dict) -> None:
            status = format_epoch(record, epochs).split("  ", 1)[1]
            bar.update(task, completed=record["epoch"], status=status)
            track(record)

        yield update
