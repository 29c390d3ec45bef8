"""The temperature claims of section 3, paragraph 2, from the grid of distilled students.

"When the distilled net had 300 or more units in each of its two hidden layers, all
temperatures above 8 gave fairly similar results. But when this was radically reduced to
30 units per layer, temperatures in the range 2.5 to 4 worked significantly better than
higher or lower temperatures." Cells are (width, T); runs in one width are paired by seed.
"""

from __future__ import annotations

from kdrepro.report.collect import RunRecord
from kdrepro.report.facts import LedgerRow, fact, paper_facts, role_runs, seed_of, transfer_of
from kdrepro.report.stats import Measure
from kdrepro.report.verdicts import SIMILAR_MARGIN, narrow_decision, wide_decision

PAIRED = "distilled students of one width, paired by seed across T"


def _grid_run(record: RunRecord) -> bool:
    """A distilled student of two equal hidden layers on the full transfer set."""
    hidden = record.metrics.get("hidden") or []
    return (len(hidden) == 2 and hidden[0] == hidden[1]
            and transfer_of(record) == ([], []) and record.metrics.get("temperature") is not None)


def temperature_grid(records: list[RunRecord]) -> dict[int, dict[float, Measure]]:
    """Distilled test errors (per 10,000, a value per seed) by hidden width and temperature."""
    scale = fact("distilled_errors")["denominator"]
    cells: dict[int, dict[float, list[RunRecord]]] = {}
    for run in filter(_grid_run, role_runs(records, "distilled")):
        cells.setdefault(run.width, {}).setdefault(float(run.metrics["temperature"]), []).append(run)
    return {w: {t: Measure.of([(r.metrics["test_errors"], r.metrics["test_total"]) for r in runs],
                              scale, [seed_of(r) for r in runs])
                for t, runs in sorted(cells[w].items())}
            for w in sorted(cells, reverse=True)}


def _blog_temperatures(width_ok) -> str:
    blog = paper_facts()["blog"].get("temperatures", {})
    return "; ".join(f"{w} units, T = {t:g}: {e:g}" for w, temps in blog.items()
                     if width_ok(int(w)) for t, e in temps.items())


def _cells_text(temps: dict[float, Measure]) -> str:
    return ", ".join(f"T {t:g}: {m.mean:.1f}" + (f" ± {m.sd:.1f}" if m.sd is not None else "")
                     + f" (n={m.n})" for t, m in temps.items())


def wide_temperature_row(grid: dict[int, dict[float, Measure]]) -> LedgerRow:
    """300+ units per layer: all T above 8 fairly similar (section 3, paragraph 2)."""
    published = fact("wide_temperature_threshold")
    above, min_width = published["value"], published["min_width"]
    row = LedgerRow(id="wide_temperature_band", unit="errors", paper=None,
                    claim=f"{min_width}+ units: all T above {above:g} fairly similar",
                    paper_text="fairly similar", source=published["source"],
                    quote=published["quote"].strip(), protocol=PAIRED,
                    blog_text=_blog_temperatures(lambda w: w >= min_width),
                    test=f"paired equivalence (TOST) within ±{SIMILAR_MARGIN:.0%} of the best T")
    cells = {w: {t: m for t, m in temps.items() if t > above}
             for w, temps in grid.items() if w >= min_width}
    cells = {w: c for w, c in cells.items() if c}
    decision = wide_decision(cells, above)
    row.verdict, row.reason, row.pvalue = decision.verdict, decision.reason, decision.pvalue
    if cells:
        bands = {w: max(m.mean for m in c.values()) - min(m.mean for m in c.values())
                 for w, c in cells.items()}
        row.extra["band"] = max(bands.values())
        compared = [band for w, band in bands.items() if len(cells[w]) > 1]
        row.ours_text = (f"means spread ≤ {max(compared):.1f} errors" if compared
                         else f"one T above {above:g} at each width")
        row.detail = "; ".join(f"h{w}: {_cells_text(c)}" for w, c in cells.items())
        row.seeds = min(m.n for c in cells.values() for m in c.values())
    return row


def narrow_temperature_row(grid: dict[int, dict[float, Measure]]) -> LedgerRow:
    """30 units per layer: T in [2.5, 4] significantly best (section 3, paragraph 2)."""
    published = fact("narrow_temperature_range")
    low, high = published["value"]
    width = published["width"]
    row = LedgerRow(id="narrow_temperature_best", unit="T", paper=None,
                    claim=f"{width} units: T in [{low:g}, {high:g}] significantly better than "
                          "higher or lower T",
                    paper_text=f"{low:g}–{high:g}", source=published["source"],
                    quote=published["quote"].strip(), protocol=PAIRED,
                    blog_text=_blog_temperatures(lambda w: w == width),
                    test="paired t-tests: best in-range T against the best T on each side")
    temps = grid.get(width, {})
    decision = narrow_decision(temps, low, high)
    row.verdict, row.reason, row.pvalue = decision.verdict, decision.reason, decision.pvalue
    if temps:
        best_t = min(temps, key=lambda t: temps[t].mean)
        row.extra["best_temperature"] = best_t
        row.seeds = min(m.n for m in temps.values())
        row.ours_text = f"lowest mean at T = {best_t:g} ({temps[best_t].mean:.1f} errors)"
        row.detail = _cells_text(temps)
    return row
