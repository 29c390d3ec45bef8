"""Tests of kdrepro.provenance: the git state and machine fields of a run's manifest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from kdrepro import provenance
from kdrepro.provenance import git_commit, git_state, machine_info, manifest


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A committed checkout laid out like the project: code, ignored results/, tracked reports/."""
    root = tmp_path / "repo"
    (root / "kdrepro").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "kdrepro" / "engine.py").write_text("LR = 0.1\n")
    (root / "reports" / "report.html").write_text("<p>reference</p>\n")
    (root / ".gitignore").write_text("/results/\n.snakemake/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    return root


def test_clean_tree_is_not_dirty(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert git_state(repo) == (head, [])
    assert git_commit(repo) == head


def test_a_touched_but_unchanged_file_is_not_dirty(repo):
    # a stat-dirty index entry (new mtime, same bytes) is what `git diff --quiet` without an
    # index refresh would report; `git status` compares contents
    engine = repo / "kdrepro" / "engine.py"
    stat = engine.stat()
    os.utime(engine, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    engine.write_text(engine.read_text())
    assert not git_commit(repo).endswith("+dirty")


def test_files_the_run_writes_do_not_make_it_dirty(repo):
    (repo / "results" / "teacher").mkdir(parents=True)
    (repo / "results" / "teacher" / "manifest.json").write_text("{}")
    (repo / ".snakemake").mkdir()
    (repo / ".snakemake" / "log").write_text("x")
    (repo / "notes.txt").write_text("untracked, not ignored")
    # the workflow rewrites the tracked report: the cause of the reference run's '+dirty'
    (repo / "reports" / "report.html").write_text("<p>re-rendered</p>\n")
    assert git_state(repo) == (git(repo, "rev-parse", "HEAD"), [])


def test_a_modified_tracked_file_is_dirty_and_named(repo):
    (repo / "kdrepro" / "engine.py").write_text("LR = 0.2\n")
    commit, dirty = git_state(repo)
    assert dirty == ["kdrepro/engine.py"]
    assert git_commit(repo) == f"{commit}+dirty"
    assert git_commit(repo / "kdrepro") == f"{commit}+dirty"  # from a subfolder too


def test_staged_and_deleted_files_are_dirty(repo):
    (repo / "kdrepro" / "new.py").write_text("x = 1\n")
    git(repo, "add", "kdrepro/new.py")
    (repo / ".gitignore").unlink()
    assert sorted(git_state(repo)[1]) == [".gitignore", "kdrepro/new.py"]


def test_outside_a_checkout_there_is_no_commit(tmp_path):
    assert git_state(tmp_path) == (None, [])
    assert git_commit(tmp_path) is None


def test_machine_info_names_cpu_blas_and_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        info = machine_info(threads_requested=3)
    finally:
        torch.set_num_threads(before)
    assert info["threads_requested"] == 3 and info["torch_threads"] == 1
    assert isinstance(info["cpu"], str) and info["cpu"] and info["cpu"] != "unknown"
    assert info["mkl"] == torch.backends.mkl.is_available()
    assert info["mkldnn"] == torch.backends.mkldnn.is_available()
    blas = provenance._build_setting(torch.__config__.show(), "BLAS_INFO")
    assert info["blas"] == blas


def test_cpu_model_reads_proc_cpuinfo():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")]
    if names:
        assert provenance.cpu_model() == names[0]


def test_manifest_carries_machine_precision_and_gemm_path(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"weights")
    record = manifest({"seed": 4}, data_sha256="abc", device="cpu", threads=2, wall_seconds=1.5,
                      outputs={"model.pt": out}, precision="float32", gemm_path="mkldnn")
    assert record["precision"] == "float32" and record["gemm_path"] == "mkldnn"
    assert record["threads"] == 2 and record["machine"]["threads_requested"] == 2
    assert record["machine"]["torch_threads"] == torch.get_num_threads()
    assert record["git_commit"] is None or record["git_commit"].endswith(
        "+dirty") == bool(record["git_dirty_paths"])
    defaults = manifest({}, data_sha256="abc", device="cpu", threads=1, wall_seconds=0,
                        outputs={})
    assert defaults["precision"] is None and defaults["gemm_path"] is None
