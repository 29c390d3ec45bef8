"""One way for every `kdrepro` command to fail: a single `error:` line and exit 1."""

from __future__ import annotations

from contextlib import contextmanager

import typer


def fail(message: str) -> None:
    """Print `error: message` to stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def clean_errors():
    """Turn the library's expected errors into one `error:` line and exit 1.

    Unexpected exceptions still show a traceback: they are bugs, not bad input.
    """
    from jinja2 import TemplateError

    from kdrepro.data.mnist import DataError
    from kdrepro.report.collect import ResultsError
    from kdrepro.training.engine import TrainingError
    from kdrepro.training.models import ModelFileError
    from kdrepro.training.soft_targets import SoftTargetError

    try:
        yield
    except (DataError, ModelFileError, SoftTargetError, TrainingError, ResultsError,
            TemplateError, ValueError, OSError, KeyError) as exc:
        lines = str(exc).strip().splitlines()
        fail(lines[0] if lines else type(exc).__name__)
