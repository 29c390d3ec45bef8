"""Torch threads that follow the cores actually free, re-decided every epoch.

With OpenMP, every parallel region ends in a barrier: when another process
holds one of the cores, one of our threads waits for a time slice at each of
the ~15 regions of a training step, and a 2-thread teacher epoch on 2 cores
ran 3.5x slower (issue 12). Running with one thread fewer per busy core
avoids the barrier stalls. The load is measured over the previous epoch
(other processes' CPU time = all CPU time in /proc/stat minus our own), so
deciding costs nothing; the first epoch uses a 0.2 s sample.

Determinism: the thread count must not change the bits. oneDNN's bf16 GEMMs
and torch's own kernels give the same bits for 1 and 2 threads; MKL's sgemm
does only in its strict reproducibility mode, which the CLI switches on
(MKL_CBWR=AUTO,STRICT before torch loads). Without it, `adapt` is off and the
thread count stays as asked.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import torch

BUSY_CORE = 0.6  # others' CPU use (cores) from which a core counts as taken
_STAT = Path("/proc/stat")


def cpu_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux), or None."""
    try:
        fields = [int(v) for v in _STAT.read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of this process (all threads)."""
    t = os.times()
    return t.user + t.system


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def deterministic_across_threads() -> bool:
    """Whether MKL runs in its strict (thread-count-independent) mode."""
    return os.environ.get("MKL_CBWR", "").upper().replace(" ", "").endswith(",STRICT")


class ThreadPolicy:
    """Threads for the next epoch: `requested`, minus the cores others keep busy."""

    def __init__(self, requested: int, adapt: bool | None = None):
        self.requested = max(1, int(requested))
        if adapt is None:
            adapt = self.requested > 1 and deterministic_across_threads()
        self.adapt = adapt
        self.used: Counter[int] = Counter()
        self._mark: tuple | None = None

    def _sample(self) -> tuple:
        return cpu_seconds(), own_seconds(), time.perf_counter()

    def _others_since_mark(self) -> float | None:
        if self._mark is None or self._mark[0] is None:
            return None
        (busy0, own0, wall0), (busy, own, wall) = self._mark, self._sample()
        if busy is None:
            return None
        return max(0.0, (busy - busy0) - (own - own0)) / max(wall - wall0, 1e-6)

    def choose(self, others: float | None) -> int:
        """Threads given `others` cores busy elsewhere (None: unknown -> as asked)."""
        if not self.adapt or others is None:
            return self.requested
        free = usable_cores() - int(others + (1 - BUSY_CORE))
        return max(1, min(self.requested, free))

    def before_epoch(self) -> int:
        """Set and return this epoch's thread count."""
        if self.adapt and self._mark is None:
            self._mark = self._sample()
            time.sleep(0.2)
        threads = self.choose(self._others_since_mark())
        torch.set_num_threads(threads)
        self.used[threads] += 1
        self._mark = self._sample()
        return threads

    def summary(self) -> dict:
        """Manifest fields: what was asked and how many epochs ran at each count."""
        return {"threads_requested": self.requested, "threads_adaptive": self.adapt,
                "epochs_per_thread_count": {str(k): v for k, v in sorted(self.used.items())}}
