"""Exact statistics, the verdict rule, and the claim ledger (paper section 3)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from fake_results import write_fake_results

from kdrepro.report import claims
from kdrepro.report.collect import load_runs
from kdrepro.report.stats import (
    Measure,
    binom_cdf,
    clopper_pearson,
    discordant_counts,
    mcnemar_exact,
    mean_sd,
)


def exact_cdf(k: int, n: int, p: float) -> float:
    q = Fraction(p)
    return float(sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1)))


@pytest.mark.parametrize("k,n,p", [(3, 10, 0.3), (30, 50, 0.4), (10, 200, 0.1),
                                   (150, 200, 0.6), (5, 1000, 0.01), (29, 30, 0.5),
                                   (0, 20, 0.2), (19, 20, 0.9)])
def test_binom_cdf_matches_exact_sum(k, n, p):
    assert binom_cdf(k, n, p) == pytest.approx(exact_cdf(k, n, p), rel=1e-9, abs=1e-15)


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
    low, high = clopper_pearson(k, n)
    assert low < k / n < high
    assert 1 - binom_cdf(k - 1, n, low) == pytest.approx(0.025, abs=1e-9)
    assert binom_cdf(k, n, high) == pytest.approx(0.025, abs=1e-9)


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
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_measure_pools_seeds_and_scales_to_the_paper():
    m = Measure.of([(70, 10000), (76, 10000)], 10000)
    assert (m.mean, m.n, m.errors, m.total) == (73.0, 2, 146, 20000)
    low, high = clopper_pearson(146, 20000)
    assert m.ci == pytest.approx((low * 10000, high * 10000))


@pytest.mark.parametrize("pairs,paper,verdict", [
    ([], 67, claims.PENDING),
    ([(60, 10000)], 67, claims.REPRODUCED),  # one seed can agree with the paper
    ([(150, 10000)], 67, claims.NOT_REPRODUCED),  # one seed far above the paper refutes it
    ([(60, 10000), (64, 10000)], 67, claims.REPRODUCED),  # mean at or below
    ([(70, 10000), (76, 10000)], 67, claims.REPRODUCED),  # paper inside the CI
    ([(150, 10000), (160, 10000)], 67, claims.NOT_REPRODUCED),  # CI entirely above
])
def test_count_verdict_rule(pairs, paper, verdict):
    measure = Measure.of(pairs, 10000) if pairs else None
    assert claims.count_verdict(paper, measure)[0] == verdict


def _grid(cells: dict) -> dict:
    return {w: {t: Measure.of([(e, 10000)] * seeds, 10000) for t, (e, seeds) in temps.items()}
            for w, temps in cells.items()}


def test_wide_temperature_band_verdicts():
    similar = _grid({800: {8: (75, 3), 20: (78, 3)}, 300: {8: (85, 3), 20: (84, 3)}})
    row = claims.wide_temperature_row(similar)
    assert row.verdict == claims.REPRODUCED and row.extra["band"] == 3.0
    apart = _grid({800: {8: (75, 3), 20: (140, 3)}})
    assert claims.wide_temperature_row(apart).verdict == claims.NOT_REPRODUCED
    one_temperature = _grid({800: {20: (75, 3)}})
    assert claims.wide_temperature_row(one_temperature).verdict == claims.INCONCLUSIVE
    one_seed_apart = _grid({800: {8: (75, 1), 20: (140, 1)}})
    assert claims.wide_temperature_row(one_seed_apart).verdict == claims.INCONCLUSIVE
    assert claims.wide_temperature_row(_grid({30: {8: (200, 3)}})).verdict == claims.PENDING


def test_narrow_temperature_verdicts():
    best_in_range = _grid({30: {1: (300, 3), 3: (200, 3), 8: (260, 3)}})
    row = claims.narrow_temperature_row(best_in_range)
    assert row.verdict == claims.REPRODUCED and row.extra["best_temperature"] == 3
    best_outside = _grid({30: {1: (300, 3), 3: (220, 3), 8: (200, 3)}})
    assert claims.narrow_temperature_row(best_outside).verdict == claims.NOT_REPRODUCED
    one_seed = _grid({30: {1: (300, 1), 3: (220, 1), 8: (200, 1)}})
    assert claims.narrow_temperature_row(one_seed).verdict == claims.INCONCLUSIVE
    close = _grid({30: {2: (202, 3), 3: (200, 3)}})
    assert claims.narrow_temperature_row(close).verdict == claims.INCONCLUSIVE
    assert claims.narrow_temperature_row({}).verdict == claims.PENDING


@pytest.fixture(scope="module")
def full_ledger(tmp_path_factory):
    return claims.ledger(load_runs(write_fake_results(tmp_path_factory.mktemp("full"))))


def test_ledger_has_every_claim_in_order(full_ledger):
    ids = [row.id for row in full_ledger]
    assert ids[:5] == ["teacher_errors", "baseline_errors", "distilled_errors",
                       "wide_temperature_band", "narrow_temperature_best"]
    assert ids.count("omit3_shifted_errors") == 3 and ids.count("keep78_shifted_error_pct") == 3
    assert len(full_ledger) == 17
    assert all(row.verdict != claims.PENDING for row in full_ledger)


def test_ledger_values_come_from_paper_yaml_and_results(full_ledger):
    by_id = {row.id: row for row in full_ledger}
    assert (by_id["teacher_errors"].paper, by_id["teacher_errors"].blog) == (67, 119)
    assert (by_id["distilled_errors"].paper, by_id["distilled_errors"].blog) == (74, 125)
    assert by_id["teacher_errors"].measure.mean == 70.0  # fake seeds: 67, 70, 73
    assert by_id["keep78_error_pct"].paper == 47.3
    assert by_id["distilled_errors"].pvalue < 1e-6
    assert "McNemar" in by_id["distilled_errors"].detail


def test_shifted_rows_name_their_protocol_and_say_test_tuned(full_ledger):
    shifted = [r for r in full_ledger if r.id == "omit3_shifted_errors"]
    assert [r.protocol_id for r in shifted] == ["paper", "test_tuned", "validation"]
    assert "test-tuned" in shifted[1].protocol and "test set" in shifted[1].protocol
    assert shifted[0].detail == "shift +3.5, +3.5, +3.5"


def test_partial_results_are_pending_never_invented(tmp_path):
    rows = claims.ledger(load_runs(write_fake_results(tmp_path, partial=True)))
    by_id = {}
    for row in rows:
        by_id.setdefault(row.id, row)
    assert by_id["teacher_errors"].verdict == claims.REPRODUCED  # one seed, 67 errors
    for key in ("omit3_errors", "omit3_shifted_errors", "keep78_error_pct",
                "narrow_temperature_best"):
        assert by_id[key].verdict == claims.PENDING and by_id[key].measure is None


def test_empty_results_are_all_pending(tmp_path):
    assert {row.verdict for row in claims.ledger(load_runs(tmp_path))} == {claims.PENDING}


def test_every_published_value_has_a_source_and_quote():
    facts = claims.paper_facts()
    for key, fact in facts["values"].items():
        assert fact["source"].startswith("Section 3"), key
        assert fact["quote"].strip(), key
    assert {a["tag"] for a in facts["assumptions"]} <= set(facts["assumption_tags"])


def test_target_bounds_our_mean_only_for_its_protocols():
    from kdrepro.report.claims import target_check
    from kdrepro.report.stats import Measure

    near = Measure.of([(76, 10000)], 10000)  # inside the paper's interval, above the target
    assert target_check({"max": 70}, "", near) == (70.0, False)
    assert target_check({"max": 80}, "", near) == (80.0, True)
    assert target_check({"max": 120, "protocols": ["test_tuned"]}, "paper", near) == (None, None)
    assert target_check({"max": 120, "protocols": ["test_tuned"]}, "test_tuned", near)[1] is True
    assert target_check({"max": 70}, "", None) == (70.0, None)
    assert target_check(None, "", near) == (None, None)


def test_a_missed_target_is_named_in_the_verdict_reason():
    from kdrepro.report.claims import _fact_row
    from kdrepro.report.stats import Measure

    row = _fact_row("teacher_errors", "Teacher", "errors", Measure.of([(76, 10000)], 10000))
    assert row.verdict == "reproduced" and row.target_met is False
    assert row.reason.endswith("but the target (mean ≤ 70) is missed")
    met = _fact_row("teacher_errors", "Teacher", "errors", Measure.of([(65, 10000)], 10000))
    assert "target" not in met.reason
