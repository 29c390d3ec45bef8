"""Process-level CPU settings for a training job: threads and the allocator.

Every SGD step frees and re-allocates the gradients and activations (MBs
each). glibc serves blocks that large with mmap and returns them to the OS
on free, so the next step page-faults them back in, zeroed: ~300 minor faults
and ~1 ms of kernel time per teacher step, and cold caches for the GEMMs that
write into them (benchmarks/README.md). Raising malloc's mmap and trim
thresholds keeps freed blocks in the heap for reuse. Numbers are unchanged:
only where the buffers live changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks (< 1 GiB) for reuse; False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def configure_cpu(threads: int) -> None:
    """Torch's intra-op threads (Snakemake passes the rule's `threads`) and the allocator."""
    torch.set_num_threads(threads)
    keep_freed_memory()
