"""Seeding and the manifest that sits beside every output of a run.

A run is a pure function of (config, seed, data checksum) on CPU; the
manifest records all three plus what is needed to re-run it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import re
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


# Paths the workflow itself writes inside the checkout. A run that rewrote the tracked
# reports/report.html made every later run's manifest '+dirty' although no code had changed;
# outputs do not change what the code computes, so they never make the commit dirty.
OUTPUT_PATHS = ("results", "reports", ".snakemake")
MAX_DIRTY_PATHS = 20
SOURCE_DIR = Path(__file__).resolve().parent


def _git(cwd: Path | None, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                          check=True).stdout


def git_state(cwd: Path | None = None) -> tuple[str | None, list[str]]:
    """(commit, tracked files changed outside OUTPUT_PATHS) of the checkout, or (None, []).

    ``cwd`` defaults to the folder of this package, so the commit is that of the code that
    ran, whatever the working directory. `git status` compares contents, not only stat
    data, so a file that was merely touched is not counted; untracked files are not counted.
    """
    try:
        root = _git(cwd or SOURCE_DIR, "rev-parse", "--show-toplevel").strip()
        commit = _git(root, "rev-parse", "HEAD").strip()
        excluded = [f":(exclude,top){path}" for path in OUTPUT_PATHS]
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)
    except (OSError, subprocess.SubprocessError):
        return None, []
    return commit, [line[3:] for line in status.splitlines() if line.strip()]


def git_commit(cwd: Path | None = None) -> str | None:
    """The checkout's commit (with '+dirty' when tracked code has local changes), or None."""
    commit, dirty = git_state(cwd)
    return None if commit is None else commit + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _build_setting(config: str, key: str) -> str | None:
    """A `KEY=value` of torch's build settings (torch.__config__.show())."""
    found = re.search(rf"\b{key}=([^,\s]+)", config)
    return found.group(1) if found else None


def _blas_library(config: str) -> str | None:
    """The line of torch.__config__.show() naming the BLAS library and its version."""
    for line in config.splitlines():
        if re.search(r"Math Kernel Library|OpenBLAS|BLIS|Accelerate|Arm Performance", line):
            return line.strip(" -")
    return None


def machine_info(threads_requested: int) -> dict:
    """The CPU and math libraries a result was computed with.

    Error counts differ between CPUs and BLAS builds for the same spec and seed (issue 17:
    67 teacher errors on an AMD guest, 76 on an Intel one), so they belong in the manifest.
    """
    config = torch.__config__.show()
    return {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": _build_setting(config, "BLAS_INFO"), "blas_library": _blas_library(config),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "threads_requested": threads_requested,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
    }


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(spec: dict, *, data_sha256: str, device: str, threads: int,
             wall_seconds: float, outputs: dict[str, Path], inputs: dict[str, Path] | None = None,
             started: datetime | None = None, precision: str | None = None,
             gemm_path: str | None = None) -> dict:
    """Everything needed to re-run and to trust one output.

    ``threads`` is what was asked for; ``machine.torch_threads`` what torch used when the
    manifest was written. ``precision`` and ``gemm_path`` are the engine's, when it knows.
    """
    commit, dirty = git_state()
    return {
        "spec": spec, "seed": spec.get("seed"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": package_versions(),
        "git_commit": None if commit is None else commit + ("+dirty" if dirty else ""),
        "git_dirty_paths": dirty[:MAX_DIRTY_PATHS],
        "data_sha256": data_sha256, "device": device, "threads": threads,
        "precision": precision, "gemm_path": gemm_path,
        "machine": machine_info(threads),
        "wall_seconds": round(wall_seconds, 3),
        "started": (started or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "platform": platform.platform(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "inputs": {k: file_sha256(p) for k, p in (inputs or {}).items()},
        "outputs": {k: file_sha256(p) for k, p in outputs.items()},
    }
