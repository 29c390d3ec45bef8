"""The reproduction report: the view model rendered to HTML and Markdown by Jinja2.

:mod:`kdrepro.report.views` builds the view (numbers and figures); this module is the only
one that writes files: :func:`render_report` rasterises the figures and writes every file
atomically, so an interrupted render leaves the previous report intact.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from kdrepro.io import write_atomic
from kdrepro.report.filters import (
    fmt_ci,
    fmt_count,
    fmt_pct,
    fmt_pm,
    fmt_pvalue,
    fmt_seconds,
    make_environment,
    md_cell,
)
from kdrepro.report.views import build_view

__all__ = ["build_view", "figure_png", "fmt_ci", "fmt_count", "fmt_pct", "fmt_pm",
           "fmt_pvalue", "fmt_seconds", "make_environment", "md_cell", "render_report",
           "render_text"]


def figure_png(figure) -> bytes:
    """PNG bytes of a matplotlib Figure (the only place a figure is rasterised)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def render_text(view: dict, templates_dir: Path, pngs: dict[str, bytes]) -> tuple[str, str]:
    """(HTML, Markdown) of the report; figures as data URIs and as relative links."""
    html_figures = {name: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                    for name, png in pngs.items()}
    md_figures = {name: f"figures/{name}.png" for name in pngs}
    html = make_environment(templates_dir, html=True).get_template("report.html.j2")
    markdown = make_environment(templates_dir, html=False).get_template("report.md.j2")
    return (html.render(**view, figure_src=html_figures),
            markdown.render(**view, figure_src=md_figures))


def render_report(results_dir: Path, templates_dir: Path, out_dir: Path,
                  data_path: Path | None = None) -> dict[str, Path]:
    """Write report.html, report.md and figures/*.png under ``out_dir``; return the paths."""
    view = build_view(Path(results_dir), data_path)
    pngs = {name: figure_png(fig) for name, fig in view["figures"].items()}
    html, markdown = render_text(view, Path(templates_dir), pngs)
    out_dir = Path(out_dir)
    written = {}
    for name, png in pngs.items():
        written[f"figures/{name}.png"] = out_dir / "figures" / f"{name}.png"
        write_atomic(written[f"figures/{name}.png"], png)
    for name, text in (("report.md", markdown), ("report.html", html)):
        written[name] = out_dir / name
        write_atomic(written[name], text)
    return written
