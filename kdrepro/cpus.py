"""How many CPUs this process may run on, and the local core budget clamped to it.

Snakemake's ``--cores N`` is a promise of N CPUs; on a machine with fewer, jobs
started side by side oversubscribe them (a 2-thread teacher beside two 1-thread
students on 2 CPUs ran its epochs ~10x slower). The workflow clamps its core
budget with :func:`clamp_cores` before any job is scheduled.
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (taskset, cgroup cpusets,
    SLURM's --cpus-per-task), not the machine's total that os.cpu_count() gives."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def clamp_cores(requested: int | None, available: int) -> int | None:
    """The core budget to schedule with: ``requested`` but at most ``available``.

    ``None`` (no local budget, e.g. a dry run of a cluster profile) stays ``None``.
    """
    if available < 1:
        raise ValueError(f"available CPUs must be >= 1, got {available}")
    if requested is None:
        return None
    return min(requested, available)
