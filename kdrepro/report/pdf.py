"""The reproduction report as PDF, for review systems that accept only PDF attachments.

WeasyPrint renders the self-contained report.html (figures are data URIs) with
its print styles (templates/base.html.j2: landscape pages, wrapping tables), so
the PDF is the same report, not a second template.
"""

from __future__ import annotations

from pathlib import Path

from kdrepro.io import write_atomic


class PdfError(ValueError):
    """The HTML to render is missing or not a report."""


def html_to_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Render ``html_path`` to ``pdf_path`` (written atomically); return ``pdf_path``."""
    html_path = Path(html_path)
    if not html_path.is_file():
        raise PdfError(f"report HTML not found: {html_path} (run `kdrepro report` first)")
    from weasyprint import HTML  # imported here: slow to import, needed by this command only

    pdf = HTML(filename=str(html_path), base_url=str(html_path.parent)).write_pdf()
    write_atomic(Path(pdf_path), pdf)
    return Path(pdf_path)
