"""The `kdrepro` command line: thin Typer commands that parse, call the library, print.
Nothing here imports torch at module level, so `kdrepro --help` starts fast."""

from kdrepro.cli.app import app, main

__all__ = ["app", "main"]
