"""Manifest summaries for the report: the assumption register and the provenance appendix.

Read from the run records of :mod:`kdrepro.report.collect` (each run's manifest.json and
the Snakemake benchmark table); nothing here reads files itself.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from kdrepro.report.collect import RunRecord


def _display(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_display(v) for v in value) + "]"
    return str(value)


def spec_values(records: list[RunRecord], key: str) -> str:
    """The values a spec key took across manifests, with the roles that used each."""
    roles_by_value: dict[str, list[str]] = {}
    for record in records:
        spec = record.manifest.get("spec") or {}
        if key in spec:
            roles = roles_by_value.setdefault(_display(spec[key]), [])
            if record.role not in roles:
                roles.append(record.role)
    if not roles_by_value:
        return "not in any manifest yet"
    if len({tuple(r) for r in roles_by_value.values()}) == 1:
        return ", ".join(roles_by_value)
    return "; ".join(f"{v} ({', '.join(r)})" for v, r in roles_by_value.items())


def bias_shift_values(records: list[RunRecord]) -> str:
    """The paper shifts recorded in bias.json files, by omitted or kept digits."""
    shifts = {f"{r.role} {r.classes}": r.bias.get("paper_shift") for r in records if r.bias}
    return "; ".join(f"{k}: {v:+g}" for k, v in shifts.items()) or "no bias.json yet"


def assumption_register(records: list[RunRecord], facts: dict) -> list[dict]:
    """Each run setting, the values read from the manifests, and where it comes from."""
    tags = facts["assumption_tags"]
    rows = []
    for entry in facts["assumptions"]:
        key = entry["key"]
        values = bias_shift_values(records) if key == "bias_shift" else spec_values(records, key)
        rows.append({"key": key, "setting": entry["setting"], "tag": entry["tag"],
                     "tag_label": tags[entry["tag"]], "used": values, "why": entry.get("why", "")})
    return rows


def _distinct(manifests: list[dict], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for manifest in manifests:
        value = _display(manifest.get(key))
        counts[value] = counts.get(value, 0) + 1
    return counts


def rule_runtimes(bench: pd.DataFrame) -> list[dict]:
    """Per Snakemake rule: jobs, total, mean and max wall seconds, peak RSS (MB)."""
    if bench.empty:
        return []
    grouped = bench.groupby("rule").agg(jobs=("job", "count"), total=("seconds", "sum"),
                                        mean=("seconds", "mean"), max=("seconds", "max"),
                                        max_rss_mb=("max_rss_mb", "max"))
    return [{"rule": rule, **row} for rule, row in grouped.to_dict("index").items()]


def run_span_seconds(manifests: list[dict]) -> float | None:
    """Wall clock from the first run's start to the last run's end (parallel jobs overlap)."""
    spans = []
    for manifest in manifests:
        try:
            start = datetime.fromisoformat(manifest["started"]).timestamp()
            spans.append((start, start + float(manifest["wall_seconds"])))
        except (KeyError, TypeError, ValueError):
            continue
    if not spans:
        return None
    return max(end for _, end in spans) - min(start for start, _ in spans)


def provenance(records: list[RunRecord], bench: pd.DataFrame) -> dict:
    """Commits, data digests, devices, versions, the spec of each role, and runtimes."""
    manifests = [r.manifest for r in records if r.manifest]
    versions: dict[str, list[str]] = {}
    for manifest in manifests:
        for package, version in (manifest.get("versions") or {}).items():
            if str(version) not in versions.setdefault(package, []):
                versions[package].append(str(version))
    first_by_role = {}
    for record in records:
        first_by_role.setdefault(record.role, record)
    specs = {role: r.manifest.get("spec") or {} for role, r in first_by_role.items()}
    spec_keys = list(dict.fromkeys(k for spec in specs.values() for k in spec))
    runs = [{"run": r.run, "seed": r.metrics.get("seed"),
             "test_errors": r.metrics.get("test_errors"),
             "train_seconds": r.metrics.get("train_seconds"),
             "wall_seconds": r.manifest.get("wall_seconds"), "device": r.manifest.get("device"),
             "commit": str(r.manifest.get("git_commit") or "")[:10],
             "started": r.manifest.get("started"), "host": r.manifest.get("host"),
             "slurm_job_id": r.manifest.get("slurm_job_id")} for r in records]
    return {"git_commits": _distinct(manifests, "git_commit"),
            "data_sha256": _distinct(manifests, "data_sha256"),
            "devices": _distinct(manifests, "device"), "threads": _distinct(manifests, "threads"),
            "hosts": _distinct(manifests, "host"), "versions": versions,
            "specs": {role: {k: _display(spec.get(k)) if k in spec else "" for k in spec_keys}
                      for role, spec in specs.items()}, "spec_keys": spec_keys,
            "runs": runs, "rules": rule_runtimes(bench),
            "benchmark_seconds": float(bench["seconds"].sum()) if not bench.empty else None,
            "span_seconds": run_span_seconds(manifests),
            "train_seconds": sum(r["train_seconds"] or 0 for r in runs) or None}
