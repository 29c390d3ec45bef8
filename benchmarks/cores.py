"""`--cores 4` against `--cores 2` on this machine: the workflow's shapes, timed in one run.

The workflow clamps its core budget to the CPUs in the affinity mask
(workflow/rules/cpus.smk), so `--cores` above the CPU count must not start
more threads than there are CPUs. This builds a small Snakemake workflow of
real torch jobs in the teacher/student shape (one `threads: 2` job that the
three `threads: 1` jobs do not depend on), runs it with `--cores 2` and with
`--cores 4`, alternating, and prints the wall times and their ratio; for
contrast, also `--cores 4` without the clamp (the workflow minus cpus.smk).

    python benchmarks/cores.py [--repeats 2] [--work 40] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKFLOW = """
{include}

rule all:
    input: ["out/teacher.txt"] + [f"out/student{{i}}.txt" for i in range(3)]

rule teacher:
    output: "out/teacher.txt"
    threads: 2
    shell: "{python} {script} --job --threads {{threads}} --work {work2} > {{output}}"

rule student:
    output: "out/student{{i}}.txt"
    threads: 1
    shell: "{python} {script} --job --threads {{threads}} --work {work} > {{output}}"
"""


def job(threads: int, work: int) -> None:
    """`work` rounds of 768x768 float32 matmuls on `threads` torch threads (GEMM-bound
    like training), printing its start and end (Unix seconds), threads, and seconds."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(768, 768)
    start, wall = time.perf_counter(), time.time()
    for _ in range(work * 10):
        a = torch.tanh(a @ a)
    print(f"{wall:.3f} {time.time():.3f} {threads} {time.perf_counter() - start:.3f}")


def peak_threads(spans: list[tuple[float, float, int]]) -> int:
    """Most torch threads running at one time, from (start, end, threads) of each job."""
    events = sorted([(s, t) for s, _, t in spans] + [(e, -t) for _, e, t in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def run_workflow(cores: int, work: int, clamp: bool = True) -> tuple[float, int]:
    """Wall seconds and peak threads of one fresh run of the benchmark workflow."""
    with tempfile.TemporaryDirectory(prefix="kdrepro-cores-") as tmp:
        Path(tmp, "Snakefile").write_text(WORKFLOW.format(
            include=f'include: "{ROOT / "workflow" / "rules" / "cpus.smk"}"' if clamp else "",
            python=sys.executable,
            script=Path(__file__).resolve(), work=work, work2=2 * work))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet"],
                       cwd=tmp, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        spans = [(float(a), float(b), int(t)) for a, b, t, _ in
                 (path.read_text().split() for path in Path(tmp, "out").glob("*.txt"))]
        return seconds, peak_threads(spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per --cores value")
    parser.add_argument("--work", type=int, default=40, help="matmul rounds (x10) per 1-thread job")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "cores.json")
    parser.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        return job(args.threads, args.work)
    cpus = len(os.sched_getaffinity(0))
    runs = {"--cores 2": (2, True), "--cores 4": (4, True), "--cores 4, no clamp": (4, False)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    peaks: dict[str, int] = {name: 0 for name in runs}
    for _ in range(args.repeats):
        for name, (cores, clamp) in runs.items():  # interleaved: load changes hit all three
            seconds, peak = run_workflow(cores, args.work, clamp)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
    best = {name: min(t) for name, t in times.items()}
    result = {"cpus": cpus, "seconds": times, "best": best, "peak_threads": peaks,
              "ratio_4_over_2": best["--cores 4"] / best["--cores 2"],
              "ratio_unclamped_4_over_2": best["--cores 4, no clamp"] / best["--cores 2"]}
    print(f"CPUs in the affinity mask: {cpus}")
    for name, t in times.items():
        print(f"{name:>20}: " + ", ".join(f"{s:.1f} s" for s in t)
              + f"; at most {peaks[name]} threads at once")
    print(f"ratio --cores 4 / --cores 2 (best of {args.repeats}): {result['ratio_4_over_2']:.2f}"
          " (target <= 1.05 where the machine has 2 CPUs); without the clamp: "
          f"{result['ratio_unclamped_4_over_2']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
