"""Time to load the real MNIST cache with full verification (kdrepro.data.mnist.load_mnist).

Usage: python benchmarks/mnist_load.py [--cache data/mnist.pt] [--repeats 7]
Builds a temporary cache from ../shared/datasets/mnist when --cache is absent and
prints the median, min and max seconds of load_mnist(verify=True) and (verify=False)
as JSON, with the other processes' CPU load measured over the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import OutsideLoad  # noqa: E402

from kdrepro.data.fetch import fetch_mnist  # noqa: E402
from kdrepro.data.mnist import load_mnist  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def _times(cache: Path, verify: bool, repeats: int) -> dict:
    seconds = []
    for _ in range(repeats):
        tic = time.perf_counter()
        load_mnist(cache, verify=verify)
        seconds.append(time.perf_counter() - tic)
    return {"median_s": round(statistics.median(seconds), 4), "min_s": round(min(seconds), 4),
            "max_s": round(max(seconds), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        cache = args.cache or Path(work) / "mnist.pt"
        if args.cache is None:
            fetch_mnist(cache, SHARED, sources=("dir",))
        with OutsideLoad() as outside:
            result = {"verify": _times(cache, True, args.repeats),
                      "no_verify": _times(cache, False, args.repeats)}
    result["outside_load_cores"] = outside.cores
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
