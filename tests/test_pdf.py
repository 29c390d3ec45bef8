"""The report as PDF (kdrepro.report.pdf, `kdrepro pdf`): the whole ledger on the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fake_results import write_fake_results
from typer.testing import CliRunner

from kdrepro.cli.app import app
from kdrepro.report.claims import ledger
from kdrepro.report.collect import load_runs
from kdrepro.report.pdf import PdfError, html_to_pdf
from kdrepro.report.render import render_report

pypdf = pytest.importorskip("pypdf")

ROOT = Path(__file__).resolve().parents[1]
LEDGER_HEADERS = ("Claim (section 3)", "Protocol", "Paper", "Blog 2020", "Ours (mean ± sd)", "n",
                  "95% PI", "Test", "p", "Verdict", "Target")


def _words(text: str) -> str:
    """Text with every run of whitespace (line breaks of wrapped cells) as one space."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("pdf")
    results = write_fake_results(root / "results")
    written = render_report(results, ROOT / "templates", root / "reports")
    pdf = html_to_pdf(written["report.html"], root / "reports" / "report.pdf")
    pages = pypdf.PdfReader(pdf).pages
    return results, pages


def _ledger_pages_text(pages) -> str:
    texts = [page.extract_text() for page in pages]
    start = next(i for i, t in enumerate(texts) if "Claim (section 3)" in t)
    return _words(" ".join(texts[start:start + 3]))


def test_pages_are_landscape(rendered):
    _, pages = rendered
    box = pages[0].mediabox
    assert float(box.width) > float(box.height)


def test_pdf_holds_every_ledger_column_and_claim(rendered):
    results, pages = rendered
    text = _ledger_pages_text(pages)
    for header in LEDGER_HEADERS:
        assert _words(header) in text, header
    rows = ledger(load_runs(results))
    assert rows
    for row in rows:
        # a wrapped cell may hyphenate nowhere but break anywhere: compare word by word
        words = [w for w in re.split(r"\s+", row.claim) if w]
        assert " ".join(words) in text, row.claim


def test_pdf_holds_the_rightmost_columns_of_every_row(rendered):
    """Verdict and Target (the columns that ran off the page before print styles)."""
    results, pages = rendered
    text = _ledger_pages_text(pages)
    rows = ledger(load_runs(results))
    verdicts = re.findall(
        r"\b(reproduced|not reproduced|inconclusive|pending|not graded|informational)\b", text)
    assert len(verdicts) >= len(rows)


def text_starts(page) -> list[tuple[float, str]]:
    """(x in points from the page's left edge, text) of every text run on ``page``."""
    starts = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            starts.append((tm[4] * cm[0] + cm[4], text.strip()))

    page.extract_text(visitor_text=visit)
    return starts


def test_no_text_starts_beyond_the_right_page_edge(rendered):
    """Text off the page is still in the PDF's text, so position is what tells: without
    the print styles the ledger's Verdict and Target columns start past the edge."""
    _, pages = rendered
    for number, page in enumerate(pages, 1):
        width = float(page.mediabox.width)
        off = [(round(x), text[:30]) for x, text in text_starts(page) if not 0 <= x < width]
        assert off == [], (number, width)


def test_figures_are_embedded(rendered):
    _, pages = rendered
    images = sum(len(page.images) for page in pages)
    assert images >= 5


def test_pdf_command_and_missing_html(tmp_path):
    runner = CliRunner()
    missing = tmp_path / "nope.html"
    result = runner.invoke(app, ["pdf", str(missing), "--out", str(tmp_path / "r.pdf")])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: report HTML not found: {missing} "
                                     "(run `kdrepro report` first)")
    assert not (tmp_path / "r.pdf").exists()
    (tmp_path / "r.html").write_text("<html><body><p>hello pdf</p></body></html>")
    result = runner.invoke(app, ["pdf", str(tmp_path / "r.html"), "--out", str(tmp_path / "r.pdf")])
    assert result.exit_code == 0, result.output
    assert "hello pdf" in pypdf.PdfReader(tmp_path / "r.pdf").pages[0].extract_text()


def test_missing_html_raises(tmp_path):
    with pytest.raises(PdfError, match="report HTML not found"):
        html_to_pdf(tmp_path / "x.html", tmp_path / "x.pdf")
