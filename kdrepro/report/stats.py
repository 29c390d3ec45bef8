"""Statistics of section 3's error counts, with the training seed as the unit of replication.

The paper (section 3) reports one run per setting, each scored on the same 10,000 MNIST
test images. What varies between its run and ours is the training run (initialisation,
batch order), not the test images, so our runs are compared through their seed-to-seed
distribution: a t prediction interval for one new run, and paired t-tests between
settings trained from the same seeds (docs/statistics.md). The exact binomial tools
(Clopper-Pearson, McNemar) describe one run on the fixed test images and are labelled so.
All distributions come from :mod:`scipy.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy import stats as sps

CONFIDENCE = 0.95


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion, k successes of n.

    Describes test-image sampling of one run only; it says nothing about seed variation."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    interval = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


def mcnemar_exact(only_a_wrong: int, only_b_wrong: int) -> float:
    """Two-sided exact McNemar p-value of one pair of runs scored on the same images.

    Under the null each discordant image is equally likely to go either way (binomial, 1/2).
    """
    discordant = only_a_wrong + only_b_wrong
    if discordant == 0:
        return 1.0
    return float(sps.binomtest(only_a_wrong, discordant, 0.5).pvalue)


def discordant_counts(wrong_a: Iterable[int], wrong_b: Iterable[int]) -> tuple[int, int]:
    """(images only A gets wrong, images only B gets wrong) on the same test set."""
    set_a, set_b = set(wrong_a), set(wrong_b)
    return len(set_a - set_b), len(set_b - set_a)


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (sd is None for fewer than two values)."""
    if not values:
        return None, None
    if min(values) == max(values):  # identical seeds: exact, without summation noise
        return float(values[0]), (0.0 if len(values) > 1 else None)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def prediction_interval(values: Sequence[float],
                        confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """t prediction interval for one new run: mean ± t(n-1) · sd · sqrt(1 + 1/n).

    None for fewer than two seeds: one run cannot estimate seed variation."""
    n = len(values)
    if n < 2:
        return None
    mean, sd = mean_sd(values)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def _t_pvalue(estimate: float, scale: float, df: int, alternative: str) -> float:
    """p of a t statistic estimate/scale over df + 1 seeds.

    A zero scale (every seed gave the same value) leaves the t-test undefined, and
    with integer error counts and few seeds it happens by chance, so it is not taken
    as certainty: p is then that of the exact sign-flip test of those identical
    values, 0.5^n one-sided (2 * 0.5^n two-sided) in the claimed direction, else 1.
    With 2 seeds that is 0.5: never significant.
    """
    if scale == 0:
        n = df + 1
        holds = {"two-sided": estimate != 0, "less": estimate < 0, "greater": estimate > 0}
        if not holds[alternative]:
            return 1.0
        return min(1.0, (2.0 if alternative == "two-sided" else 1.0) * 0.5**n)
    t = estimate / scale
    if alternative == "two-sided":
        return float(2 * sps.t.sf(abs(t), df))
    return float(sps.t.cdf(t, df) if alternative == "less" else sps.t.sf(t, df))


def new_run_pvalue(values: Sequence[float], value: float) -> float | None:
    """Two-sided p that one new run lands as far from our mean as ``value`` (n >= 2).

    It is below 0.05 exactly when ``value`` lies outside the 95% prediction interval."""
    n = len(values)
    if n < 2:
        return None
    mean, sd = mean_sd(values)
    if sd == 0:  # n identical runs: the new run is the most extreme of n + 1 exchangeable runs
        return 1.0 if value == mean else min(1.0, 2 / (n + 1))
    return _t_pvalue(value - mean, sd * math.sqrt(1 + 1 / n), n - 1, "two-sided")


@dataclass(frozen=True)
class PairedTest:
    """A seed-paired comparison of settings A and B (differences A - B, lower is better)."""

    n: int
    mean_diff: float
    sd_diff: float | None
    pvalue: float | None  # two-sided paired t-test; None for fewer than two pairs

    def a_better(self, alpha: float = 1 - CONFIDENCE) -> bool:
        """A makes significantly fewer errors than B."""
        return self.pvalue is not None and self.pvalue < alpha and self.mean_diff < 0


def paired_t(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test (as scipy.stats.ttest_rel) of runs paired by seed, a[i] with b[i]."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean, sd = mean_sd(diffs)
    if len(diffs) < 2:
        return PairedTest(len(diffs), mean if mean is not None else math.nan, None, None)
    if sd > 0:
        p = float(sps.ttest_rel(a, b).pvalue)
    else:
        p = _t_pvalue(mean, 0.0, len(diffs) - 1, "two-sided")
    return PairedTest(len(diffs), mean, sd, p)


def equivalence_pvalue(diffs: Sequence[float], margin: float) -> float | None:
    """Paired TOST: p for |mean difference| < margin (the larger of the two one-sided p)."""
    n = len(diffs)
    if n < 2:
        return None
    mean, sd = mean_sd(diffs)
    scale = sd / math.sqrt(n)
    return max(_t_pvalue(mean + margin, scale, n - 1, "greater"),
               _t_pvalue(mean - margin, scale, n - 1, "less"))


def beyond_margin_pvalue(diffs: Sequence[float], margin: float) -> float | None:
    """One-sided p for mean difference > margin (a setting worse by more than the margin)."""
    n = len(diffs)
    if n < 2:
        return None
    mean, sd = mean_sd(diffs)
    return _t_pvalue(mean - margin, sd / math.sqrt(n), n - 1, "greater")


@dataclass
class Measure:
    """One setting's runs on the paper's scale: a value per seed, their mean ± sd, the 95%
    prediction interval for one new run, and each run's Clopper-Pearson test-image interval."""

    values: list[float]
    seeds: list
    scale: float
    mean: float | None = None
    sd: float | None = None
    interval: tuple[float, float] | None = None
    run_intervals: list[tuple[float, float]] | None = None

    @classmethod
    def of(cls, pairs: list[tuple[int, int]], scale: float, seeds: list | None = None) -> Measure:
        """From (errors, total) pairs, one per seed (``seeds`` names them, default 1..n)."""
        seeds = list(seeds) if seeds is not None else list(range(1, len(pairs) + 1))
        kept = [(e, t, s) for (e, t), s in zip(pairs, seeds) if t]
        values = [round(e * scale / t, 9) for e, t, _ in kept]  # 4730/10000*100 is 47.3
        mean, sd = mean_sd(values)
        runs = [tuple(b * scale for b in clopper_pearson(int(e), int(t))) for e, t, _ in kept]
        interval = prediction_interval(values)
        if interval is not None:  # a count is never negative: the interval stops at 0
            interval = (max(0.0, interval[0]), interval[1])
        return cls(values, [s for *_, s in kept], scale, mean, sd, interval, runs)

    @property
    def n(self) -> int:
        return len(self.values)

    def by_seed(self) -> dict:
        """Seed -> value, for pairing with another setting trained from the same seeds."""
        return dict(zip(self.seeds, self.values))


def paired_by_seed(a: Measure, b: Measure) -> PairedTest:
    """Paired t-test of two settings over the seeds both have (A - B)."""
    a_seeds, b_seeds = a.by_seed(), b.by_seed()
    common = [s for s in a_seeds if s in b_seeds]
    return paired_t([a_seeds[s] for s in common], [b_seeds[s] for s in common])
