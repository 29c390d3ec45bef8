"""Markdown tables of the tuning runs (tuning/results/*.json) for docs/tuning.md.

    python tuning/table.py teacher      # validation errors by epoch, per run and variant mean
    python tuning/table.py student
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{stage}-*.json"))]


def variant_of(run: dict, stage: str) -> str:
    return run["run"].removeprefix(f"{stage}-").rsplit("-seed", 1)[0]


def curve(run: dict, every: int) -> str:
    history = run["history"]
    picks = [r["val_errors"] for r in history if r["epoch"] == 1 or r["epoch"] % every == 0]
    return ", ".join(str(v) for v in picks)


def table(stage: str) -> str:
    runs = load(stage)
    every = 10 if stage == "teacher" else 5
    lines = [f"| run | seed | epochs | validation errors at epoch 1, {every}, {2 * every}, ... "
             "| final | mean of last 5 epochs |", "| --- | --: | --: | --- | --: | --: |"]
    by_variant: dict[str, list[int]] = {}
    for run in runs:
        last5 = statistics.mean(r["val_errors"] for r in run["history"][-5:])
        lines.append(f"| {variant_of(run, stage)} | {run['seed']} | {run['epochs']} | "
                     f"{curve(run, every)} | **{run['val_errors']}** | {last5:.1f} |")
        by_variant.setdefault(variant_of(run, stage), []).append(run["val_errors"])
    lines += ["", "| variant | seeds | final validation errors | mean |", "| --- | --: | --- | --: |"]
    for name, values in by_variant.items():
        lines.append(f"| {name} | {len(values)} | {', '.join(map(str, values))} | "
                     f"{statistics.mean(values):.1f} |")
    total = runs[0]["val_total"] if runs else 0
    return "\n".join(lines) + f"\n\n(validation split: {total:,} images)\n"


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "teacher"))
