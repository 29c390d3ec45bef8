"""Seeding and the manifest that sits beside every output of a run.

A run is a pure function of (config, seed, data checksum) on CPU; the
manifest records all three plus what is needed to re-run it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("kdrepro", "torch", "torchvision", "numpy", "typer", "jinja2", "pandas",
            "matplotlib", "snakemake")


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's global generators (model initialisation uses them)."""
    random.seed(seed)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """The one generator a training run draws its batches, masks and shifts from."""
    return torch.Generator(device=device).manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda' or 'auto' (the GPU when there is one) -> torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use cpu or auto")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of cpu, cuda, auto; got {device!r}")
    return torch.device(device)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(cwd: Path | None = None) -> str | None:
    """The checkout's commit (with '+dirty' when it has local changes), or None."""
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
        commit = run("rev-parse", "HEAD").stdout.strip()
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(spec: dict, *, data_sha256: str, device: str, threads: int,
             wall_seconds: float, outputs: dict[str, Path], inputs: dict[str, Path] | None = None,
             started: datetime | None = None) -> dict:
    """Everything needed to re-run and to trust one output."""
    return {
        "spec": spec, "seed": spec.get("seed"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": package_versions(), "git_commit": git_commit(),
        "data_sha256": data_sha256, "device": device, "threads": threads,
        "wall_seconds": round(wall_seconds, 3),
        "started": (started or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "platform": platform.platform(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "inputs": {k: file_sha256(p) for k, p in (inputs or {}).items()},
        "outputs": {k: file_sha256(p) for k, p in outputs.items()},
    }
