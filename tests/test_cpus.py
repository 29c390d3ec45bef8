"""The local core budget is clamped to the CPUs there are (kdrepro.cpus, workflow/rules/cpus.smk)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdrepro.cpus import available_cpus, clamp_cores

ROOT = Path(__file__).resolve().parents[1]

# Four jobs of the workflow's shapes (one 2-thread "teacher", three 1-thread "students"),
# each recording its start and end time and its {threads}.
SLEEP_WORKFLOW = """
include: "{cpus_smk}"

rule all:
    input: ["out/teacher.txt"] + [f"out/student{{i}}.txt" for i in range(3)]

rule teacher:
    output: "out/teacher.txt"
    threads: 2
    shell: "s=$(date +%s.%N); sleep 0.6; echo $s $(date +%s.%N) {{threads}} > {{output}}"

rule student:
    output: "out/student{{i}}.txt"
    threads: 1
    shell: "s=$(date +%s.%N); sleep 0.6; echo $s $(date +%s.%N) {{threads}} > {{output}}"
"""


@pytest.mark.parametrize("requested, available, expected", [
    (4, 2, 2), (2, 2, 2), (1, 16, 1), (None, 2, None)])
def test_clamp_cores(requested, available, expected):
    assert clamp_cores(requested, available) == expected


def test_clamp_cores_refuses_no_cpus():
    with pytest.raises(ValueError, match="got 0"):
        clamp_cores(4, 0)


def test_available_cpus_follows_the_affinity_mask():
    assert available_cpus() == len(os.sched_getaffinity(0))


def _snakemake_on_one_cpu(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake with an affinity mask of one CPU, whatever this machine has."""
    one_cpu = {min(os.sched_getaffinity(0))}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.sched_setaffinity(0, one_cpu))


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_cores_4_on_one_cpu_runs_one_thread_at_a_time(tmp_path):
    (tmp_path / "Snakefile").write_text(SLEEP_WORKFLOW.format(
        cpus_smk=ROOT / "workflow" / "rules" / "cpus.smk"))
    result = _snakemake_on_one_cpu(tmp_path, "--cores", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("note: --cores 4 but this process may use 1 CPUs") == 1
    assert "Provided cores: 1" in log
    records = [(tmp_path / "out" / f"{name}.txt").read_text().split()
               for name in ("teacher", "student0", "student1", "student2")]
    assert [int(r[2]) for r in records] == [1, 1, 1, 1]  # the 2-thread rule scaled down
    assert _max_overlap([(float(r[0]), float(r[1])) for r in records]) == 1


def test_workflow_dry_run_says_it_clamps(tmp_path):
    for name in ("Snakefile", "workflow", "config"):
        src = ROOT / name
        if src.is_dir():
            subprocess.run(["cp", "-r", str(src), str(tmp_path / name)], check=True)
        else:
            (tmp_path / name).write_bytes(src.read_bytes())
    result = _snakemake_on_one_cpu(tmp_path, "-n", "--cores", "4", "reports/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("running at most 1 threads at once") == 1
    teacher_job = log[log.index("rule train_teacher:"):].split("\n\n")[0].split("[")[0]
    assert "threads: 2" not in teacher_job  # dry runs show threads only when > 1


def test_no_clamp_without_a_local_core_budget(tmp_path):
    """--jobs without --cores (as under the SLURM profile) leaves the budget alone."""
    (tmp_path / "Snakefile").write_text(SLEEP_WORKFLOW.format(
        cpus_smk=ROOT / "workflow" / "rules" / "cpus.smk"))
    result = _snakemake_on_one_cpu(tmp_path, "-n", "--executor", "slurm", "--jobs", "10")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "note: --cores" not in result.stdout + result.stderr
