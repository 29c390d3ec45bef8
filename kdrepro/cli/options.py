"""The command line's shared vocabulary: one name and one default for each thing.

``--data`` is the MNIST cache, ``--out`` every output (file or folder), ``--results``
the results folder; the defaults are the workflow's paths (workflow/rules/common.smk).
Old names stay as hidden aliases for one release. Torch-free, so `--help` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_DATA = "results/data/mnist.pt"  # the workflow's DATA
DEFAULT_RESULTS = "results"
ENV_MNIST_DIR = "KDREPRO_MNIST_DIR"  # = kdrepro.data.mnist.ENV_MNIST_DIR (tested)

DataOpt = Annotated[Path, typer.Option(
    "--data", help="MNIST cache written by `kdrepro data fetch`.")]
ResultsOpt = Annotated[Path, typer.Option(
    "--results", help="Results folder of the workflow (docs/results.md).")]
ThreadsOpt = Annotated[int, typer.Option(min=1, help="Torch CPU threads (Snakemake passes {threads}).")]
OutDirAlias = Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer on Python 3.10
    "--out-dir", hidden=True, help="Deprecated name of --out.")]
# Commands that took the results folder as an argument accept it still, unlisted.
LEGACY_ARGUMENT = {"allow_extra_args": True}


def renamed(new: Path, old: Path | None) -> Path:
    """The value of an option, or of its deprecated old name when that one was given."""
    return new if old is None else old


def results_folder(ctx: typer.Context, results: Path) -> Path:
    """``--results``, or the folder given the old way, as the one argument (deprecated)."""
    if len(ctx.args) > 1:
        typer.echo(f"error: unexpected arguments {ctx.args}; name the results folder with "
                   "--results", err=True)
        raise typer.Exit(1)
    return Path(ctx.args[0]) if ctx.args else results
