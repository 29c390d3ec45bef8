"""The `kdrepro` command line: thin Typer commands that parse, call the library, print.
Nothing here imports torch at module level, so `kdrepro --help` starts fast."""

import os

# Before torch loads MKL: its strict reproducibility mode makes float32 GEMMs give the
# same bits for any thread count, so threads can follow the load (kdrepro.training.threads)
# while a run stays a pure function of (config, seed, data).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from kdrepro.cli.app import app, main  # noqa: E402

__all__ = ["app", "main"]
