"""Exact test-image statistics (scipy), the count verdict rule, and the claim ledger (section 3).

The seed-level rules with synthetic run records are in tests/test_verdicts.py.
"""

from __future__ import annotations

import pytest
from fake_results import write_fake_results

from kdrepro.report import claims, verdicts
from kdrepro.report.collect import load_runs
from kdrepro.report.stats import (
    Measure,
    clopper_pearson,
    discordant_counts,
    mcnemar_exact,
    mean_sd,
)


@pytest.mark.parametrize("k,n,expected", [
    (5, 10, (0.1870860284, 0.8129139716)),  # R: binom.test(5, 10)$conf.int
    (0, 10, (0.0, 1 - 0.025 ** 0.1)),  # closed form at k = 0
    (10, 10, (0.025 ** 0.1, 1.0)),  # closed form at k = n
    (1, 1, (0.025, 1.0)),
])
def test_clopper_pearson_golden_values(k, n, expected):
    low, high = clopper_pearson(k, n)
    assert low == pytest.approx(expected[0], abs=1e-9)
    assert high == pytest.approx(expected[1], abs=1e-9)


@pytest.mark.parametrize("k,n", [(67, 10000), (146, 10000), (133, 1010), (4730, 10000)])
def test_clopper_pearson_bounds_solve_the_tail_equations(k, n):
    from scipy.stats import binom

    low, high = clopper_pearson(k, n)
    assert low < k / n < high
    assert binom.sf(k - 1, n, low) == pytest.approx(0.025, abs=1e-9)
    assert binom.cdf(k, n, high) == pytest.approx(0.025, abs=1e-9)


def test_clopper_pearson_rejects_bad_counts():
    with pytest.raises(ValueError):
        clopper_pearson(11, 10)


@pytest.mark.parametrize("b,c,expected", [(1, 9, 22 / 1024), (9, 1, 22 / 1024),
                                          (0, 5, 2 / 32), (3, 12, 2 * 576 / 32768),
                                          (5, 5, 1.0), (0, 0, 1.0)])
def test_mcnemar_exact_golden_values(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_discordant_counts_and_mean_sd():
    assert discordant_counts([1, 2, 3], [3, 4]) == (2, 1)
    assert mean_sd([]) == (None, None)
    assert mean_sd([4.0]) == (4.0, None)
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert mean_sd([47.3, 47.3, 47.3]) == (47.3, 0.0)  # identical seeds: no summation noise


def test_measure_has_a_value_per_seed_and_a_prediction_interval():
    m = Measure.of([(70, 10000), (76, 10000)], 10000)
    assert (m.mean, m.n, m.values) == (73.0, 2, [70.0, 76.0])
    assert m.interval[0] < 70 and m.interval[1] > 76  # wider than the seeds: one new run
    low, high = clopper_pearson(70, 10000)
    assert m.run_intervals[0] == pytest.approx((low * 10000, high * 10000))


@pytest.mark.parametrize("pairs,paper,verdict", [
    ([], 67, verdicts.PENDING),
    ([(60, 10000)], 67, verdicts.REPRODUCED),  # one seed at or below the paper
    ([(150, 10000)], 67, verdicts.INCONCLUSIVE),  # one seed far above: variation unknown
    ([(60, 10000), (64, 10000)], 67, verdicts.REPRODUCED),  # mean at or below
    ([(66, 10000), (70, 10000), (74, 10000)], 67, verdicts.REPRODUCED),  # inside the PI
    ([(150, 10000), (160, 10000)], 67, verdicts.INCONCLUSIVE),  # 2 seeds: PI [45, 265]
    ([(150, 10000), (152, 10000)], 67, verdicts.NOT_REPRODUCED),  # PI entirely above
])
def test_count_decision_rule(pairs, paper, verdict):
    measure = Measure.of(pairs, 10000) if pairs else None
    assert verdicts.count_decision(paper, measure).verdict == verdict


@pytest.fixture(scope="module")
def full_ledger(tmp_path_factory):
    return claims.ledger(load_runs(write_fake_results(tmp_path_factory.mktemp("full"))))


def test_ledger_has_every_claim_in_order(full_ledger):
    ids = [row.id for row in full_ledger]
    assert ids[:6] == ["teacher_errors", "baseline_errors", "distilled_errors",
                       "distilled_vs_baseline", "wide_temperature_band",
                       "narrow_temperature_best"]
    assert ids.count("omit3_shifted_errors") == 3 and ids.count("keep78_shifted_error_pct") == 3
    assert len(full_ledger) == 18
    assert all(row.verdict != verdicts.PENDING for row in full_ledger)


def test_ledger_values_come_from_paper_yaml_and_results(full_ledger):
    by_id = {row.id: row for row in full_ledger}
    assert (by_id["teacher_errors"].paper, by_id["teacher_errors"].blog) == (67, 119)
    assert (by_id["distilled_errors"].paper, by_id["distilled_errors"].blog) == (74, 125)
    assert by_id["teacher_errors"].measure.mean == 70.0  # fake seeds: 67, 70, 73
    assert by_id["keep78_error_pct"].paper == 47.3
    compared = by_id["distilled_vs_baseline"]
    # the fake seeds' differences are identical: the exact sign-flip p of 3 pairs is 0.25, so
    # three seeds cannot make it significant however large the gap
    assert compared.pvalue == pytest.approx(0.25) and compared.verdict == verdicts.INCONCLUSIVE
    assert [t["seed"] for t in compared.extra["mcnemar"]] == [1, 2, 3]  # one test per pair
    assert "McNemar" in compared.detail and "seed 2:" in compared.detail


def test_shifted_rows_name_their_protocol_and_say_test_tuned(full_ledger):
    shifted = [r for r in full_ledger if r.id == "omit3_shifted_errors"]
    assert [r.protocol_id for r in shifted] == ["paper", "test_tuned", "validation"]
    assert "test set" in shifted[1].protocol and "the paper's protocol" in shifted[1].protocol
    assert shifted[0].detail == "shift +3.5, +3.5, +3.5"


def test_partial_results_are_pending_never_invented(tmp_path):
    rows = claims.ledger(load_runs(write_fake_results(tmp_path, partial=True)))
    by_id = {}
    for row in rows:
        by_id.setdefault(row.id, row)
    assert by_id["teacher_errors"].verdict == verdicts.REPRODUCED  # one seed, 67 errors
    assert "1 seed: seed variation unknown" in by_id["teacher_errors"].reason
    for key in ("omit3_errors", "omit3_shifted_errors", "keep78_error_pct",
                "narrow_temperature_best"):
        assert by_id[key].verdict == verdicts.PENDING and by_id[key].measure is None


def test_empty_results_are_all_pending(tmp_path):
    assert {row.verdict for row in claims.ledger(load_runs(tmp_path))} == {verdicts.PENDING}


def test_every_published_value_has_a_source_and_quote():
    facts = claims.paper_facts()
    for key, fact in facts["values"].items():
        assert fact["source"].startswith("Section 3"), key
        assert fact["quote"].strip(), key
    assert {a["tag"] for a in facts["assumptions"]} <= set(facts["assumption_tags"])


def test_target_bounds_our_mean_only_for_its_protocols():
    from kdrepro.report.claims import target_check

    near = Measure.of([(76, 10000)], 10000)  # inside the paper's interval, above the target
    assert target_check({"max": 70}, "", near) == (70.0, False)
    assert target_check({"max": 80}, "", near) == (80.0, True)
    assert target_check({"max": 120, "protocols": ["test_tuned"]}, "paper", near) == (None, None)
    assert target_check({"max": 120, "protocols": ["test_tuned"]}, "test_tuned", near)[1] is True
    assert target_check({"max": 70}, "", None) == (70.0, None)
    assert target_check(None, "", near) == (None, None)
    band = {"min": 131.4, "max": 160.6}  # the hard-label student's 146 ± 10%
    assert target_check(band, "", near)[1] is False  # below the band is a miss too
    assert target_check(band, "", Measure.of([(150, 10000)], 10000)) == (160.6, True)


def test_a_missed_target_is_named_in_the_verdict_reason():
    from kdrepro.report.claims import count_row

    seeds = [(66, 10000), (76, 10000), (74, 10000)]  # the paper's 67 inside the PI
    row = count_row("teacher_errors", "Teacher", "errors", Measure.of(seeds, 10000))
    assert row.verdict == "reproduced" and row.target_met is False
    assert row.reason.endswith("; the target (mean ≤ 67) is missed")
    band = count_row("baseline_errors", "Baseline", "errors", Measure.of([(128, 10000)] * 2, 10000))
    assert band.reason.endswith("; the target (131.4 ≤ mean ≤ 160.6) is missed")
    met = count_row("teacher_errors", "Teacher", "errors", Measure.of([(65, 10000)], 10000))
    assert "target" not in met.reason
