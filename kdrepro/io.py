"""Atomic writes: every file a rule produces appears whole or not at all, and a run
folder appears all at once (:func:`commit_folder`, under :func:`folder_lock`)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


class OutputError(ValueError):
    """An output cannot be written safely (one line naming the path and why)."""


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
    """Read a JSON file; a truncated or malformed one is a ValueError naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); truncated or "
                         "not written by kdrepro") from None


def read_json_object(path: Path, what: str = "JSON file") -> dict:
    """A JSON file that must hold an object (mapping): manifests, metrics, bias files."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} holds a JSON {type(data).__name__}, expected an object "
                         "written by kdrepro")
    return data


def bytes_sha256(data: bytes) -> str:
    """SHA-256 of bytes (what :func:`kdrepro.provenance.file_sha256` gives for the file)."""
    return hashlib.sha256(data).hexdigest()


def torch_bytes(obj) -> bytes:
    """The bytes `torch.save(obj)` writes."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# ---- run folders: one writer at a time, all files at once ------------------------------

def _sibling(folder: Path, tag: str) -> Path:
    """A hidden path beside ``folder`` (same file system, so renames are atomic)."""
    return folder.parent / f".{folder.name}.{tag}"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a `.NAME.lock` file beside it, flock'ed).

    A second writer fails at once with the first one's pid. The lock file stays
    (unlinking a flock'ed file races with the next locker); the kernel drops the
    lock when the process dies, so a killed run never leaves a stale lock.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = _sibling(folder, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise OutputError(f"{folder} is being written by another kdrepro process (pid "
                              f"{holder}); wait for it to finish or choose another "
                              "output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o644)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(ctypes.get_errno(), f"cannot swap {a} and {b}")


def _carry_over(folder: Path, staging: Path, names: set[str]) -> None:
    """Hard-link the files of ``folder`` that are not being replaced into ``staging``."""
    for entry in folder.iterdir():
        if entry.name in names:
            continue
        if entry.is_dir() and not entry.is_symlink():
            raise OutputError(f"{folder} holds the folder {entry.name}/, so it is not a run "
                              "folder; choose another output folder")
        try:
            os.link(entry, staging / entry.name, follow_symlinks=False)
        except OSError:  # a file system without hard links
            shutil.copy2(entry, staging / entry.name, follow_symlinks=False)


def commit_folder(folder: Path, files: Mapping[str, bytes]) -> None:
    """Place ``files`` (name -> bytes) in ``folder`` all at once (docs/results.md).

    They are written and fsync'ed in a staging folder beside ``folder``; files of an
    existing ``folder`` that are not replaced (a teacher's soft targets, a bias.json,
    a checkpoint) are hard-linked into it; then the staging folder and ``folder`` are
    swapped in one rename (RENAME_EXCHANGE; where the file system lacks it, the old
    folder is renamed aside first) and the old folder is removed. Readers see the old
    run or the new one, never a mix. Call it under :func:`folder_lock`.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder; choose another output folder")
    staging, aside = _sibling(folder, "staging"), _sibling(folder, "old")
    for leftover in (staging, aside):  # only a killed commit leaves these hidden names
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name, data in files.items():
            _write_file(staging / name, data)
        if folder.is_dir():
            _carry_over(folder, staging, set(files))
        _fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, folder, aside)


def _swap_in(staging: Path, folder: Path, aside: Path) -> None:
    """Make the staging folder ``folder``; remove the old folder only once that is done."""
    if not folder.is_dir():
        os.rename(staging, folder)
    elif _exchange(staging, folder):
        shutil.rmtree(staging)  # the old folder now sits at the staging path
    else:
        os.rename(folder, aside)
        try:
            os.rename(staging, folder)
        except BaseException:
            os.rename(aside, folder)  # put the previous run back
            raise
        shutil.rmtree(aside)
    _fsync_dir(folder.parent)
