"""Exact binomial statistics for test-error counts (no SciPy).

The paper (section 3) reports single error counts on the 10,000 MNIST test images. We
compare against them with a Clopper-Pearson interval for the error rate and, for two
networks scored on the same images, an exact McNemar test. Binomial tails are summed
term by term from ``math.lgamma``; the interval is found by bisection on those sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TAIL_TOLERANCE = 1e-17
_BISECTION_STEPS = 200


def binom_pmf(k: int, n: int, p: float) -> float:
    """P(X = k) for X ~ Binomial(n, p)."""
    if k < 0 or k > n:
        return 0.0
    if p <= 0.0 or p >= 1.0:
        return float(k == (0 if p <= 0.0 else n))
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return math.exp(log_choose + k * math.log(p) + (n - k) * math.log1p(-p))


def _monotone_tail(start: int, stop: int, step: int, n: int, p: float) -> float:
    """Sum pmf(i) for i from start towards stop (inclusive), moving away from the mode.

    Terms shrink monotonically away from the mode, so the sum stops once a term no
    longer changes it.
    """
    term = binom_pmf(start, n, p)
    total, i = term, start
    ratio_up = p / (1.0 - p)
    while i != stop and term > _TAIL_TOLERANCE * total:
        if step > 0:  # pmf(i+1) = pmf(i) * (n-i)/(i+1) * p/(1-p)
            term *= (n - i) / (i + 1) * ratio_up
        else:  # pmf(i-1) = pmf(i) * i/(n-i+1) * (1-p)/p
            term *= i / (n - i + 1) / ratio_up
        i += step
        total += term
    return total


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summing whichever tail lies away from the mode."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    mode = math.floor((n + 1) * p)
    if k <= mode:
        return min(1.0, _monotone_tail(k, 0, -1, n, p))
    return max(0.0, 1.0 - _monotone_tail(k + 1, n, 1, n, p))


def _bisect(decreasing, target: float) -> float:
    """The p in [0, 1] where the decreasing function ``decreasing(p)`` crosses ``target``."""
    low, high = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2
        if decreasing(mid) > target:
            low = mid
        else:
            high = mid
        if high - low < 1e-15:
            break
    return (low + high) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion with k successes of n.

    lower solves P(X >= k | p) = alpha/2 and upper solves P(X <= k | p) = alpha/2.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    alpha = 1.0 - confidence
    # P(X >= k | p) increases with p, so 1 - P(X >= k) = cdf(k-1) decreases with p.
    lower = 0.0 if k == 0 else _bisect(lambda p: binom_cdf(k - 1, n, p), 1 - alpha / 2)
    upper = 1.0 if k == n else _bisect(lambda p: binom_cdf(k, n, p), alpha / 2)
    return lower, upper


def mcnemar_exact(only_a_wrong: int, only_b_wrong: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts.

    Under the null each discordant image is equally likely to go either way, so the
    smaller count is Binomial(b + c, 1/2); the p-value doubles its lower tail (capped at 1).
    """
    discordant = only_a_wrong + only_b_wrong
    if discordant == 0:
        return 1.0
    tail = binom_cdf(min(only_a_wrong, only_b_wrong), discordant, 0.5)
    return min(1.0, 2.0 * tail)


def discordant_counts(wrong_a: Iterable[int], wrong_b: Iterable[int]) -> tuple[int, int]:
    """(images only A gets wrong, images only B gets wrong) on the same test set."""
    set_a, set_b = set(wrong_a), set(wrong_b)
    return len(set_a - set_b), len(set_b - set_a)


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (sd is None for fewer than two values)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


@dataclass
class Measure:
    """Per-seed values on the paper's scale plus the pooled Clopper-Pearson interval."""

    values: list[float]
    errors: int
    total: int
    scale: float
    mean: float | None = None
    sd: float | None = None
    ci: tuple[float, float] | None = None

    @classmethod
    def of(cls, pairs: list[tuple[int, int]], scale: float) -> Measure:
        """From (errors, total) pairs, one per seed."""
        pairs = [(e, t) for e, t in pairs if t]
        values = [e * scale / t for e, t in pairs]
        errors, total = sum(e for e, _ in pairs), sum(t for _, t in pairs)
        mean, sd = mean_sd(values)
        ci = None
        if total:
            low, high = clopper_pearson(errors, total)
            ci = (low * scale, high * scale)
        return cls(values, errors, total, scale, mean, sd, ci)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def rate(self) -> float:
        return self.errors * self.scale / self.total
