"""Atomic file writes: every file a rule produces appears whole or not at all."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path`, fsync it, then rename over `path`.

    mkstemp creates the temp file 0600; `mode` gives the result the usual
    permissions of a written file (others may read results and reports).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Bytes or text (UTF-8), written atomically."""
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)


def torch_save_atomic(path: Path, obj) -> None:
    """`torch.save(obj)` to `path` atomically: a killed writer leaves the old file."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def write_json(path: Path, obj) -> None:
    """Pretty, stable JSON written atomically."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path):
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
