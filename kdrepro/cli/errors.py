"""One way for every `kdrepro` command to fail: a single `error:` line and exit 1."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import typer

# The library's expected errors, by module. They are looked up in sys.modules when an
# error is caught: an exception of a module's class can only exist once that module is
# imported, and importing them all here would pull torch into the report commands.
EXPECTED_ERRORS = {
    "kdrepro.data.mnist": "DataError", "kdrepro.training.models": "ModelFileError",
    "kdrepro.training.soft_targets": "SoftTargetError",
    "kdrepro.training.engine": "TrainingError", "kdrepro.report.collect": "ResultsError",
    "jinja2.exceptions": "TemplateError",
}


def fail(message: str) -> None:
    """Print `error: message` to stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def expected_errors() -> tuple[type[BaseException], ...]:
    """Bad input, not bugs: ValueError, OSError, KeyError and the loaded library errors."""
    loaded = [getattr(sys.modules[module], name) for module, name in EXPECTED_ERRORS.items()
              if module in sys.modules]
    return (ValueError, OSError, KeyError, *loaded)


@contextmanager
def clean_errors():
    """Turn the library's expected errors into one `error:` line and exit 1.

    Unexpected exceptions still show a traceback: they are bugs, not bad input.
    """
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, expected_errors()):
            raise
        lines = str(exc).strip().splitlines()
        fail(lines[0] if lines else type(exc).__name__)
