"""`collect`, `report` and `summarize` through Typer's CliRunner on a fresh app."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from fake_results import write_fake_results
from typer.testing import CliRunner

from kdrepro.cli.report import register

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    return application


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("partial"), partial=True)


@pytest.mark.parametrize("command", ["collect", "report", "summarize"])
def test_help_names_the_results_option(app, command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--results" in result.output and "[default: results]" in result.output


def test_collect_writes_csv(app, results, tmp_path):
    out = tmp_path / "metrics.csv"
    result = runner.invoke(app, ["collect", "--results", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"63 runs -> {out}"
    assert len(pd.read_csv(out)) == 63


def test_results_folder_as_an_argument_still_works(app, results, tmp_path):
    out = tmp_path / "metrics.csv"
    result = runner.invoke(app, ["collect", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 63
    as_json = runner.invoke(app, ["summarize", str(results), "-f", "json"])
    assert as_json.exit_code == 0 and len(json.loads(as_json.output)) == 18
    extra = runner.invoke(app, ["summarize", str(results), str(results)])
    assert extra.exit_code == 1 and "--results" in extra.output


def test_results_default_is_the_workflows_folder(app, results, tmp_path, monkeypatch):
    (tmp_path / "results").symlink_to(results, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["summarize", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 18


@pytest.mark.parametrize("command", [["collect", "--results", "{missing}", "--out", "{tmp}/x.csv"],
                                     ["report", "--results", "{missing}"],
                                     ["summarize", "--results", "{missing}"]])
def test_missing_results_dir_is_one_error_line(app, tmp_path, command):
    args = [a.format(missing=tmp_path / "absent", tmp=tmp_path) for a in command]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: results directory not found: {tmp_path / 'absent'}"
    assert not (tmp_path / "x.csv").exists()


def test_report_writes_html_markdown_and_figures(app, partial, tmp_path):
    out = tmp_path / "reports"
    result = runner.invoke(app, ["report", "--results", str(partial), "--templates",
                                 str(TEMPLATES), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    figures = list((out / "figures").glob("*.png"))
    assert figures and f"({len(figures)} figures)" in result.output


def test_report_old_out_dir_name_still_works(app, partial, tmp_path):
    out = tmp_path / "old"
    result = runner.invoke(app, ["report", "--results", str(partial), "--templates",
                                 str(TEMPLATES), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()


def test_report_rejects_missing_templates(app, partial, tmp_path):
    result = runner.invoke(app, ["report", "--results", str(partial), "--templates",
                                 str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith("error: templates not found")
    assert not (tmp_path / "out").exists()


def test_summarize_json_lists_every_claim(app, results):
    result = runner.invoke(app, ["summarize", "--results", str(results), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 18
    assert rows[0]["id"] == "teacher_errors" and rows[0]["paper"] == 67
    assert rows[0]["mean"] == 70.0 and rows[0]["n"] == 3
    assert rows[0]["pi_low"] < 67 < rows[0]["pi_high"] and "prediction" in rows[0]["test"]


def test_summarize_csv_and_markdown(app, results):
    as_csv = runner.invoke(app, ["summarize", "--results", str(results), "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert len(rows) == 18 and rows[3]["id"] == "distilled_vs_baseline"
    assert float(rows[3]["p"]) == 0.25 and rows[3]["test"] == "paired t-test over seeds"
    as_md = runner.invoke(app, ["summarize", "--results", str(results), "-f", "md"])
    lines = as_md.output.strip().splitlines()
    assert lines[0].startswith("| claim | setting | paper |") and len(lines) == 20


def test_summarize_table_by_default(app, results):
    result = runner.invoke(app, ["summarize", "--results", str(results)])
    assert result.exit_code == 0, result.output
    assert "Claim ledger" in result.output and "reproduced" in result.output


def test_summarize_a_partly_done_run_shows_pending(app, partial):
    result = runner.invoke(app, ["summarize", "--results", str(partial), "--format", "json"])
    assert result.exit_code == 0, result.output
    verdicts = {row["id"]: row["verdict"] for row in json.loads(result.output)}
    assert verdicts["omit3_errors"] == "pending" and verdicts["keep78_error_pct"] == "pending"
    assert verdicts["teacher_errors"] == "reproduced"


def test_summarize_rejects_an_unknown_format(app, results):
    result = runner.invoke(app, ["summarize", "--results", str(results), "--format", "xml"])
    assert result.exit_code != 0


def test_report_commands_do_not_import_torch(partial, tmp_path):
    """collect, summarize and report (no MNIST cache: the wrong-3s grid is skipped) run
    without torch, so they start fast."""
    commands = [["collect", "--results", str(partial), "--out", str(tmp_path / "m.csv")],
                ["summarize", "--results", str(partial), "-f", "json"],
                ["report", "--results", str(partial), "--templates", str(TEMPLATES),
                 "--out", str(tmp_path / "reports")]]
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom kdrepro.cli import app\n"
            f"for args in {commands!r}:\n"
            "    result = CliRunner().invoke(app, args)\n"
            "    assert result.exit_code == 0, (args, result.output)\n"
            "print(' '.join(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                            "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(proc.stdout.split())
    assert "kdrepro.report.render" in loaded and (tmp_path / "reports" / "report.html").is_file()
    assert "torch" not in loaded
