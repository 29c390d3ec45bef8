"""How busy the shared machine is: other processes' CPU use, and waiting for quiet.

Two cores are shared with other people's test runs; with 2 OpenMP threads a
busy neighbour costs a scheduler time slice at every parallel region, so
figures taken under load say nothing about the code. Each part records the
load it ran under; `--wait-quiet` lets a run wait for a quiet spell first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

QUIET_CORES = 0.1  # other processes' CPU use below which a figure counts as clean


def _busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux), or None."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()  # this process and its finished children (part 5's jobs)
    return t.user + t.system + t.children_user + t.children_system


class OutsideLoad:
    """Cores' worth of CPU that other processes used while a block ran (None off Linux)."""

    cores: float | None = None

    def __enter__(self):
        self._start = (_busy_seconds(), _own_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy0, own0, wall0 = self._start
        busy = _busy_seconds()
        if busy is None or busy0 is None:
            return
        others = (busy - busy0) - (_own_seconds() - own0)
        self.cores = max(0.0, others) / max(time.perf_counter() - wall0, 1e-9)


def wait_quiet(max_seconds: float, window: float = 2.0) -> float:
    """Sleep until others use < QUIET_CORES over `window` s, at most `max_seconds`.

    Returns the seconds waited (0 when `max_seconds` is 0 or /proc is absent).
    """
    tic = time.perf_counter()
    while time.perf_counter() - tic < max_seconds:
        with OutsideLoad() as outside:
            time.sleep(window)
        if outside.cores is None or outside.cores < QUIET_CORES:
            break
    return time.perf_counter() - tic
