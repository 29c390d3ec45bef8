"""`kdrepro collect`, `kdrepro report` and `kdrepro summarize`: thin commands over the report.

:func:`register` adds them to the lead's Typer app. Each command checks its input,
calls :mod:`kdrepro.report.collect`, :mod:`kdrepro.report.claims` or :mod:`kdrepro.report.render`, and turns
expected failures into one ``error: ...`` line and exit status 1.
"""

from __future__ import annotations

import csv
import io
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from kdrepro.cli.errors import clean_errors, fail
from kdrepro.cli.options import (
    DEFAULT_RESULTS,
    LEGACY_ARGUMENT,
    OutDirAlias,
    ResultsOpt,
    renamed,
    results_folder,
)

COLUMNS = ("claim", "setting", "paper", "blog", "ours", "n", "pi95", "p", "verdict")
TABLE_COLUMNS = ("claim", "paper", "blog", "ours", "n", "pi95", "p", "verdict")


class SummaryFormat(str, Enum):
    """Output formats of `kdrepro summarize`."""

    table = "table"
    md = "md"
    csv = "csv"
    json = "json"


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        fail(f"{what} not found: {path}")


def ledger_records(results_dir: Path) -> list[dict]:
    """The claim ledger of ``results_dir`` as flat records: raw numbers plus display text."""
    from kdrepro.report.claims import SHORT_PROTOCOLS, ledger
    from kdrepro.report.collect import load_runs
    from kdrepro.report.render import fmt_ci, fmt_count, fmt_pct, fmt_pm, fmt_pvalue

    records = []
    for row in ledger(load_runs(results_dir)):
        m, percent = row.measure, row.unit == "%"
        value = fmt_pct if percent else fmt_count
        records.append({
            "id": row.id, "claim": row.claim, "setting": row.protocol,
            "paper": row.paper if row.paper is not None else row.paper_text,
            "blog": row.blog, "mean": m.mean if m else None, "sd": m.sd if m else None,
            "n": row.seeds, "pi_low": m.interval[0] if m and m.interval else None,
            "pi_high": m.interval[1] if m and m.interval else None, "test": row.test,
            "p": row.pvalue,
            "verdict": row.verdict, "reason": row.reason, "detail": row.detail,
            "short_setting": SHORT_PROTOCOLS.get(row.protocol_id, ""),
            "display": {
                "claim": row.claim, "setting": row.protocol or "—",
                "paper": row.paper_text or value(row.paper),
                "blog": row.blog_text or value(row.blog),
                "ours": row.ours_text or (fmt_pm(m.mean, m.sd, unit="%" if percent else "")
                                          if m else "—"),
                "n": str(row.seeds), "pi95": fmt_ci(m.interval) if m else "—",
                "p": fmt_pvalue(row.pvalue), "verdict": row.verdict},
        })
    return records


def _as_table(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    styles = {"reproduced": "green", "not reproduced": "red", "inconclusive": "yellow",
              "pending": "dim", "not graded": "magenta", "informational": "cyan"}
    console = Console()
    narrow = console.width < 150
    columns = [c for c in TABLE_COLUMNS if not (narrow and c in ("blog", "pi95"))]
    table = Table(title="Claim ledger (Hinton et al. 2015, section 3)", expand=narrow)
    ratios = {"claim": 4, "paper": 1, "ours": 2} if narrow else {}
    for column in columns:
        table.add_column(column, justify="left" if column == "claim" else "right",
                         ratio=ratios.get(column), overflow="fold",
                         no_wrap=column in ("n", "p", "verdict"))
    for record in records:
        cells = [record["display"][c] for c in columns]
        if record["short_setting"]:
            cells[0] += f" [dim]({record['short_setting']})[/]"
        cells[-1] = f"[{styles[record['verdict']]}]{cells[-1]}[/]"
        table.add_row(*cells)
    console.print(table)


def _as_markdown(records: list[dict]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r["display"][c]) for c in COLUMNS) + " |" for r in records]
    return "\n".join(lines)


def _as_csv(records: list[dict]) -> str:
    fields = [k for k in records[0] if k != "display"] if records else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().rstrip("\n")


def collect_command(
    ctx: typer.Context,
    results: ResultsOpt = Path(DEFAULT_RESULTS),
    out: Annotated[Path, typer.Option("--out", help="CSV to write, one row per run.")] = Path(
        "results/metrics.csv"),
) -> None:
    """Collect every run's metrics.json (+ bias.json, manifest, benchmarks) into one CSV."""
    from kdrepro.report.collect import write_collected

    results = results_folder(ctx, results)
    _require_dir(results, "results directory")
    with clean_errors():
        frame = write_collected(results, out)
    typer.echo(f"{len(frame)} runs -> {out}")


def report_command(
    results: ResultsOpt = Path(DEFAULT_RESULTS),
    templates: Annotated[Path, typer.Option("--templates", help="Jinja2 templates.")] = Path(
        "templates"),
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html, report.md "
                                      "and figures/.")] = Path("reports"),
    data: Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer on Python 3.10
        "--data", help="MNIST cache for the grid of wrong 3s (default: RESULTS/data/mnist.pt, "
        "the workflow's results/data/mnist.pt).", show_default=False)] = None,
    out_dir: OutDirAlias = None,
) -> None:
    """Render the reproduction report (HTML and Markdown) from the results directory."""
    from kdrepro.report.render import render_report

    out = renamed(out, out_dir)
    _require_dir(results, "results directory")
    if not (templates / "report.html.j2").is_file() or not (templates / "report.md.j2").is_file():
        fail(f"templates not found: {templates} needs report.html.j2 and report.md.j2")
    with clean_errors():
        written = render_report(results, templates, out,
                                data if data is not None else results / "data" / "mnist.pt")
    typer.echo(f"report: {written['report.html']} and {written['report.md']} "
               f"({len(written) - 2} figures)")


def pdf_command(
    html: Annotated[Path, typer.Argument(help="The report HTML written by `kdrepro report`.")] = Path(
        "reports/report.html"),
    out: Annotated[Path, typer.Option("--out", help="PDF to write.")] = Path("reports/report.pdf"),
) -> None:
    """Render the report HTML to PDF (WeasyPrint, landscape pages, the whole ledger)."""
    from kdrepro.report.pdf import html_to_pdf

    with clean_errors():
        written = html_to_pdf(html, out)
    typer.echo(f"pdf: {written}")


def summarize_command(
    ctx: typer.Context,
    results: ResultsOpt = Path(DEFAULT_RESULTS),
    output_format: Annotated[SummaryFormat, typer.Option(
        "--format", "-f", help="table (rich), md, csv or json.")] = SummaryFormat.table,
) -> None:
    """Print the claim ledger; claims without finished runs show as pending."""
    results = results_folder(ctx, results)
    _require_dir(results, "results directory")
    with clean_errors():
        records = ledger_records(results)
    if output_format is SummaryFormat.table:
        _as_table(records)
    elif output_format is SummaryFormat.md:
        typer.echo(_as_markdown(records))
    elif output_format is SummaryFormat.csv:
        typer.echo(_as_csv(records))
    else:
        plain = [{k: v for k, v in r.items() if k != "display"} for r in records]
        typer.echo(json.dumps(plain, indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    """Add `collect`, `report`, `summarize` and `pdf` to the kdrepro Typer app."""
    app.command("collect", context_settings=LEGACY_ARGUMENT)(collect_command)
    app.command("report")(report_command)
    app.command("summarize", context_settings=LEGACY_ARGUMENT)(summarize_command)
    app.command("pdf")(pdf_command)
