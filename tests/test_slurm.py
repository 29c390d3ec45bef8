"""The workflow on a real single-node SLURM, through snakemake-executor-plugin-slurm.

Marked `slurm`. Needs root, Debian's `slurmctld slurmd slurm-client munge`
(installed by .ci/run) and the `slurm` extra; skips with the reason otherwise.
tests/slurm_cluster.py starts munged, slurmctld and slurmd for this host
(no cgroups, no accounting) and stops them by PID afterwards.

A slice of the quick overlay (the teacher for one epoch and the hard-label
baseline) runs with the repository's SLURM profile; every training job must be
a SLURM job (its manifest records SLURM_JOB_ID), fetch_mnist must stay on the
submit host, and a job that exits 1 must make Snakemake exit non-zero.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, SlurmStartError, missing_requirements

ROOT = Path(__file__).resolve().parents[1]
COPY = ("Snakefile", "workflow", "config", "templates", "profiles")
TEACHER, BASELINE = "teacher/seed1", "baseline/h800/seed1"
TARGETS = [f"results/{run}/metrics.json" for run in (TEACHER, BASELINE)]
# Settings this test cluster needs beyond the profile: no accounting database, so
# job states come from squeue (MinJobAge keeps finished jobs visible) and no account
# can be looked up; a short first status check keeps the test quick.
CLUSTER_ARGS = ("--slurm-status-command", "squeue", "--slurm-no-account",
                "--slurm-init-seconds-before-status-checks", "2")
TIMEOUT = 600

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = missing_requirements()
    if reason is None and importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        reason = 'snakemake-executor-plugin-slurm not installed: pip install -e ".[slurm]"'
    if reason:
        pytest.skip(reason)
    # Finished jobs stay visible to squeue for MinJobAge seconds: the plugin's status
    # check needs that, and so do this test's checks of every job's state.
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), min_job_age=1800)
    try:
        cluster.start()
    except SlurmStartError as error:
        cluster.stop()
        pytest.fail(f"the test cluster did not start: {error}")
    yield cluster
    cluster.stop()


def _snakemake(cluster: SlurmCluster, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m snakemake` in workdir; jobs inherit PATH (sbatch --export=ALL): kdrepro."""
    bindir = str(Path(sys.executable).parent)
    env = {**cluster.env, "PATH": f"{bindir}{os.pathsep}{cluster.env['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def _project_copy(tmp: Path) -> Path:
    for name in COPY:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / name)
    return tmp


def _slurm_jobs(cluster: SlurmCluster) -> dict[str, dict[str, str]]:
    """Jobs slurmctld still knows: id -> comment (rule_<name>_...), CPUs, memory, state."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%k|%C|%m|%T"],
                         env=cluster.env, capture_output=True, text=True, timeout=30, check=True)
    jobs = {}
    for line in out.stdout.splitlines():
        job_id, comment, cpus, mem, state = line.strip().split("|")
        jobs[job_id] = {"comment": comment, "cpus": cpus, "mem": mem, "state": state}
    return jobs


def _rule_request(log: str, rule: str) -> tuple[int, int]:
    """(threads, mem_mb) of a rule's job, as Snakemake printed it."""
    block = log.split(f"rule {rule}:", 1)[1].split("\n\n", 1)[0]
    threads = re.search(r"^\s*threads: (\d+)$", block, re.M)
    mem_mb = re.search(r"\bmem_mb=(\d+)", block)
    assert mem_mb, block
    return (int(threads.group(1)) if threads else 1), int(mem_mb.group(1))


def _megabytes(squeue_mem: str) -> int:
    """squeue's %m (e.g. 3000M, 4G) in MB."""
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}
    unit = squeue_mem[-1].upper()
    return round(float(squeue_mem[:-1]) * scale[unit]) if unit in scale else int(squeue_mem)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, real_mnist_dir):
    workdir = _project_copy(tmp_path_factory.mktemp("slurm-workflow"))
    # The quick overlay, with a one-epoch teacher. (A YAML file: --config would pass the
    # nested numbers as strings.)
    (workdir / "slurm-test.yaml").write_text(
        "teacher:\n  optimizer: {epochs: 1, momentum_ramp_epochs: 0}\n")
    result = _snakemake(
        cluster, workdir, *TARGETS, "--workflow-profile", "profiles/slurm", *CLUSTER_ARGS,
        "--configfile", "config/quick.yaml", "slurm-test.yaml",
        "--config", f"mnist_dir={real_mnist_dir}")
    assert result.returncode == 0, result.stderr[-6000:]
    return workdir, result


def test_slice_runs_as_slurm_jobs(slurm_run, cluster):
    workdir, result = slurm_run
    jobs = _slurm_jobs(cluster)
    seen = set()
    for run, rule in ((TEACHER, "train_teacher"), (BASELINE, "train_baseline")):
        folder = workdir / "results" / run
        for name in ("model.pt", "metrics.json", "manifest.json"):
            assert (folder / name).is_file(), f"{run}/{name} missing"
        assert isinstance(json.loads((folder / "metrics.json").read_text())["test_errors"], int)
        job_id = json.loads((folder / "manifest.json").read_text())["slurm_job_id"]
        assert job_id and job_id.isdigit(), f"{run}: manifest has slurm_job_id={job_id!r}"
        assert job_id in jobs, f"{run}: SLURM job {job_id} unknown to slurmctld: {jobs}"
        job = jobs[job_id]
        assert job["comment"].startswith(f"rule_{rule}"), (run, job)
        assert job["state"] == "COMPLETED", (run, job)
        # The rule's threads and mem_mb reach sbatch as --cpus-per-task and --mem.
        threads, mem_mb = _rule_request(result.stderr, rule)
        assert int(job["cpus"]) == threads, (run, job, threads)
        assert _megabytes(job["mem"]) == mem_mb, (run, job, mem_mb)
        seen.add(job_id)
    assert len(seen) == 2, "teacher and baseline ran in one SLURM job"


def test_mnist_is_fetched_on_the_submit_host(slurm_run, cluster):
    workdir, result = slurm_run
    assert (workdir / "results" / "data" / "mnist.pt").is_file()
    comments = [job["comment"] for job in _slurm_jobs(cluster).values()]
    assert not any(c.startswith("rule_fetch_mnist") for c in comments), comments
    assert "localrule fetch_mnist" in result.stderr + result.stdout


FAILING = """\
rule fail:
    output:
        "never.txt",
    resources:
        mem_mb=100,
        runtime=1,
    shell:
        "echo this job fails on purpose >&2; exit 1"
"""


def test_failing_job_fails_the_run(cluster, tmp_path):
    workdir = tmp_path
    shutil.copytree(ROOT / "profiles", workdir / "profiles")
    (workdir / "failing.smk").write_text(FAILING)
    before = set(_slurm_jobs(cluster))
    result = _snakemake(cluster, workdir, "--snakefile", "failing.smk",
                        "--workflow-profile", "profiles/slurm", *CLUSTER_ARGS, "--retries", "0")
    assert result.returncode != 0, result.stderr[-4000:]
    assert not (workdir / "never.txt").exists()
    failed = {i: j for i, j in _slurm_jobs(cluster).items()
              if i not in before and j["comment"].startswith("rule_fail")}
    assert failed and all(j["state"] == "FAILED" for j in failed.values()), failed
    assert "SLURM-job" in result.stderr and "failed" in result.stderr, result.stderr[-4000:]
