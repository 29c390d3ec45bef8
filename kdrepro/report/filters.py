"""Number formatting filters and the Jinja2 environment of the report (templates/).

Every number a template shows passes through one of these tested filters.
"""

from __future__ import annotations

import math
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

DASH = "—"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_count(value, digits: int = 1) -> str:
    """Whole numbers with thousands separators; fractional ones with ``digits`` decimals."""
    if _missing(value):
        return DASH
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def fmt_pct(value, digits: int = 1) -> str:
    """A percentage (already on the 0-100 scale)."""
    return DASH if _missing(value) else f"{value:.{digits}f}%"


def fmt_pm(mean, sd=None, digits: int = 1, unit: str = "") -> str:
    """Mean ± sd; a single seed (no sd) shows its value alone, whole counts without decimals."""
    if _missing(mean):
        return DASH
    if _missing(sd) and float(mean).is_integer():
        return f"{int(mean):,}{unit}"  # one seed: a plain count
    text = f"{mean:,.{digits}f}"
    if not _missing(sd):
        text += f" ± {sd:,.{digits}f}"
    return text + unit


def fmt_ci(interval, digits: int = 1) -> str:
    """A closed interval [low, high]."""
    if interval is None:
        return DASH
    low, high = interval
    return f"[{low:.{digits}f}, {high:.{digits}f}]"  # no thousands commas inside [a, b]


def fmt_pvalue(p) -> str:
    """p-values: three decimals, scientific notation below 0.001."""
    if _missing(p):
        return DASH
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_seconds(seconds) -> str:
    """Durations: seconds, minutes or hours."""
    if _missing(seconds):
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def md_cell(value) -> str:
    """Text safe inside a GitHub Markdown table cell (pipes, newlines and HTML escaped)."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


FILTERS = {"count": fmt_count, "pct": fmt_pct, "pm": fmt_pm, "ci": fmt_ci,
           "pvalue": fmt_pvalue, "seconds": fmt_seconds, "cell": md_cell,
           "slug": lambda s: str(s).replace(" ", "-").lower()}


def make_environment(templates_dir: Path, html: bool) -> Environment:
    """Jinja2 environment: autoescaped for HTML, StrictUndefined, the number filters."""
    env = Environment(loader=FileSystemLoader(str(templates_dir)), autoescape=html,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(FILTERS)
    return env

