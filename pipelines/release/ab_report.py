"""`mlops ab-report ENV --model NAME`: where the A/B test pinned in an environment stands, from
the feedback in the prediction log.

Per variant: the outcome metric (accuracy for a classifier, mean absolute error for regression)
over its labelled predictions since the test started, with its always-valid 95% interval; the
difference b - a with its interval; and the verdict of the mixture sequential probability ratio
test (pipelines/release/abtest.py): a winner, or "no difference yet" with about how many more
labels the observed difference needs and how long that takes at the current labelling rate (from
when the labels arrived). The test is replayed at the end of every day since the start, by when
each label arrived, so a verdict once reached stays reached: looking every day, or every hour,
is what the test is built for.

Only predictions of the pinned versions under their variant count (`a` answered by the pinned
model's version, `b` by the challenger's), made since the challenger was pinned
(`ab.b.promoted.at`). The predictions each variant answered are compared with the split as a
check of the routing and logging (a sample-ratio mismatch).
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from contracts.pin import Pin
from pipelines.errors import CommandError
from pipelines.gitops import git as gitops
from pipelines.gitops import pins
from pipelines.release import abtest

ALPHA = 0.05
# The mixing scale of the test: the size of difference it is tuned to find fastest (any value
# keeps the error rate; a fitting one reaches a verdict sooner). Accuracy: 5 points. Regression:
# a tenth of variant a's test MAE as pinned, fixed before the test saw any label.
TAU_ACCURACY = 0.05
TAU_MAE_SHARE = 0.1
MIN_LABELS = 30
RATE_WINDOW = timedelta(days=7)
# A sample-ratio mismatch this unlikely under the pinned split means routing or logging is broken.
SRM_P = 0.001


@dataclass(frozen=True)
class VariantFigures:
    """One variant's figures in the report."""

    name: str
    version: int
    share: int  # percent of the units, as pinned
    predictions: int
    labels: int
    value: float | None  # accuracy or MAE over its labels
    interval: tuple[float, float] | None  # always-valid, at 1 - alpha


@dataclass
class ABReport:
    """The state of one A/B test."""

    environment: str
    model: str
    pin: Pin
    metric: str  # "accuracy" | "mae"
    since: datetime
    now: datetime
    alpha: float
    tau: float
    a: VariantFigures
    b: VariantFigures
    current: abtest.Verdict  # on every label so far
    decided: abtest.Verdict | None  # the first look that crossed the boundary
    decided_at: datetime | None
    labels_per_day: float | None
    srm_p: float | None  # p-value of the observed split of predictions against the pinned one
    ignored: int  # predictions since the start by another variant or version

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    @property
    def verdict(self) -> abtest.Verdict:
        """The test's verdict: the first crossing if there was one, else the current figures."""
        return self.decided or self.current

    @property
    def winner(self) -> str | None:
        """`a`, `b`, or None while there is no verdict."""
        return self.decided.winner if self.decided else None

    @property
    def days_needed(self) -> float | None:
        """Days until `more_labels` arrive at the current rate."""
        more = self.current.more_labels
        if more is None or not self.labels_per_day:
            return None
        return more / self.labels_per_day

    @property
    def srm(self) -> bool:
        """Whether the observed split of predictions contradicts the pinned one."""
        return self.srm_p is not None and self.srm_p < SRM_P

    def outcome(self) -> str:
        """The verdict in one sentence."""
        if self.winner:
            v = self.decided
            figures = self.a if self.winner == "a" else self.b
            when = self.decided_at.strftime("%Y-%m-%d") if self.decided_at else "?"
            return (f"{self.winner} (v{figures.version}) wins: always-valid p = "
                    f"{v.p_value:.4f} < {self.alpha:g}, boundary crossed by {when} at "
                    f"{v.a.n + v.b.n:,} labels")
        more = self.current.more_labels
        if more is None:
            return ("no difference yet, and none in sight: the observed difference is too small "
                    "to tell apart at any reasonable number of labels")
        rate = (f" (~{self.days_needed:.1f} days at {self.labels_per_day:,.0f} labels/day)"
                if self.days_needed is not None else " (no labels arrived in the last 7 days)")
        if self.current.a.n < MIN_LABELS or self.current.b.n < MIN_LABELS:
            return (f"no verdict yet: each variant needs {MIN_LABELS} labels first, about "
                    f"{more:,} more labels at the current rate{rate}")
        return f"no difference yet: about {more:,} more labels at the current rate{rate}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (`--json`)."""
        v = self.verdict
        return {
            "environment": self.environment, "model": self.model, "metric": self.metric,
            "higher_is_better": self.higher_is_better, "since": self.since.isoformat(),
            "now": self.now.isoformat(),
            "test": {"name": "mSPRT", "alpha": self.alpha, "tau": self.tau},
            "variants": {f.name: {"version": f.version, "share": f.share,
                                  "predictions": f.predictions, "labels": f.labels,
                                  "value": f.value, "interval": f.interval}
                         for f in (self.a, self.b)},
            "difference": None if math.isnan(v.difference) else v.difference,
            "difference_interval": v.interval,
            "p_value": v.p_value,
            "winner": self.winner,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "more_labels": None if self.winner else self.current.more_labels,
            "labels_per_day": self.labels_per_day,
            "days_needed": None if self.winner else self.days_needed,
            "sample_ratio_mismatch": self.srm, "srm_p": self.srm_p,
            "ignored_predictions": self.ignored,
            "verdict": self.outcome(),
        }


def _outcome_metric(rows: list[dict], pin: Pin) -> str:
    if any(r["abs_error"] is not None for r in rows):
        return "mae"
    if any(r["correct"] is not None for r in rows):
        return "accuracy"
    return "mae" if "mae" in pin.metrics else "accuracy"


def _tau(metric: str, pin: Pin, tau: float | None) -> float:
    if tau is not None:
        if not tau > 0:
            raise CommandError(f"--tau must be positive, got {tau}")
        return tau
    if metric == "accuracy":
        return TAU_ACCURACY
    mae = pin.metrics.get("mae")
    if not mae or not mae > 0:
        raise CommandError(f"{pin.model.name} v{pin.model.version}'s pin records no test MAE to "
                           "scale the test by: give --tau, the smallest change of MAE worth "
                           "finding")
    return TAU_MAE_SHARE * mae


def _figures(name: str, version: int, share: int, predictions: int, values: np.ndarray,
             alpha: float, tau: float) -> VariantFigures:
    arm = abtest.Arm.of(name, values)
    return VariantFigures(name, version, share, predictions, arm.n,
                          None if arm.n == 0 else arm.mean,
                          arm.interval(alpha, tau) if arm.n >= MIN_LABELS else None)


def _srm_p(counts: tuple[int, int], split: dict[str, int]) -> float | None:
    from scipy.stats import chisquare

    total = sum(counts)
    if total < 100:
        return None
    expected = [total * split["a"] / 100, total * split["b"] / 100]
    return float(chisquare(list(counts), f_exp=expected).pvalue)


def _day_ends(since: datetime, now: datetime) -> list[datetime]:
    """Midnight UTC after `since`, every day up to `now`, then `now` itself."""
    first = (since.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                                microsecond=0)
    ends = []
    while first < now:
        ends.append(first)
        first += timedelta(days=1)
    return ends + [now]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def compute(pin: Pin, outcomes: list[dict], counts: dict[tuple[str | None, int], int], *,
            now: datetime | None = None, alpha: float = ALPHA,
            tau: float | None = None) -> ABReport:
    """The report of `pin`'s A/B test from the prediction log's `outcomes`
    (PredictionLog.outcomes since the start) and prediction `counts` (variant_counts)."""
    if not pin.is_ab:
        raise CommandError(f"{pins.relpath(pin.environment, pin.model.name if pin.model else '?')}"
                           f" runs no A/B test ({pins.label(pin)})")
    now = _utc(now or datetime.now(UTC))
    since = _utc(pin.ab.b.promoted.at)
    versions = {"a": pin.model.version, "b": pin.ab.b.model.version}
    rows = {k: [r for r in outcomes if r["variant"] == k and r["version"] == v]
            for k, v in versions.items()}
    metric = _outcome_metric(rows["a"] + rows["b"], pin)
    key = "abs_error" if metric == "mae" else "correct"
    tau = _tau(metric, pin, tau)

    def arrays(k: str) -> tuple[np.ndarray, np.ndarray]:
        kept = [r for r in rows[k] if r[key] is not None]
        times = np.array([_utc(r["received_at"]).timestamp() for r in kept], dtype=float)
        return times, np.array([float(r[key]) for r in kept], dtype=float)

    (ta, va), (tb, vb) = arrays("a"), arrays("b")
    options = {"alpha": alpha, "tau": tau, "higher_is_better": metric == "accuracy",
               "min_labels": MIN_LABELS}
    ends = _day_ends(since, now)
    history = abtest.looks(ta, va, tb, vb, [e.timestamp() for e in ends], **options)
    first = next((i for i, v in enumerate(history) if v.winner), None)
    decided = history[first] if first is not None else None
    decided_at = ends[first] if first is not None else None
    current = history[-1]
    arrived = np.concatenate([ta, tb])
    labels_per_day = None
    if len(arrived):
        window = min(RATE_WINDOW, now - datetime.fromtimestamp(arrived.min(), UTC))
        window = max(window, timedelta(hours=1))
        recent = int((arrived >= (now - window).timestamp()).sum())
        labels_per_day = recent / (window / timedelta(days=1))
    predicted = {k: counts.get((k, v), 0) for k, v in versions.items()}
    ignored = sum(counts.values()) - sum(predicted.values())
    split = pin.ab.split
    return ABReport(
        pin.environment, pin.model.name, pin, metric, since, now, alpha, tau,
        _figures("a", versions["a"], split["a"], predicted["a"], va, alpha, tau),
        _figures("b", versions["b"], split["b"], predicted["b"], vb, alpha, tau),
        current, decided, decided_at, labels_per_day,
        _srm_p((predicted["a"], predicted["b"]), split), ignored)


def report(repo: Path, env: str, model: str | None, *, database: str | None = None,
           now: datetime | None = None, alpha: float = ALPHA,
           tau: float | None = None) -> ABReport:
    """The report of the A/B test pinned for `model` in `env` (work tree of `repo`), from the
    prediction log at `database` (default: DATABASE_URL or the embedded SQLite file)."""
    from contracts.prediction_log.store import PredictionLog
    from pipelines.predictions import database as db

    model = pins.resolve_model(repo, env, model)
    pin = pins.read(repo, env, model)
    if not pin.is_ab:
        raise CommandError(f"no A/B test runs for {model} in {env}: "
                           f"{pins.relpath(env, model)} pins {pins.label(pin)}")
    url = database or db.url(repo)
    db.require_current(url)
    log = PredictionLog(url)
    try:
        since = _utc(pin.ab.b.promoted.at)
        outcomes = log.outcomes(model, env, since)
        counts = log.variant_counts(model, env, since)
    finally:
        log.close()
    return compute(pin, outcomes, counts, now=now, alpha=alpha, tau=tau)


def _number(value: float | None, metric: str) -> str:
    return "-" if value is None else f"{value:.4f}"


def _interval(interval: tuple[float, float] | None, signed: bool = False) -> str:
    if interval is None:
        return "-"
    fmt = "{:+.4f}" if signed else "{:.4f}"
    return f"[{fmt.format(interval[0])}, {fmt.format(interval[1])}]"


def _unit(pin: Pin) -> str:
    unit = pin.ab.unit
    return " or ".join(filter(None, [unit.header and f"header {unit.header}",
                                     unit.field and f"field {unit.field}"]))


def text(r: ABReport) -> str:
    """The report as `mlops ab-report` prints it."""
    name = "ACCURACY" if r.metric == "accuracy" else "MAE"
    better = "higher is better" if r.higher_is_better else "lower is better"
    head = ["VARIANT", "VERSION", "SHARE", "PREDICTIONS", "LABELS", name,
            f"{1 - r.alpha:.0%} ALWAYS-VALID INTERVAL"]
    rows = [[f.name, f"v{f.version}", f"{f.share}%", f"{f.predictions:,}", f"{f.labels:,}",
             _number(f.value, r.metric), _interval(f.interval)] for f in (r.a, r.b)]
    widths = [max(len(x) for x in column) for column in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    v = r.verdict
    difference = ("-" if math.isnan(v.difference) else
                  f"{v.difference:+.4f}, {1 - r.alpha:.0%} always-valid interval "
                  f"{_interval(v.interval, signed=True)}")
    lines = [
        f"A/B test of {r.model} in {r.environment} since {r.since:%Y-%m-%d %H:%M} UTC "
        f"({pins.relpath(r.environment, r.model)})",
        f"  a = v{r.a.version} ({r.a.share}% of units), b = v{r.b.version} ({r.b.share}%); "
        f"unit id: {_unit(r.pin)}",
        f"  outcome: {'accuracy' if r.metric == 'accuracy' else 'absolute error'} per labelled "
        f"prediction ({better})",
        "",
        line(head), *[line(row) for row in rows],
        "",
        f"difference b - a{' (at the verdict)' if r.decided else ''}: {difference}",
        f"verdict: {r.outcome()}",
        f"test: mixture sequential probability ratio test (mSPRT), alpha {r.alpha:g}, tau "
        f"{r.tau:.4g}, replayed at the end of each day: valid however often it is looked at",
    ]
    if r.decided and not math.isnan(r.current.difference):
        lines.append(f"today's difference, on all {r.current.a.n + r.current.b.n:,} labels: "
                     f"{r.current.difference:+.4f}")
    if r.srm:
        lines.append(f"WARNING: sample ratio mismatch: b answered "
                     f"{r.b.predictions / (r.a.predictions + r.b.predictions):.1%} of the "
                     f"predictions, the split says {r.b.share}% (chi-square p = {r.srm_p:.1e}); "
                     "check the routing and the prediction log before trusting the verdict "
                     "(a few units sending most requests can also cause it)")
    if r.ignored:
        lines.append(f"note: {r.ignored:,} predictions since the start came from another "
                     "variant or version and are not counted")
    return "\n".join(lines)


def markdown(r: ABReport) -> str:
    """The report as a pull-request section."""
    name = "accuracy" if r.metric == "accuracy" else "MAE"
    v = r.verdict
    rows = "\n".join(f"| {f.name} | v{f.version} | {f.share}% | {f.predictions:,} | "
                     f"{f.labels:,} | {_number(f.value, r.metric)} | {_interval(f.interval)} |"
                     for f in (r.a, r.b))
    difference = ("–" if math.isnan(v.difference) else
                  f"{v.difference:+.4f} {_interval(v.interval, signed=True)}")
    srm = ("\n\n**Warning: sample ratio mismatch** (chi-square p = "
           f"{r.srm_p:.1e}): the predictions did not follow the split." if r.srm else "")
    return (f"| variant | version | share | predictions | labels | {name} | "
            f"{1 - r.alpha:.0%} always-valid interval |\n|---|---|---|---|---|---|---|\n{rows}\n\n"
            f"Difference b - a: **{difference}**. Verdict: **{r.outcome()}**.\n\n"
            f"Test: mixture sequential probability ratio test (mSPRT), alpha {r.alpha:g}, tau "
            f"{r.tau:.4g}, on the labelled predictions since {r.since:%Y-%m-%d %H:%M} UTC, "
            f"replayed at the end of each day.{srm}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment whose A/B test to report, e.g. production")
    parser.add_argument("--model", help="the model (may be left out when ENV holds one)")
    parser.add_argument("--alpha", type=float, default=ALPHA,
                        help=f"false-positive rate the verdict keeps (default {ALPHA})")
    parser.add_argument("--tau", type=float,
                        help="difference the test is tuned to (default: 0.05 accuracy, or a "
                             "tenth of variant a's test MAE)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        raise CommandError(f"--alpha must be between 0 and 1, got {args.alpha}")
    r = report(gitops.toplevel(args.repo), args.env, args.model or None, alpha=args.alpha,
               tau=args.tau)
    print(json.dumps(r.to_dict(), indent=2) if args.json else text(r))
    return 0
