"""The teacher ablation (issue 16): the paper's teacher with one ingredient removed.

Opt-in runs under ``results/ablation/<variant>/{teacher,distilled}`` (rule ``ablation``,
kdrepro.plan.ablation_targets). Section 3 names three teacher ingredients: dropout,
weight constraints (max-norm) and jitter; each variant drops exactly one, so the
difference from the full recipe is that ingredient's share of the teacher's accuracy
and of the distilled student's. One seed per variant: differences inside a few tens of
errors are within seed noise (docs/statistics.md).
"""

from __future__ import annotations

from pathlib import Path

from kdrepro.report.collect import RunRecord, load_runs

ABLATION_DIR = "ablation"
VARIANT_LABELS = {"no_jitter": "no jitter", "no_dropout": "no dropout (input and hidden)",
                  "no_max_norm": "no max-norm"}


def _variant_order(variant: str) -> tuple[int, str]:
    """The plan's order (jitter, dropout, max-norm); unknown folders last."""
    order = list(VARIANT_LABELS)
    return (order.index(variant) if variant in order else len(order), variant)


def _errors(record: RunRecord | None) -> int | None:
    return None if record is None else int(record.metrics["test_errors"])


def _full_recipe(records: list[RunRecord], student: RunRecord | None) -> dict:
    """The ledger's own teacher and the matching distilled student (lowest seeds)."""
    teachers = [r for r in records if r.role == "teacher"]
    want = (student.width, student.metrics.get("temperature")) if student else (800, 20.0)
    students = [r for r in records if r.role == "distilled"
                and (r.width, r.metrics.get("temperature")) == want]
    return {"variant": "full", "label": "full recipe (the ledger's runs)",
            "teacher": _errors(_first_seed(teachers)), "distilled": _errors(_first_seed(students))}


def _first_seed(records: list[RunRecord]) -> RunRecord | None:
    return min(records, key=lambda r: r.metrics.get("seed") or 0) if records else None


def ablation_view(results_dir: Path, records: list[RunRecord]) -> dict | None:
    """Rows (variant, teacher errors, distilled errors) when any ablation run exists."""
    folder = Path(results_dir) / ABLATION_DIR
    if not folder.is_dir():
        return None
    runs: dict[str, dict[str, RunRecord]] = {}
    for record in load_runs(folder):
        variant, net = record.path.relative_to(folder).parts[:2]
        runs.setdefault(variant, {})[net] = record
    if not runs:
        return None
    rows = [{"variant": v, "label": VARIANT_LABELS.get(v, v),
             "teacher": _errors(nets.get("teacher")), "distilled": _errors(nets.get("distilled"))}
            for v, nets in sorted(runs.items(), key=lambda item: _variant_order(item[0]))]
    student = next((n["distilled"] for n in runs.values() if "distilled" in n), None)
    width = student.width if student else None
    temperature = student.metrics.get("temperature") if student else None
    return {"folder": str(folder), "rows": [_full_recipe(records, student), *rows],
            "width": width, "temperature": temperature}
