"""Reading a results directory (docs/results.md) into records and the tidy table."""

from __future__ import annotations

import json
import stat

import pandas as pd
import pytest
from fake_results import SEEDS, TEMPERATURES, WIDTHS, write_fake_results

from kdrepro.report.claims import paper_facts
from kdrepro.report.collect import (
    ResultsError,
    benchmarks_frame,
    collect_frame,
    find_metrics,
    load_runs,
    read_benchmark,
    runs_frame,
    write_collected,
)
from kdrepro.report.manifests import (
    assumption_register,
    provenance,
    run_span_seconds,
    spec_values,
)

RUNS_PER_SEED = 1 + len(WIDTHS) * (1 + len(TEMPERATURES)) + 2


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def records(results):
    return load_runs(results)


def test_find_metrics_skips_data_benchmarks_and_logs(results, tmp_path):
    stray = results / "logs" / "train" / "metrics.json"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("{}")
    try:
        found = find_metrics(results)
    finally:
        stray.unlink()
    assert len(found) == RUNS_PER_SEED * len(SEEDS)
    assert all(p.relative_to(results).parts[0] not in {"logs", "data", "benchmarks"}
               for p in found)


def test_load_runs_reads_bias_and_manifest_beside_metrics(records):
    omit = [r for r in records if r.role == "omit"]
    assert len(omit) == len(SEEDS)
    assert all(r.bias["classes"] == [3] and r.classes == "3" for r in omit)
    assert all(r.manifest["spec"]["role"] == r.role for r in records)
    assert records[0].role == "teacher"  # paper order


def test_runs_frame_has_one_tidy_row_per_run(records):
    frame = runs_frame(records)
    assert len(frame) == len(records)
    assert frame["run"].is_unique
    assert {"run", "role", "hidden", "temperature", "seed", "test_errors",
            "test_tuned_shift", "paper_errors_in_classes", "errors_class3"} <= set(frame.columns)
    distilled = frame[frame.role == "distilled"]
    assert set(distilled.hidden) == set(WIDTHS)
    assert set(distilled.temperature) == set(TEMPERATURES)
    keep = frame[frame.role == "keep"]
    assert (keep.paper_shift == -7.6).all() and (keep.classes == "78").all()
    assert frame[frame.role == "teacher"].paper_shift.isna().all()


def test_runs_frame_of_nothing_is_empty_with_columns():
    frame = runs_frame([])
    assert frame.empty and "test_errors" in frame.columns


def test_benchmarks_parse_seconds_and_rss(results, tmp_path):
    bench = benchmarks_frame(results)
    assert {"train_teacher", "train_distilled", "bias_sweep"} <= set(bench.rule)
    teacher = bench[bench.rule == "train_teacher"].iloc[0]
    assert (teacher.job, teacher.run) == ("seed1", "teacher/seed1")
    assert (bench.seconds > 0).all() and (bench.max_rss_mb > 0).all()
    odd = tmp_path / "odd.tsv"
    odd.write_text("s\th:m:s\tmax_rss\n4.0\t0:00:04\tNA\n6.0\t0:00:06\t-\n")
    assert read_benchmark(odd) == {"seconds": 5.0, "max_rss_mb": None}


def test_collect_frame_joins_benchmark_seconds(results):
    frame = collect_frame(results)
    teacher = frame[frame.run == "teacher/seed1"].iloc[0]
    assert teacher.benchmark_seconds > 0
    assert frame.benchmark_seconds.notna().all()


def test_write_collected_is_atomic_and_readable(results, tmp_path):
    out = tmp_path / "nested" / "metrics.csv"
    frame = write_collected(results, out)
    again = pd.read_csv(out)
    assert len(again) == len(frame)
    assert list(again.columns) == list(frame.columns)
    assert [p.name for p in out.parent.iterdir()] == ["metrics.csv"]  # no temp file left
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_missing_directory_and_bad_json_raise_results_error(tmp_path):
    with pytest.raises(ResultsError, match="not found"):
        load_runs(tmp_path / "absent")
    bad = tmp_path / "teacher" / "seed1" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match="metrics.json"):
        load_runs(tmp_path)


def test_spec_values_group_roles_by_value(records):
    assert spec_values(records, "input_dropout") == \
        "0.2 (teacher); 0 (baseline, distilled, omit, keep)"
    assert spec_values(records, "seed") == "1, 2, 3"
    assert spec_values(records, "no_such_key") == "not in any manifest yet"


def test_assumption_register_tags_every_setting(records):
    facts = paper_facts()
    register = assumption_register(records, facts)
    assert [r["key"] for r in register] == [a["key"] for a in facts["assumptions"]]
    by_key = {r["key"]: r for r in register}
    assert by_key["jitter"]["tag_label"] == "stated in the paper"
    assert by_key["hidden_dropout"]["tag"] == "cited"
    assert by_key["batch_size"]["tag_label"] == "assumed here"
    assert all(r["why"].strip() for r in register), "every setting says why this value"
    assert "+3.5" in by_key["bias_shift"]["used"] and "-7.6" in by_key["bias_shift"]["used"]


def test_provenance_summarises_manifests_and_rules(results, records):
    prov = provenance(records, benchmarks_frame(results))
    assert list(prov["git_commits"].values()) == [len(records)]
    assert prov["versions"]["torch"] == ["2.14.1"]
    assert prov["specs"]["teacher"]["hidden"] == "[1200, 1200]"
    rules = {r["rule"]: r for r in prov["rules"]}
    assert rules["train_distilled"]["jobs"] == len(SEEDS) * len(WIDTHS) * len(TEMPERATURES)
    assert prov["benchmark_seconds"] == pytest.approx(sum(r["total"] for r in rules.values()))


def test_run_span_is_first_start_to_last_end_with_overlaps():
    manifests = [{"started": "2026-01-01T00:00:00+00:00", "wall_seconds": 100.0},
                 {"started": "2026-01-01T00:00:30+00:00", "wall_seconds": 20.0},  # inside the first
                 {"started": "2026-01-01T00:01:40+00:00", "wall_seconds": 60.5},
                 {"started": "not a time", "wall_seconds": 5.0}, {}]
    assert run_span_seconds(manifests) == pytest.approx(160.5)
    assert run_span_seconds([{}]) is None


def test_manifest_spec_follows_the_contract(records):
    keys = {"role", "hidden", "input_dropout", "hidden_dropout", "max_norm", "jitter", "epochs",
            "batch_size", "lr", "lr_decay", "momentum_start", "momentum_end",
            "momentum_ramp_epochs", "weight_decay", "seed", "temperature", "hard_weight",
            "omit", "keep", "validation_fraction", "device"}
    assert all(keys <= set(r.manifest["spec"]) for r in records)
    assert json.loads(json.dumps(records[0].metrics))["schema"] == 1


def test_reads_what_the_training_side_writes(synthetic_mnist, tmp_path):
    """Contract check: tiny real runs (kdrepro.training.runs) on synthetic MNIST feed the ledger."""
    runs = pytest.importorskip("kdrepro.training.runs")
    from kdrepro.report.claims import ledger
    from kdrepro.training.spec import spec_from_dict

    cache, _ = synthetic_mnist
    results = tmp_path / "results"
    tiny = {"hidden": [8, 8], "epochs": 1, "batch_size": 50, "lr": 0.05}
    teacher = results / "teacher/seed1"
    runs.train_run(spec_from_dict({"role": "teacher", **tiny}), cache, teacher,
                   label="teacher/seed1")
    runs.soft_targets_run(teacher / "model.pt", cache, teacher / "soft_targets.pt")
    omit = results / "omit/c3/seed1"
    runs.train_run(spec_from_dict({"role": "omit", "temperature": 20.0, "hard_weight": 0.0,
                                   "omit": [3], "validation_fraction": 0.2, **tiny}),
                   cache, omit, label="omit/c3/seed1",
                   soft_targets_path=teacher / "soft_targets.pt",
                   teacher_path=teacher / "model.pt")
    runs.bias_run(omit, cache, 3.5, [0.0, 1.0, 3.5], omit / "bias.json")
    records = load_runs(results)
    frame = runs_frame(records)
    assert list(frame.run) == ["teacher/seed1", "omit/c3/seed1"]
    assert frame.loc[1, "paper_shift"] == 3.5 and frame.loc[1, "classes"] == "3"
    rows = {(r.id, r.protocol_id): r for r in ledger(records)}
    # tiny 8-8 nets are read, but not graded as the paper's 1200-1200 teacher or 800-800 student
    teacher = rows[("teacher_errors", "")]
    assert teacher.verdict == "not graded" and "8-8, not the paper's 1200-1200" in teacher.reason
    assert rows[("omit3_shifted_errors", "validation")].verdict == "not graded"
