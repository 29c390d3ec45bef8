"""The README's two commands are the ones CI and users run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_command = next(b for b in blocks if b.endswith("pytest"))
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_main_command_runs_the_report_target():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    # --forcerun report: reports/ holds the committed reference report, which Snakemake
    # would otherwise take as up to date in a fresh clone and run nothing
    assert any("pip install -e ." in b
               and b.endswith("snakemake --cores 4 --forcerun report reports/report.html")
               for b in blocks)
