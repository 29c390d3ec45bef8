"""Verdicts from synthetic run records: seed noise, significance before refutation, grading.

Each test builds RunRecords in memory (the fields docs/results.md promises) with chosen
error counts per seed, and checks the ledger row the stated model (docs/statistics.md)
gives them.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kdrepro.report import claims, verdicts
from kdrepro.report.collect import RunRecord
from kdrepro.report.stats import (
    Measure,
    equivalence_pvalue,
    new_run_pvalue,
    paired_t,
    prediction_interval,
)

PER_CLASS_TOTAL = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def run(role: str, hidden: int, seed: int, errors: int, temperature: float | None = None,
        omit=(), keep=()) -> RunRecord:
    """A finished run with ``errors`` test errors (spread evenly over the digits)."""
    per_class = [errors // 10 + (d < errors % 10) for d in range(10)]
    metrics = {"schema": 1, "run": f"{role}/h{hidden}/T{temperature}/seed{seed}", "role": role,
               "hidden": [hidden, hidden], "seed": seed, "temperature": temperature,
               "transfer_set": {"omit": list(omit), "keep": list(keep), "size": 1},
               "test_errors": errors, "test_total": 10000, "per_class_errors": per_class,
               "per_class_total": PER_CLASS_TOTAL}
    return RunRecord(path=Path(metrics["run"]), metrics=metrics)


def grid(width: int, cells: dict[float, list[int]]) -> list[RunRecord]:
    """Distilled runs of one width: temperature -> errors of seeds 1, 2, 3, ..."""
    return [run("distilled", width, seed, e, temperature=t)
            for t, errors in cells.items() for seed, e in enumerate(errors, 1)]


def row(records: list[RunRecord], key: str, protocol: str = "") -> claims.LedgerRow:
    return next(r for r in claims.ledger(records) if r.id == key and r.protocol_id == protocol)


# ---- statistics: golden values ---------------------------------------------------------

def test_prediction_interval_golden_value():
    # mean 82, sd 1, n 3: 82 ± t(0.975, 2) · sqrt(4/3); t(0.975, 2) = 4.302652729911275
    low, high = prediction_interval([81, 82, 83])
    half = 4.302652729911275 * math.sqrt(4 / 3)
    assert (low, high) == pytest.approx((82 - half, 82 + half), abs=1e-9)
    assert prediction_interval([76]) is None
    assert new_run_pvalue([81, 82, 83], 82 - half) == pytest.approx(0.05, abs=1e-9)


def test_a_count_interval_stops_at_zero():
    # 14 ± wide: the raw t interval of (2, 30) errors reaches far below 0
    assert prediction_interval([2, 30])[0] < 0
    measure = Measure.of([(2, 1010), (30, 1010)], 1010)
    assert measure.interval[0] == 0.0 and measure.interval[1] == prediction_interval([2, 30])[1]


def test_paired_t_matches_the_closed_form_for_three_degrees_of_freedom():
    test = paired_t([3, 5, 6, 8], [2, 3, 4, 5])  # differences 1, 2, 2, 3
    t = 2 / (math.sqrt(2 / 3) / 2)
    x = t / math.sqrt(3)  # Student t, 3 df: F(t) = 1/2 + (x/(1+x^2) + atan x)/pi
    upper = 0.5 - (x / (1 + x * x) + math.atan(x)) / math.pi
    assert (test.n, test.mean_diff) == (4, 2.0)
    assert test.pvalue == pytest.approx(2 * upper, rel=1e-9)
    assert not test.a_better()  # A makes more errors
    # identical differences: the t-test is undefined; the exact sign-flip test of 2 pairs
    assert paired_t([1, 2], [3, 4]).pvalue == 0.5
    assert paired_t([1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8]).pvalue == pytest.approx(2 / 64)
    assert paired_t([1], [3]).pvalue is None


def test_equivalence_needs_tight_seeds_inside_the_margin():
    assert equivalence_pvalue([0.5, -0.5, 0.2, 0.1], margin=7.5) < 0.05
    assert equivalence_pvalue([6.0, -6.0, 5.0], margin=7.5) > 0.05
    assert equivalence_pvalue([1.0], margin=7.5) is None


# ---- count claims ----------------------------------------------------------------------

def test_tight_seeds_far_from_the_paper_are_not_reproduced():
    records = [run("distilled", 800, s, e, temperature=20.0) for s, e in ((1, 81), (2, 82), (3, 83))]
    distilled = row(records, "distilled_errors")
    assert distilled.verdict == verdicts.NOT_REPRODUCED  # the paper's 74 lies below the PI
    assert distilled.measure.interval[0] > 74 and distilled.pvalue < 0.05
    assert "prediction interval" in distilled.reason


def test_paper_inside_seed_noise_is_reproduced_with_three_seeds():
    records = [run("teacher", 1200, s, e) for s, e in ((1, 64), (2, 70), (3, 76))]
    teacher = row(records, "teacher_errors")
    assert teacher.verdict == verdicts.REPRODUCED and teacher.pvalue > 0.05


def test_two_seeds_cannot_confirm_but_can_refute():
    wide = [run("teacher", 1200, s, e) for s, e in ((1, 70), (2, 80))]
    assert row(wide, "teacher_errors").verdict == verdicts.INCONCLUSIVE
    tight = [run("teacher", 1200, s, e) for s, e in ((1, 150), (2, 151))]
    assert row(tight, "teacher_errors").verdict == verdicts.NOT_REPRODUCED


@pytest.mark.parametrize("errors,verdict", [(76, verdicts.INCONCLUSIVE),
                                            (150, verdicts.INCONCLUSIVE),
                                            (60, verdicts.REPRODUCED)])
def test_one_seed_says_so(errors, verdict):
    teacher = row([run("teacher", 1200, 1, errors)], "teacher_errors")
    assert teacher.verdict == verdict
    assert "1 seed: seed variation unknown" in teacher.reason
    assert teacher.measure.interval is None and teacher.pvalue is None


def test_a_wrong_architecture_run_is_not_graded():
    teacher = row([run("teacher", 30, 1, 300)], "teacher_errors")
    assert teacher.verdict == verdicts.NOT_GRADED and teacher.measure is None
    assert "30-30, not the paper's 1200-1200" in teacher.reason
    mixed = row([run("teacher", 30, 1, 300), run("teacher", 1200, 1, 60)], "teacher_errors")
    assert mixed.verdict == verdicts.REPRODUCED and mixed.measure.values == [60.0]
    assert "not graded" in mixed.reason


def test_omitted_classes_come_from_the_runs_and_must_match_the_claim():
    other = [run("omit", 800, s, 200, temperature=20.0, omit=(5,)) for s in (1, 2)]
    as_trained = row(other, "omit3_errors", "as_trained")
    assert as_trained.verdict == verdicts.NOT_GRADED and "omits 5" in as_trained.reason
    threes = [run("omit", 800, s, e, temperature=20.0, omit=(3,))
              for s, e in ((1, 200), (2, 204), (3, 202))]
    on_threes = row(threes, "omit3_errors_on_3s", "as_trained")
    assert on_threes.measure.values == [20.0, 21.0, 20.0]  # class 3 of each run (204: 21)


def test_shift_rows_of_the_paper_and_validation_are_informational(tmp_path):
    from fake_results import write_fake_results

    from kdrepro.report.collect import load_runs

    rows = claims.ledger(load_runs(write_fake_results(tmp_path)))
    by = {(r.id, r.protocol_id): r for r in rows}
    for key in ("omit3_shifted_errors", "keep78_shifted_error_pct"):
        assert by[(key, "paper")].verdict == verdicts.INFORMATIONAL
        assert by[(key, "validation")].verdict == verdicts.INFORMATIONAL
        assert by[(key, "test_tuned")].verdict in (verdicts.REPRODUCED, verdicts.NOT_REPRODUCED,
                                                   verdicts.INCONCLUSIVE)
        assert "the paper's protocol" in by[(key, "test_tuned")].protocol
    assert "not the paper's method" in by[("omit3_shifted_errors", "paper")].blog_text


# ---- comparisons between settings ------------------------------------------------------

def test_distilled_against_hard_labels_is_paired_by_seed():
    baseline = [run("baseline", 800, s, e) for s, e in ((1, 150), (2, 160), (3, 140))]
    distilled = [run("distilled", 800, s, e - 20, temperature=20.0)
                 for s, e in ((1, 150), (2, 161), (3, 139))]
    compared = row(baseline + distilled, "distilled_vs_baseline")
    # unpaired, seeds spread 140-160 would hide a 20-error gap; paired by seed it is clear
    assert compared.verdict == verdicts.REPRODUCED and compared.pvalue < 0.01
    one = row(baseline[:1] + distilled[:1], "distilled_vs_baseline")
    assert one.verdict == verdicts.INCONCLUSIVE and "1 seed pair" in one.reason


def test_narrow_lowest_mean_outside_the_range_but_inside_seed_noise_is_inconclusive():
    cells = {1.0: [300, 305, 298], 2.0: [210, 222, 218], 3.0: [228, 218, 230],
             8.0: [260, 270, 265]}
    narrow = row(grid(30, cells), "narrow_temperature_best")
    assert narrow.extra["best_temperature"] == 2.0  # lowest mean 216.7, outside [2.5, 4]
    assert narrow.verdict == verdicts.INCONCLUSIVE


def test_narrow_clear_in_range_optimum_is_reproduced():
    cells = {1.0: [300, 305, 298], 3.0: [200, 204, 199], 8.0: [260, 258, 263]}
    narrow = row(grid(30, cells), "narrow_temperature_best")
    assert narrow.verdict == verdicts.REPRODUCED and narrow.pvalue < 0.05


def test_narrow_clear_out_of_range_optimum_is_not_reproduced():
    cells = {1.0: [300, 305, 298], 3.0: [230, 233, 228], 8.0: [200, 204, 198]}
    narrow = row(grid(30, cells), "narrow_temperature_best")
    assert narrow.verdict == verdicts.NOT_REPRODUCED and "T = 8" in narrow.reason


def test_narrow_checks_the_seed_count_of_every_cell():
    cells = {1.0: [300], 3.0: [200, 204, 199], 8.0: [260, 258, 263]}  # T = 1 has one seed
    narrow = row(grid(30, cells), "narrow_temperature_best")
    assert narrow.verdict == verdicts.INCONCLUSIVE and "T = 1" in narrow.reason


def test_wide_uses_temperatures_above_eight_and_a_stated_margin():
    similar = {8.0: [150, 150, 150], 20.0: [75, 77, 76], 30.0: [76, 76, 77]}
    wide = row(grid(800, similar), "wide_temperature_band")
    assert wide.verdict == verdicts.REPRODUCED  # T = 8 (far off) is not "above 8"
    apart = {20.0: [75, 77, 76], 30.0: [120, 125, 122]}
    assert row(grid(800, apart), "wide_temperature_band").verdict == verdicts.NOT_REPRODUCED
    noisy = {20.0: [60, 90, 75], 30.0: [70, 95, 62]}
    assert row(grid(800, noisy), "wide_temperature_band").verdict == verdicts.INCONCLUSIVE
    one_seed = {20.0: [75], 30.0: [120]}
    one = row(grid(300, one_seed), "wide_temperature_band")
    assert one.verdict == verdicts.INCONCLUSIVE and "seed variation unknown" in one.reason


def test_wide_leaves_out_a_width_with_one_temperature_above_eight():
    # the paper profile: 800-unit students at T = 20 only, the claim decided at 300 units
    runs = grid(300, {20.0: [95, 97, 96], 30.0: [96, 96, 97]}) + grid(800, {20.0: [85, 86, 84]})
    wide = row(runs, "wide_temperature_band")
    assert wide.verdict == verdicts.REPRODUCED
    assert "h800: one T above 8, nothing to compare" in wide.reason
    only = row(grid(800, {20.0: [85, 86, 84]}), "wide_temperature_band")
    assert only.verdict == verdicts.INCONCLUSIVE and "fewer than 2 temperatures" in only.reason


def test_model_states_the_margin_and_the_rules():
    text = " ".join(verdicts.MODEL)
    assert f"±{verdicts.SIMILAR_MARGIN:.0%}" in text and "prediction interval" in text
    assert "paired" in text and "McNemar" in text and "informational" in text


def test_measure_keeps_seeds_for_pairing():
    m = Measure.of([(70, 10000), (76, 10000)], 10000, seeds=[3, 7])
    assert m.by_seed() == {3: 70.0, 7: 76.0} and m.mean == 73.0
    assert len(m.run_intervals) == 2 and m.run_intervals[0][0] < 70 < m.run_intervals[0][1]


def test_identical_seeds_are_not_taken_as_certainty():
    """Two seeds with the same count: the t interval collapses, but that is no evidence."""
    assert new_run_pvalue([80, 80], 74) == pytest.approx(2 / 3)
    assert new_run_pvalue([80, 80], 80) == 1.0
    decision = verdicts.count_decision(74, Measure.of([(80, 10000), (80, 10000)], 10000))
    assert decision.verdict == verdicts.INCONCLUSIVE
