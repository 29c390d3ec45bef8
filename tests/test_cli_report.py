"""`collect`, `report` and `summarize` through Typer's CliRunner on a fresh app."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from fake_results import write_fake_results
from typer.testing import CliRunner

from kdrepro.cli.report import register

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
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
def test_help(app, command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_collect_writes_csv(app, results, tmp_path):
    out = tmp_path / "metrics.csv"
    result = runner.invoke(app, ["collect", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "63 runs" in result.output
    assert len(pd.read_csv(out)) == 63


@pytest.mark.parametrize("command", [["collect", "{missing}", "--out", "{tmp}/x.csv"],
                                     ["report", "--results", "{missing}"],
                                     ["summarize", "{missing}"]])
def test_missing_results_dir_is_one_error_line(app, tmp_path, command):
    args = [a.format(missing=tmp_path / "absent", tmp=tmp_path) for a in command]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: results directory not found")


def test_report_writes_html_markdown_and_figures(app, partial, tmp_path):
    out = tmp_path / "reports"
    result = runner.invoke(app, ["report", "--results", str(partial), "--templates",
                                 str(TEMPLATES), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert list((out / "figures").glob("*.png"))


def test_report_rejects_missing_templates(app, partial, tmp_path):
    result = runner.invoke(app, ["report", "--results", str(partial), "--templates",
                                 str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith("error: templates not found")
    assert not (tmp_path / "out").exists()


def test_summarize_json_lists_every_claim(app, results):
    result = runner.invoke(app, ["summarize", str(results), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 18
    assert rows[0]["id"] == "teacher_errors" and rows[0]["paper"] == 67
    assert rows[0]["mean"] == 70.0 and rows[0]["n"] == 3
    assert rows[0]["pi_low"] < 67 < rows[0]["pi_high"] and "prediction" in rows[0]["test"]


def test_summarize_csv_and_markdown(app, results):
    as_csv = runner.invoke(app, ["summarize", str(results), "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert len(rows) == 18 and rows[3]["id"] == "distilled_vs_baseline"
    assert float(rows[3]["p"]) < 1e-6 and rows[3]["test"] == "paired t-test over seeds"
    as_md = runner.invoke(app, ["summarize", str(results), "-f", "md"])
    lines = as_md.output.strip().splitlines()
    assert lines[0].startswith("| claim | setting | paper |") and len(lines) == 20


def test_summarize_table_by_default(app, results):
    result = runner.invoke(app, ["summarize", str(results)])
    assert result.exit_code == 0, result.output
    assert "Claim ledger" in result.output and "reproduced" in result.output


def test_summarize_a_partly_done_run_shows_pending(app, partial):
    result = runner.invoke(app, ["summarize", str(partial), "--format", "json"])
    assert result.exit_code == 0, result.output
    verdicts = {row["id"]: row["verdict"] for row in json.loads(result.output)}
    assert verdicts["omit3_errors"] == "pending" and verdicts["keep78_error_pct"] == "pending"
    assert verdicts["teacher_errors"] == "reproduced"


def test_summarize_rejects_an_unknown_format(app, results):
    result = runner.invoke(app, ["summarize", str(results), "--format", "xml"])
    assert result.exit_code != 0
