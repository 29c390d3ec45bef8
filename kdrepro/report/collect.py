"""Read a results directory (docs/results.md) into run records and one tidy table.

Each run of section 3 (teacher, baseline, distilled, omit, keep) leaves a
``metrics.json``, a ``manifest.json`` and, for omit/keep runs, a ``bias.json``.
:func:`load_runs` keeps the parsed files for the report; :func:`runs_frame` flattens
them to one row per run, which ``kdrepro collect`` writes as ``results/metrics.csv``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kdrepro.io import write_atomic

ROLES = ("teacher", "baseline", "distilled", "omit", "keep")
PROTOCOLS = ("as_trained", "paper", "test_tuned", "validation")
# ablation/ holds the opt-in teacher ablation: its own report section, not the ledger's runs
_SKIPPED_DIRS = {"data", "benchmarks", "logs", "ablation"}


class ResultsError(RuntimeError):
    """The results directory is missing or holds a file that cannot be read."""


@dataclass
class RunRecord:
    """One finished run: its directory and the parsed JSON files beside its metrics."""

    path: Path
    metrics: dict
    manifest: dict = field(default_factory=dict)
    bias: dict | None = None

    @property
    def run(self) -> str:
        return str(self.metrics.get("run", self.path.name))

    @property
    def role(self) -> str:
        return str(self.metrics.get("role", ""))

    @property
    def width(self) -> int | None:
        hidden = self.metrics.get("hidden") or []
        return int(hidden[0]) if hidden else None

    @property
    def classes(self) -> str:
        """The omitted or kept digits as a string ('3', '78'), '' for other runs."""
        transfer = self.metrics.get("transfer_set") or {}
        digits = transfer.get("omit") or transfer.get("keep") or []
        return "".join(str(d) for d in digits)


def _read_json(path: Path) -> dict:
    """A JSON object (metrics, manifest, bias); anything else names the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} holds a JSON {type(data).__name__}, expected an object "
                           "written by kdrepro")
    return data


def _optional_json(path: Path) -> dict | None:
    return _read_json(path) if path.is_file() else None


def find_metrics(results_dir: Path) -> list[Path]:
    """Every metrics.json below the results directory, outside data/, benchmarks/, logs/."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsError(f"results directory not found: {results_dir}")
    found = []
    for path in sorted(results_dir.rglob("metrics.json")):
        top = path.relative_to(results_dir).parts[0]
        if top not in _SKIPPED_DIRS:
            found.append(path)
    return found


def load_runs(results_dir: Path) -> list[RunRecord]:
    """Parse every finished run (a run is finished once its metrics.json exists)."""
    records = []
    for metrics_path in find_metrics(results_dir):
        directory = metrics_path.parent
        records.append(RunRecord(
            path=directory,
            metrics=_read_json(metrics_path),
            manifest=_optional_json(directory / "manifest.json") or {},
            bias=_optional_json(directory / "bias.json"),
        ))
    return sorted(records, key=run_order)


def run_order(record: RunRecord) -> tuple:
    """Paper order: role, then wider networks first, temperature, digits, seed."""
    role = ROLES.index(record.role) if record.role in ROLES else len(ROLES)
    return (role, -(record.width or 0), record.metrics.get("temperature") or 0.0,
            record.classes, record.metrics.get("seed") or 0, record.run)


def _bias_columns(bias: dict | None) -> dict:
    """Flat protocol columns of a bias.json (shift, test errors, errors on shifted classes)."""
    columns = {"paper_shift": (bias or {}).get("paper_shift")}
    protocols = (bias or {}).get("protocols", {})
    for name in PROTOCOLS:
        protocol = protocols.get(name, {})
        for key in ("shift", "test_errors", "errors_in_classes", "class_total"):
            columns[f"{name}_{key}"] = protocol.get(key)
    return columns


def run_row(record: RunRecord) -> dict:
    """The tidy row of one run: identity, configuration, test errors, provenance."""
    metrics, manifest = record.metrics, record.manifest
    transfer = metrics.get("transfer_set") or {}
    total = metrics.get("test_total") or 0
    row = {
        "run": record.run,
        "role": record.role,
        "hidden": record.width,
        "layers": "-".join(str(h) for h in metrics.get("hidden") or []),
        "temperature": metrics.get("temperature"),
        "hard_weight": metrics.get("hard_weight"),
        "seed": metrics.get("seed"),
        "classes": record.classes,
        "transfer_size": transfer.get("size"),
        "epochs": metrics.get("epochs"),
        "test_errors": metrics.get("test_errors"),
        "test_total": total,
        "test_error_pct": 100.0 * metrics.get("test_errors", 0) / total if total else None,
        "train_seconds": metrics.get("train_seconds"),
        "wall_seconds": manifest.get("wall_seconds"),
        "device": manifest.get("device"),
        "git_commit": manifest.get("git_commit"),
        "data_sha256": manifest.get("data_sha256"),
    }
    per_class = metrics.get("per_class_errors") or []
    row.update({f"errors_class{c}": e for c, e in enumerate(per_class)})
    row.update(_bias_columns(record.bias))
    return row


def runs_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run, in the paper's order (see :func:`run_order`)."""
    rows = [run_row(r) for r in sorted(records, key=run_order)]
    if not rows:
        return pd.DataFrame(columns=["run", "role", "hidden", "temperature", "seed",
                                     "test_errors", "test_total"])
    return pd.DataFrame(rows)


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_benchmark(path: Path) -> dict:
    """Wall seconds (mean over repeats) and max RSS (MB) of a Snakemake benchmark TSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    seconds = [s for s in (_number(r.get("s")) for r in rows) if s is not None]
    rss = [m for m in (_number(r.get("max_rss")) for r in rows) if m is not None]
    return {"seconds": sum(seconds) / len(seconds) if seconds else None,
            "max_rss_mb": max(rss) if rss else None}


def benchmark_run(rule: str, job: str) -> str:
    """The run a benchmark belongs to: ``train_{role}/{rest}`` is run ``{role}/{rest}``;
    other rules' jobs (soft targets, bias sweeps) are named ``{rule}/{job}``, no run's."""
    return f"{rule.removeprefix('train_')}/{job}" if rule.startswith("train_") else f"{rule}/{job}"


def benchmarks_frame(results_dir: Path) -> pd.DataFrame:
    """One row per benchmark file: rule, job (path below the rule), run, seconds, max RSS."""
    root = Path(results_dir) / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        parts = path.relative_to(root).with_suffix("").parts
        rule, job = parts[0], "/".join(parts[1:]) or parts[0]
        try:
            rows.append({"rule": rule, "job": job, "run": benchmark_run(rule, job),
                         **read_benchmark(path)})
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise ResultsError(f"cannot read benchmark {path}: {exc}") from None
    return pd.DataFrame(rows, columns=["rule", "job", "run", "seconds", "max_rss_mb"])


def collect_frame(results_dir: Path) -> pd.DataFrame:
    """The table ``kdrepro collect`` writes: run rows plus each run's benchmarked seconds."""
    frame = runs_frame(load_runs(results_dir))
    bench = benchmarks_frame(results_dir)
    if not frame.empty:
        per_run = bench.groupby("run")["seconds"].sum().to_dict()
        frame["benchmark_seconds"] = [per_run.get(run) for run in frame["run"]]
    return frame


def write_collected(results_dir: Path, out: Path) -> pd.DataFrame:
    """Collect ``results_dir`` and write the table to ``out`` as CSV (temp file + os.replace)."""
    from kdrepro.outputs import check_output_file

    check_output_file(Path(out), "--out", inputs={}, replaceable=())
    frame = collect_frame(results_dir)
    write_atomic(Path(out), frame.to_csv(index=False))
    return frame
