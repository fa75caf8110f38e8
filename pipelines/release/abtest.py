"""The verdict of an A/B test that stays honest however often it is looked at.

Each variant's outcome per labelled prediction is a number (1/0 for a correct classification,
the absolute error for regression). The test is the mixture sequential probability ratio test
(mSPRT; Johari, Koomen, Pekelis and Walsh, "Always Valid Inference", 2017) on the difference of
the two means, with a normal mixing distribution of scale `tau` over the true difference: the
probability that it ever declares a difference when there is none stays at most `alpha`, at
every look, daily or after each label. Its always-valid confidence sequence gives the interval
of the difference, and solving the same boundary for a larger sample gives "about N more
labels" while no verdict is reached.

The guarantee is about the first time the boundary is crossed, so `looks` replays the test at
each look (e.g. the end of every day, by when each label arrived) and `decision` keeps the first
crossing: a verdict, once reached, stays the verdict however the later figures wander.

Two approximations, both measured in tests/test_abtest.py: each arm's mean is taken as normal
(so every arm needs `min_labels` first) with its variance estimated from the data, and labelled
predictions are taken as independent. With daily looks over 30 days the observed false-positive
rate stays under alpha for accuracy at 50/50 and 90/10 splits and for heavily skewed absolute
errors at 90/10; many correlated labels from the same unit (one customer labelled again and
again) would make the intervals too narrow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Arm:
    """One variant's outcomes so far: count, mean, variance."""

    name: str
    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, name: str, outcomes) -> Arm:
        values = np.asarray(outcomes, dtype=float)
        n = len(values)
        return cls(name, n, float(values.mean()) if n else float("nan"),
                   float(values.var(ddof=1)) if n > 1 else float("nan"))

    @classmethod
    def from_sums(cls, name: str, n: int, total: float, squares: float) -> Arm:
        """The arm of `n` outcomes summing to `total`, their squares to `squares`."""
        if n == 0:
            return cls(name, 0, float("nan"), float("nan"))
        mean = total / n
        variance = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else float("nan")
        return cls(name, n, mean, variance)

    @property
    def spread(self) -> float:
        """The variance the test uses: the sample variance or, while every outcome so far is the
        same (every label correct), the variance one more outcome differing by 1 would give,
        1/(n+1): a streak of correct answers is not proof of no error at all."""
        if self.variance > 0:
            return self.variance
        return 1.0 / (self.n + 1)

    def interval(self, alpha: float, tau: float) -> tuple[float, float] | None:
        """The arm's own always-valid interval of its mean (a one-sample sequence)."""
        if self.n < 2:
            return None
        half = _half_width(self.spread / self.n, tau, alpha)
        return self.mean - half, self.mean + half


@dataclass(frozen=True)
class Verdict:
    """What the test says now: `winner` (a variant's name), or None with the labels likely
    still needed."""

    a: Arm
    b: Arm
    difference: float  # mean(b) - mean(a)
    interval: tuple[float, float] | None
    likelihood_ratio: float
    alpha: float
    winner: str | None
    more_labels: int | None  # None: a winner, or no difference to chase

    @property
    def p_value(self) -> float:
        """The always-valid p-value (the current one; a running minimum is also valid)."""
        return min(1.0, 1.0 / self.likelihood_ratio) if self.likelihood_ratio > 0 else 1.0


def _variance(a: Arm, b: Arm) -> float:
    return a.spread / a.n + b.spread / b.n


def _log_ratio(difference: float, v: float, tau: float) -> float:
    """log of the mixture likelihood ratio against "no difference", with N(0, tau^2) mixing."""
    t2 = tau * tau
    return 0.5 * math.log(v / (v + t2)) + difference * difference * t2 / (2 * v * (v + t2))


def _half_width(v: float, tau: float, alpha: float) -> float:
    """Half-width of the always-valid confidence sequence at variance `v` of the estimate."""
    t2 = tau * tau
    return math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))


def verdict(a: Arm, b: Arm, *, alpha: float = 0.05, tau: float = 0.05,
            higher_is_better: bool = True, min_labels: int = 30) -> Verdict:
    """The mSPRT verdict on mean(b) - mean(a) (each arm needs `min_labels` first)."""
    if a.n < min_labels or b.n < min_labels:
        needed = max(0, min_labels - a.n) + max(0, min_labels - b.n)
        return Verdict(a, b, float("nan"), None, 0.0, alpha, None, needed or None)
    diff = b.mean - a.mean
    v = _variance(a, b)
    log_lr = _log_ratio(diff, v, tau)
    half = _half_width(v, tau, alpha)
    winner = None
    if log_lr >= math.log(1 / alpha) and diff != 0:
        winner = b.name if (diff > 0) == higher_is_better else a.name
    more = None if winner else _more_labels(a, b, diff, tau, alpha)
    return Verdict(a, b, diff, (diff - half, diff + half), math.exp(min(log_lr, 700)), alpha,
                   winner, more)


def _more_labels(a: Arm, b: Arm, diff: float, tau: float, alpha: float,
                 cap: int = 10_000_000) -> int | None:
    """Labels still needed (both arms, in their current proportion) for the boundary to be
    crossed if the observed difference were the true one; None when it is ~0 or out of reach."""
    if diff == 0:
        return None
    total = a.n + b.n
    scale = total * _variance(a, b)  # variance of the estimate is scale / total labels

    def crossed(n: float) -> bool:
        return _log_ratio(diff, scale / n, tau) >= math.log(1 / alpha)

    high = total
    while not crossed(high):
        high *= 2
        if high > cap:
            return None
    low = total
    while high - low > max(1, total // 1000):
        mid = (low + high) / 2
        low, high = (low, mid) if crossed(mid) else (mid, high)
    return int(math.ceil(high - total))


def looks(a_times, a_outcomes, b_times, b_outcomes, at, *, a_name: str = "a", b_name: str = "b",
          **options) -> list[Verdict]:
    """The verdict at each moment of `at` (ascending), from the outcomes that had arrived by
    then (`*_times`: when each outcome arrived, any comparable numbers or datetimes as numpy
    arrays). `options` are verdict()'s."""
    def arms(times, outcomes, name):
        order = np.argsort(times, kind="stable")
        times, values = np.asarray(times)[order], np.asarray(outcomes, dtype=float)[order]
        sums = np.concatenate([[0.0], np.cumsum(values)])
        squares = np.concatenate([[0.0], np.cumsum(values * values)])
        counts = np.searchsorted(times, np.asarray(at), side="right")
        return [Arm.from_sums(name, int(n), float(sums[n]), float(squares[n])) for n in counts]

    return [verdict(a, b, **options) for a, b in zip(arms(a_times, a_outcomes, a_name),
                                                     arms(b_times, b_outcomes, b_name))]


def decision(history: list[Verdict]) -> Verdict | None:
    """The first look of `history` (oldest first) at which the boundary was crossed: the
    verdict of the test, to keep once reached (None: not reached yet)."""
    return next((v for v in history if v.winner), None)
