"""The allocator setting: freed training buffers are reused, not faulted back in."""

import subprocess
import sys

import pytest
import torch

from kdrepro.runtime import configure_cpu

# Four 8 MB buffers allocated and freed 20 times, as gradients and activations
# are in every SGD step; prints the minor page faults of the second round.
CHURN = """
import ctypes, resource, sys, torch
from kdrepro.runtime import keep_freed_memory
libc = ctypes.CDLL("libc.so.6")
# glibc's static defaults (128 KiB), before its dynamic threshold adjusts: the
# control case, in which big blocks are mmapped and unmapped on every free
libc.mallopt(-3, 128 * 1024), libc.mallopt(-1, 128 * 1024)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def churn():
    for _ in range(20):
        bufs = [torch.empty(2_000_000).fill_(1.0) for _ in range(4)]
        del bufs
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_buffers_are_reused_without_page_faults():
    assert _faults("default") > 10_000  # every buffer faulted in again, zeroed by the kernel
    assert _faults("keep") < 100


def test_configure_cpu_sets_torch_threads():
    old = torch.get_num_threads()
    try:
        configure_cpu(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)
