"""The report's view model: every number the templates show, read from the results.

:func:`build_view` gathers every number from the results directory (via
:mod:`kdrepro.report.collect` and :mod:`kdrepro.report.claims`) and every published value
from ``paper.yaml``; figures are built here as matplotlib Figures and written to files by
:mod:`kdrepro.report.render` only.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from kdrepro.report import claims, plots, verdicts
from kdrepro.report.ablation import ablation_view
from kdrepro.report.collect import RunRecord, benchmarks_frame, load_runs
from kdrepro.report.facts import (
    claim_classes,
    fact,
    graded_runs,
    paper_facts,
    role_runs,
    transfer_of,
)
from kdrepro.report.manifests import assumption_register, provenance
from kdrepro.report.stats import Measure

FIGURE_CAPTIONS = {
    "temperature": "Distilled test errors against temperature, by hidden width (section 3, "
                   "paragraph 2). Dashed: the hard-label student of the same width.",
    "omit3_sweep": "Transfer set without 3s: errors against the shift of the class-3 bias. "
                   "▽ test-tuned shift, ○ validation-chosen shift, dashed: the paper's +3.5.",
    "keep78_sweep": "Transfer set of only 7s and 8s: errors against the shift of the biases of "
                    "7 and 8. ▽ test-tuned, ○ validation-chosen, dashed: the paper's −7.6.",
    "omit3_per_class": "Student trained without 3s: test errors per digit, as trained and "
                       "after the paper's shift (mean over seeds).",
    "omit3_confusion": "Student trained without 3s: confusion matrices summed over seeds.",
    "omit3_wrong_threes": "Test 3s the student trained without 3s still gets wrong after the "
                          "paper's shift (first seed).",
    "training": "Test errors after each epoch (mean over seeds).",
    "headline": "Every count claim: the paper's value (red diamond) against our runs (a dot "
                "per seed) and the 95% prediction interval for one new run (bar; needs 2+ "
                "seeds). Grey square: the 2020 blog. Lower is better.",
}


def main_table(records: list[RunRecord]) -> list[dict]:
    """Teacher, hard-label student and distilled student (section 3, paragraph 1)."""
    rows = claims.teacher_student_rows(records)[:3]
    names = ("Teacher 1200-1200, dropout + max-norm + jitter", "Student 800-800, hard labels",
             "Student 800-800, soft targets T = 20")
    return [{"name": n, "row": r} for n, r in zip(names, rows)]


def temperature_table(records: list[RunRecord]) -> dict:
    """Width x temperature grid of mean test errors, with each width's hard-label student."""
    grid = claims.temperature_grid(records)
    temps = sorted({t for cells in grid.values() for t in cells})
    hard = [r for r in role_runs(records, "baseline") if transfer_of(r) == ([], [])]
    baselines = {w: claims.errors_measure([r for r in hard if r.width == w], "baseline_errors")
                 for w in grid}
    return {"widths": list(grid), "temperatures": temps, "grid": grid,
            "baselines": {w: m for w, m in baselines.items() if m}}


def bias_table(runs: list[RunRecord], errors_key: str, classes_key: str | None) -> list[dict]:
    """One row per bias protocol: chosen shifts, test errors and errors on shifted classes."""
    rows = []
    for name, label in claims.PROTOCOL_LABELS.items():
        total = claims.protocol_measure(runs, name, errors_key)
        if total is None:
            continue
        shifts = claims.protocol_shifts(runs, name) or [0.0]
        text = ", ".join(f"{s:+g}" if s else "0" for s in shifts)
        if name == "all_set":  # no shift: every bias is set to the blog's value
            text = "all = " + ", ".join(f"{r.bias['protocols'][name]['bias_value']:g}"
                                        for r in runs if name in (r.bias or {}).get("protocols", {}))
        row = {"protocol": label, "errors": total, "shifts": text, "in_classes": None,
               "pct_right": None}
        if classes_key:
            row["in_classes"] = claims.protocol_measure(runs, name, classes_key, True)
            pairs = claims.protocol_pairs(runs, name, True)
            row["pct_right"] = Measure.of([(t - e, t) for e, t, _ in pairs], 100,
                                          [s for *_, s in pairs])
        rows.append(row)
    return rows


def _published(*keys: str) -> dict:
    return {k: fact(k)["value"] for k in keys}


def omit3_view(records: list[RunRecord], data_path: Path | None) -> dict:
    """Tables and figures of the student trained without 3s (section 3, paragraph 3)."""
    runs = graded_runs(records, "omit3_errors")[0]
    paper = _published("omit3_errors", "omit3_errors_on_3s", "omit3_shifted_errors",
                       "omit3_shifted_errors_on_3s", "omit3_bias_shift")
    threes = fact("omit3_errors_on_3s")["denominator"]
    paper["pct_right_as_trained"] = 100 - 100 * paper["omit3_errors_on_3s"] / threes
    paper["pct_right_shifted"] = 100 - 100 * paper["omit3_shifted_errors_on_3s"] / threes
    view = {"runs": len(runs), "paper": paper, "figures": {}, "grid_note": "",
            "table": bias_table(runs, "omit3_errors", "omit3_errors_on_3s")}
    if not runs:
        return view
    with_bias = [r for r in runs if r.bias and "paper" in r.bias.get("protocols", {})]
    per_class = {"as trained": _mean_lists([r.metrics["per_class_errors"] for r in runs])}
    matrices = {"as trained": _sum_matrices([r.metrics["confusion"] for r in runs])}
    if with_bias:
        view["figures"]["omit3_sweep"] = plots.bias_sweep_figure(with_bias, "no 3s")
        shifted = [r.bias["protocols"]["paper"] for r in with_bias]
        label = f"paper's shift {with_bias[0].bias['paper_shift']:+g}"
        per_class[label] = _mean_lists([p["per_class_errors"] for p in shifted])
        matrices[label] = _sum_matrices([p["confusion"] for p in shifted])
    view["figures"]["omit3_per_class"] = plots.per_class_figure(per_class)
    view["figures"]["omit3_confusion"] = plots.confusion_figure(matrices)
    view["grid_note"] = _wrong_threes(with_bias, data_path, view["figures"])
    return view


def _mean_lists(lists: list[list[float]]) -> list[float]:
    return [sum(col) / len(col) for col in zip(*lists)]


def _sum_matrices(matrices: list[list[list[int]]]) -> list[list[int]]:
    return [[sum(cells) for cells in zip(*rows)] for rows in zip(*matrices)]


def _wrong_threes(runs: list[RunRecord], data_path: Path | None, figures: dict) -> str:
    """Add the grid of still-wrong test 3s to ``figures``; return a note when skipped."""
    if not runs:
        return "no bias.json with the paper's shift yet; grid skipped"
    if data_path is None or not Path(data_path).is_file():
        return f"MNIST cache not found at {data_path}; grid of wrong 3s skipped"
    try:
        from kdrepro.data.mnist import load_mnist

        mnist = load_mnist(Path(data_path), verify=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache only skips the grid
        return f"MNIST cache {data_path} unreadable ({type(exc).__name__}); grid skipped"
    labels = [int(v) for v in mnist.test_labels]
    omitted = set(claim_classes("omit3_errors"))
    wrong = [i for i in runs[0].bias["protocols"]["paper"]["wrong_indices"]
             if i < len(labels) and labels[i] in omitted]
    if not wrong:
        return "the first seed gets every test 3 right after the paper's shift"
    figures["omit3_wrong_threes"] = plots.image_grid_figure(
        mnist.test_images[wrong], f"{len(wrong)} test 3s still wrong ({runs[0].run})")
    return ""


def keep78_view(records: list[RunRecord]) -> dict:
    """Tables and figure of the student trained on only 7s and 8s (section 3, paragraph 3)."""
    runs = graded_runs(records, "keep78_error_pct")[0]
    view = {"runs": len(runs), "table": bias_table(runs, "keep78_error_pct", None),
            "paper": _published("keep78_error_pct", "keep78_bias_shift",
                                "keep78_shifted_error_pct"), "figures": {}}
    with_bias = [r for r in runs if r.bias]
    if with_bias:
        view["figures"]["keep78_sweep"] = plots.bias_sweep_figure(with_bias, "only 7s and 8s")
    return view


def headline_rows(ledger: list) -> list[dict]:
    """The count claims of the ledger for the headline figure: label, paper, blog, our runs."""
    rows = []
    for row in ledger:
        if row.paper is None:
            continue
        label = row.claim if not row.protocol_id or row.protocol_id == "as_trained" else (
            f"{row.claim} ({claims.SHORT_PROTOCOLS[row.protocol_id]})")
        rows.append({"label": label, "paper": row.paper, "blog": row.blog,
                     "unit": row.unit, "measure": row.measure, "verdict": row.verdict})
    return rows


SPEED_FILE = Path("speed") / "train_speed.json"


def speed_view(results_dir: Path) -> dict | None:
    """The training-speed benchmark's targets, when its rule has run (appendix)."""
    path = Path(results_dir) / SPEED_FILE
    if not path.is_file():
        return None
    figures = json.loads(path.read_text(encoding="utf-8"))
    rows = [{"target": t["target"], "value": t["value"], "threshold": t["threshold"],
             "op": t["op"], "passed": t["passed"], "tainted": bool(t.get("tainted_by"))}
            for t in figures.get("targets", {}).values()]
    meta = figures.get("meta", {})
    return {"file": str(path), "rows": rows, "date": meta.get("date"),
            "cpu": meta.get("cpu"), "quick": meta.get("quick"), "threads": meta.get("threads")}


def build_view(results_dir: Path, data_path: Path | None = None) -> dict:
    """Everything the templates show, read from ``results_dir`` and ``paper.yaml``."""
    records = load_runs(results_dir)
    facts = paper_facts()
    ledger = claims.ledger(records)
    temps = temperature_table(records)
    omit3, keep78 = omit3_view(records, data_path), keep78_view(records)
    figures = {**omit3.pop("figures"), **keep78.pop("figures")}
    if temps["grid"]:
        figures["temperature"] = plots.temperature_figure(temps["grid"], temps["baselines"])
    figures["headline"] = plots.headline_figure(headline_rows(ledger))
    series = {"teacher": graded_runs(records, "teacher_errors")[0],
              "800-800 hard labels": graded_runs(records, "baseline_errors")[0],
              "800-800 distilled, T = 20": graded_runs(records, "distilled_errors")[0]}
    if any(series.values()):
        figures["training"] = plots.training_curves_figure(
            {k: v for k, v in series.items() if v})
    return {
        "title": "Distilling the Knowledge in a Neural Network — section 3 (MNIST) reproduced",
        "results_dir": str(results_dir), "run_count": len(records),
        "paper": facts["paper"], "blog": facts["blog"],
        "model": verdicts.MODEL, "verdict_names": verdicts.VERDICTS, "ledger": ledger,
        "quotes": [{"quote": f["quote"].strip(), "source": f["source"]}
                   for f in facts["values"].values()],
        "verdict_counts": Counter(row.verdict for row in ledger),
        "main_table": main_table(records), "temperature": temps,
        "omit3": omit3, "keep78": keep78,
        "register": assumption_register(records, facts),
        "provenance": provenance(records, benchmarks_frame(results_dir)),
        "figures": figures, "captions": FIGURE_CAPTIONS, "speed": speed_view(results_dir),
        "ablation": ablation_view(results_dir, records),
    }

