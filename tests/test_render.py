"""The report: filters, the view model, HTML and Markdown output, escaping, atomic writes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import torch
from fake_results import fake_test_labels, write_fake_results

from kdrepro.report import render, views
from kdrepro.report.stats import Measure

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SECTIONS = ("headline", "ledger", "verdicts", "students", "temperature", "omit3", "keep78",
            "training", "register", "provenance")
MD_HEADINGS = ("## Claim ledger", "## How verdicts are decided",
               "## Teacher, hard-label student and distilled student",
               "## Temperature and student size", "## Transfer set without any 3",
               "### Where the student without 3s errs", "## Transfer set of only 7s and 8s",
               "## Training curves", "## Assumption register", "## Provenance",
               "### Runtime of each rule", "### Configuration of each role")
EVIL = "<script>alert(1)</script>"


@pytest.mark.parametrize("value,digits,expected", [
    (None, 1, "—"), (float("nan"), 1, "—"), (74, 1, "74"), (74.0, 1, "74"),
    (12345, 1, "12,345"), (74.333, 1, "74.3"), (74.333, 2, "74.33")])
def test_count_filter(value, digits, expected):
    assert render.fmt_count(value, digits) == expected


@pytest.mark.parametrize("args,expected", [
    ((47.3,), "47.3%"), ((None,), "—"), ((98.6138, 2), "98.61%")])
def test_pct_filter(args, expected):
    assert render.fmt_pct(*args) == expected


@pytest.mark.parametrize("args,kwargs,expected", [
    ((75.0, 3.0), {}, "75.0 ± 3.0"), ((75.0, None), {}, "75"), ((75.5, None), {}, "75.5"),
    ((None, 2.0), {}, "—"),
    ((12.76, 0.3), {"unit": "%"}, "12.8 ± 0.3%"), ((1234.5, 10.25), {"digits": 0},
                                                     "1,234 ± 10")])
def test_pm_filter(args, kwargs, expected):
    assert render.fmt_pm(*args, **kwargs) == expected


@pytest.mark.parametrize("value,expected", [
    ((60.88, 80.09), "[60.9, 80.1]"), (None, "—"), ((0.0, 3.2), "[0.0, 3.2]"),
    ((1345.34, 1482.8), "[1345.3, 1482.8]")])
def test_ci_filter(value, expected):
    assert render.fmt_ci(value) == expected


@pytest.mark.parametrize("value,expected", [
    (0.0214844, "0.021"), (1.0, "1.000"), (7.9387e-22, "7.9e-22"), (None, "—"),
    (0.001, "0.001"), (0.000999, "1.0e-03")])
def test_pvalue_filter(value, expected):
    assert render.fmt_pvalue(value) == expected


@pytest.mark.parametrize("value,expected", [
    (12.34, "12.3 s"), (65, "1 min 05 s"), (3725, "1 h 02 min"), (None, "—")])
def test_seconds_filter(value, expected):
    assert render.fmt_seconds(value) == expected


def test_md_cell_escapes_pipes_newlines_and_html():
    assert render.md_cell("a|b\n<i>") == "a\\|b &lt;i&gt;"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    written = render.render_report(results, TEMPLATES, out, results / "data" / "mnist.pt")
    return SimpleNamespace(out=out, written=written,
                           html=(out / "report.html").read_text(encoding="utf-8"),
                           md=(out / "report.md").read_text(encoding="utf-8"))


def test_render_writes_html_markdown_and_figures(report):
    names = {p.name for p in (report.out / "figures").iterdir()}
    assert {"headline.png", "temperature.png", "omit3_sweep.png", "keep78_sweep.png", "omit3_per_class.png",
            "omit3_confusion.png", "training.png"} <= names
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in (report.out / "figures").iterdir())
    assert not [p for p in report.out.rglob("*") if p.name.endswith(".tmp")]


def test_html_is_self_contained(report):
    html = report.html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html and "@import" not in html
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == len(list((report.out / "figures").iterdir()))
    assert all(src.startswith("data:image/png;base64,") for src in images)


def test_html_has_every_section_and_the_ledger(report):
    for section in SECTIONS:
        assert f'<section id="{section}">' in report.html
    assert 'id="ledger-table"' in report.html
    assert report.html.count('<tr id="claim-') == 18
    assert "How verdicts are decided" in report.html and "prediction interval" in report.html
    assert "shift tuned on our test set: the paper&#39;s protocol" in report.html
    assert "MNIST cache not found" in report.html  # no cache in the fake results


def test_markdown_has_every_section_tables_and_relative_figures(report):
    for heading in MD_HEADINGS:
        assert f"\n{heading}\n" in report.md
    assert "| Claim (section 3) | Protocol | Paper |" in report.md
    assert report.md.count("|---|") >= 8
    assert "](figures/temperature.png)" in report.md
    assert "data:image" not in report.md
    for line in report.md.splitlines():  # every table row has the header's column count
        if line.startswith("| Claim (section 3)"):
            columns = line.count(" | ")
        elif line.startswith("| ") and "verdict" in line.lower() and "**" in line:
            assert line.count(" | ") == columns


def test_headline_figure_comes_first_in_both_reports(report):
    assert report.md.index("](figures/headline.png)") < report.md.index("## Claim ledger")
    assert report.html.index('<section id="headline">') < report.html.index('id="ledger-table"')


def test_blog_column_is_complete_with_its_caveat(report):
    for text in (report.html, report.md):
        for value in ("119", "132", "125 vs 132", "300 units, T = 8: 125",
                      "30 units, T = 20: 236; 30 units, T = 2.5: 222"):
            assert value in text
        assert "123 (all ten output biases set to 3.5 (not the paper&#39;s method))" in text \
            or "123 (all ten output biases set to 3.5 (not the paper's method))" in text
        assert "Karthik Arvind" in text


def test_numbers_in_the_report_come_from_the_results(report, results):
    teacher = json.loads((results / "teacher/seed1/metrics.json").read_text())
    assert teacher["test_errors"] == 67
    assert "70.0 ± 3.0" in report.html and "70.0 ± 3.0" in report.md  # seeds 67, 70, 73


def test_strings_from_files_are_escaped(tmp_path):
    results = write_fake_results(tmp_path / "results", partial=True)
    metrics_path = results / "teacher/seed1/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["run"] = EVIL
    metrics_path.write_text(json.dumps(metrics))
    manifest_path = results / "teacher/seed1/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"]["device"] = EVIL
    manifest["host"] = EVIL
    manifest_path.write_text(json.dumps(manifest))
    render.render_report(results, TEMPLATES, tmp_path / "out")
    html = (tmp_path / "out/report.html").read_text()
    md = (tmp_path / "out/report.md").read_text()
    assert EVIL not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert EVIL not in md and "&lt;script&gt;" in md


def test_partial_results_render_with_pending_sections(tmp_path):
    results = write_fake_results(tmp_path / "results", partial=True)
    render.render_report(results, TEMPLATES, tmp_path / "out")
    html = (tmp_path / "out/report.html").read_text()
    assert "pending" in html and "Pending: no runs yet." in html
    assert "Figure pending" in html


def test_strict_undefined_fails_on_a_missing_variable(results):
    view = render.build_view(results)
    view.pop("ledger")
    env = render.make_environment(TEMPLATES, html=True)
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("report.html.j2").render(**view, figure_src={})


def test_environments_escape_html_only():
    assert render.make_environment(TEMPLATES, html=True).autoescape is True
    md = render.make_environment(TEMPLATES, html=False)
    assert md.from_string("{{ x }}").render(x="<b>") == "<b>"
    assert md.from_string("{{ x|cell }}").render(x="<b>") == "&lt;b&gt;"
    for name in ("count", "pct", "pm", "ci", "pvalue", "seconds"):
        assert name in md.filters


def test_interrupted_render_leaves_previous_report(tmp_path, monkeypatch):
    results = write_fake_results(tmp_path / "results", partial=True)
    monkeypatch.setattr(render, "figure_png", lambda figure: b"\x89PNG stand-in")
    render.render_report(results, TEMPLATES, tmp_path)
    before = (tmp_path / "report.html").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(render, "render_text", broken)
    with pytest.raises(RuntimeError):
        render.render_report(results, TEMPLATES, tmp_path)
    assert (tmp_path / "report.html").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_grid_of_wrong_threes_uses_the_mnist_cache(results, tmp_path, monkeypatch):
    labels = torch.tensor(fake_test_labels())
    mnist = SimpleNamespace(test_images=torch.randint(0, 256, (len(labels), 28, 28),
                                                      dtype=torch.uint8), test_labels=labels)
    import kdrepro.data.mnist

    monkeypatch.setattr(kdrepro.data.mnist, "load_mnist", lambda path, verify=True: mnist)
    cache = tmp_path / "mnist.pt"
    cache.write_bytes(b"stand-in")
    view_figures = {}
    runs = [r for r in views.load_runs(results) if r.role == "omit"]
    note = views._wrong_threes(runs, cache, view_figures)
    assert note == "" and "omit3_wrong_threes" in view_figures
    wrong = [i for i in runs[0].bias["protocols"]["paper"]["wrong_indices"] if labels[i] == 3]
    assert str(len(wrong)) in view_figures["omit3_wrong_threes"].axes[0].get_title()


def test_measure_cells_render_in_both_formats():
    m = Measure.of([(70, 10000), (76, 10000)], 10000)  # t(0.975, 1) = 12.706: a wide PI
    for html in (True, False):
        env = render.make_environment(TEMPLATES, html=html)
        macros = "_macros.html.j2" if html else "_macros.md.j2"
        template = env.from_string(
            f'{{% import "{macros}" as f %}}{{{{ f.measure(m) }}}} {{{{ f.interval(m) }}}}')
        assert template.render(m=m) == "73.0 ± 4.2 [7.0, 139.0]"


SPEED = {"meta": {"date": "2026-11-29T10:33:00+00:00", "cpu": "Test CPU", "quick": True,
                  "threads": 2},
         "targets": {"reference_speedup": {
             "target": "teacher epoch >= 2.5x faster than reference style", "op": ">=",
             "threshold": 2.5, "value": 4.52, "passed": True, "tainted_by": []},
             "teacher_roofline_fraction": {
             "target": "teacher epoch >= 60% of the <matmul> roofline", "op": ">=",
             "threshold": 0.6, "value": 0.36, "passed": False, "tainted_by": ["teacher"]}}}


def test_speed_appendix_only_when_the_benchmark_ran(tmp_path):
    results = write_fake_results(tmp_path / "results", partial=True)
    render.render_report(results, TEMPLATES, tmp_path / "without")
    assert "training speed" not in (tmp_path / "without" / "report.html").read_text()
    (results / "speed").mkdir()
    (results / "speed" / "train_speed.json").write_text(json.dumps(SPEED))
    render.render_report(results, TEMPLATES, tmp_path / "with")
    html = (tmp_path / "with" / "report.html").read_text()
    md = (tmp_path / "with" / "report.md").read_text()
    for text in (html, md):
        assert "Appendix: training speed" in text and "4.52" in text and "0.36" in text
        assert "(machine was busy)" in text
    assert "&lt;matmul&gt;" in html and "<matmul>" not in html
    assert "| teacher epoch &gt;= 2.5x faster than reference style | 4.52 | &gt;= 2.50 | yes |" in md
