"""Tests of the report's opt-in parts for issue 16: the teacher-ablation section and the
2020 blog's all-biases protocol, on fake results (tests/fake_results.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_results import FakeWriter, write_fake_results

from kdrepro.report import claims, render
from kdrepro.report.ablation import ablation_view
from kdrepro.report.collect import load_runs

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
ABLATED = {"no_jitter": (81, 90), "no_dropout": (112, 120), "no_max_norm": (77, 88)}


def _add_ablation(root: Path) -> None:
    writer = FakeWriter(root)
    for variant, (teacher, student) in ABLATED.items():
        writer.run(f"ablation/{variant}/teacher", "teacher", 1200, 1, teacher)
        writer.run(f"ablation/{variant}/distilled", "distilled", 800, 1, student, temperature=20.0)


def _add_all_set(root: Path, errors: int = 123, on_threes: int = 20) -> None:
    for path in sorted(root.glob("omit/c3/seed*/bias.json")):
        bias = json.loads(path.read_text())
        base = dict(bias["protocols"]["as_trained"])
        base.update(shift=None, bias_value=3.5, test_errors=errors, errors_in_classes=on_threes,
                    selected_by="all ten output biases set to one value")
        bias["protocols"]["all_set"] = base
        path.write_text(json.dumps(bias))


@pytest.fixture(scope="module")
def with_ablation(tmp_path_factory) -> Path:
    root = write_fake_results(tmp_path_factory.mktemp("results"))
    _add_ablation(root)
    _add_all_set(root)
    return root


def test_ablation_view_lists_each_variant_beside_the_full_recipe(with_ablation):
    records = load_runs(with_ablation)
    view = ablation_view(with_ablation, records)
    rows = {r["variant"]: (r["teacher"], r["distilled"]) for r in view["rows"]}
    assert {k: rows[k] for k in ABLATED} == ABLATED
    assert [r["variant"] for r in view["rows"]] == ["full", "no_jitter", "no_dropout", "no_max_norm"]
    teacher = min((r for r in records if r.role == "teacher"), key=lambda r: r.metrics["seed"])
    assert rows["full"][0] == teacher.metrics["test_errors"]
    assert (view["width"], view["temperature"]) == (800, 20.0)


def test_ablation_runs_stay_out_of_the_ledger(with_ablation):
    runs = [r.run for r in load_runs(with_ablation)]
    assert not [r for r in runs if r.startswith("ablation/")]


def test_no_ablation_folder_no_section(tmp_path):
    root = write_fake_results(tmp_path / "results", partial=True)
    assert ablation_view(root, load_runs(root)) is None


def test_all_set_row_carries_the_blogs_number_informational(with_ablation):
    rows = [r for r in claims.ledger(load_runs(with_ablation))
            if r.id == "omit3_shifted_errors"]
    by_protocol = {r.protocol_id: r for r in rows}
    all_set = by_protocol["all_set"]
    assert all_set.measure.mean == 123 and all_set.verdict == claims.INFORMATIONAL
    assert all_set.blog_text.startswith("123 (") and not by_protocol["paper"].blog_text


def test_report_shows_the_ablation_section_in_both_formats(with_ablation, tmp_path):
    render.render_report(with_ablation, TEMPLATES, tmp_path, with_ablation / "data" / "mnist.pt")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert 'id="ablation"' in html and "## Ablation" in md
    assert "| no dropout (input and hidden) | 112 | 120 |" in md
    assert "all biases set" in md or "all ten output biases" in md
