"""Every command in the README's `bash` blocks runs, in a fresh copy of the repository.

The commands are parsed from README.md, so the README and this test cannot drift.
How each kind is run (the README says the same):

- ``snakemake ...``: as a dry run (``-n``); it must plan jobs, not "Nothing to be done".
- ``kdrepro ...``: for real, in a copy with a fake results folder (tests/fake_results.py).
- ``pip install [-q] -e SPEC``: ``pip install --dry-run --no-index`` (offline: every
  requirement must resolve from what is installed; nothing is installed), and every
  extra named in SPEC must exist in pyproject.toml.
- ``pytest``: ``pytest --collect-only``.
- ``python3 -m venv .venv`` and ``. .venv/bin/activate``: not run; the test uses the
  environment it runs in.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fake_results import write_fake_results

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
NOT_RUN = ("python3 -m venv .venv", ". .venv/bin/activate")
WORKFLOW_RULES = ("fetch_mnist", "train_teacher", "soft_targets", "train_baseline",
                  "train_distilled", "train_transfer", "bias_sweep", "collect", "report")


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def readme_commands(text: str = README) -> list[str]:
    """Each command of every bash block: one per line, split at `&&`."""
    return [part.strip() for block in _bash_blocks(text) for line in block.splitlines()
            for part in line.split("&&") if part.strip()]


def _tracked_copy(dest: Path) -> Path:
    """The repository as a fresh clone of this working tree would have it."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return _tracked_copy(tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="module")
def clone_with_results(tmp_path_factory, clone) -> Path:
    copy = tmp_path_factory.mktemp("clone-results")
    shutil.copytree(clone, copy, dirs_exist_ok=True)
    write_fake_results(copy / "results")
    return copy


def _env(copy: Path) -> dict:
    """This environment, importing the copy's own kdrepro (not an installed one)."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(copy), "COLUMNS": "200"}


def _run(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _split_env(command: str) -> tuple[dict, list[str]]:
    """`VAR=value cmd args` -> ({VAR: value}, [cmd, args])."""
    words = shlex.split(command)
    assignments = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    return assignments, words


def _planned_jobs(log: str) -> int:
    return int(re.search(r"^total\s+(\d+)", log, flags=re.M).group(1))


def test_readme_shows_the_main_commands():
    commands = readme_commands()
    assert "snakemake --cores 4 reports/report.html" in commands
    assert "snakemake --cores 4 reports/report.pdf" in commands
    assert "kdrepro status" in commands
    assert not [c for c in commands if "--forcerun" in c]


@pytest.mark.parametrize("markdown", ["README.md", "reports/README.md",
                                      "reports/reference/report.md"])
def test_relative_links_resolve(markdown):
    """Links and images (the reference report's figures) point at files that exist."""
    path = ROOT / markdown
    targets = re.findall(r"\]\(([^)#\s]+)\)", path.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local or markdown == "reports/README.md"
    for target in local:
        assert (path.parent / target).exists(), (markdown, target)


def test_ci_runs_the_readme_test_command():
    test_command = next(b for b in _bash_blocks(README) if b.endswith("pytest"))
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted({c for c in readme_commands() if c not in NOT_RUN}))
def test_readme_command_runs_in_a_fresh_copy(command, clone, clone_with_results):
    extra_env, argv = _split_env(command)
    tool = argv[0]
    env = {**_env(clone_with_results if tool == "kdrepro" else clone), **extra_env}
    if tool == "snakemake":
        result = _run([sys.executable, "-m", "snakemake", *argv[1:], "-n"], clone, env)
        log = result.stdout + result.stderr
        assert result.returncode == 0, log[-3000:]
        assert "Nothing to be done" not in log
        if "reports/report" in command:  # a fresh copy runs the whole workflow
            for rule in WORKFLOW_RULES:  # grid cells may all train in blocks
                pattern = "train_distilled|train_block_h\\d+_seed\\d+" if rule == "train_distilled" \
                    else rule
                assert re.search(rf"^rule ({pattern}):", log, flags=re.M), (rule, command)
    elif tool == "kdrepro":
        result = _run([sys.executable, "-m", "kdrepro", *argv[1:]], clone_with_results, env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip()
    elif tool == "pip":
        assert argv[1] == "install" and "-e" in argv, command
        spec = argv[argv.index("-e") + 1]
        extras = re.fullmatch(r"\.(?:\[(.*)\])?", spec).group(1)
        declared = tomllib.loads((clone / "pyproject.toml").read_text())["project"][
            "optional-dependencies"]
        for extra in filter(None, (extras or "").split(",")):
            assert extra in declared, (extra, command)
        result = _run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                       "--no-build-isolation", *(a for a in argv[2:] if a not in ("-q", "-qq"))], clone, env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "Would install kdrepro" in result.stdout
    elif tool == "pytest":
        result = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", *argv[1:]],
                      clone, env)
        assert result.returncode == 0, result.stdout[-3000:]
        assert re.search(r"\d+ tests collected", result.stdout)
    else:
        pytest.fail(f"README command {command!r}: no way to run it here; teach this test")


@pytest.mark.slow
def test_quick_overlay_command_uses_the_overlay(clone):
    """The first-look command's --configfile takes effect (and swallows no target)."""
    quick = next(c for c in readme_commands() if "config/quick.yaml" in c)
    main = "snakemake --cores 4 reports/report.html"
    jobs = {}
    for command in (quick, main):
        result = _run([sys.executable, "-m", "snakemake", *shlex.split(command)[1:], "-n"],
                      clone, _env(clone))
        assert result.returncode == 0, result.stderr[-2000:]
        jobs[command] = _planned_jobs(result.stdout + result.stderr)
    assert jobs[quick] < jobs[main]  # the overlay's one seed: fewer runs
