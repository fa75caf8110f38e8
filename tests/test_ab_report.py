"""`mlops ab-report` and `mlops ab-conclude` on a real prediction log (SQLite and PostgreSQL)
and a real git repository: a planted effect gives the verdict b, no effect says how many more
labels at the current rate, and the conclusion is one commit whose revert restores the A/B pin
byte for byte."""
from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from gitops_fixtures import MODEL, OTHER, git
from sqlalchemy import insert

from contracts.pin import Pin
from contracts.prediction_log.schema import feedback, predictions
from contracts.prediction_log.store import PredictionLog
from pipelines import cli
from pipelines.errors import CommandError
from pipelines.gitops import history, pins
from pipelines.gitops.promote import promote
from pipelines.gitops.rollback import rollback
from pipelines.release import ab_report, strategy
from pipelines.release.ab_conclude import conclude

pytest_plugins = ("gitops_fixtures",)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENV = "staging"


def plant(url: str, model: str, variant: str | None, version: int, outcomes, *,
          days: float, start: datetime = START, regression: bool = False,
          unlabelled: int = 0) -> None:
    """Predictions of one variant spread evenly over `days` from `start`, each labelled a few
    minutes later with `outcomes` (correct or not; absolute errors for regression), plus
    `unlabelled` predictions with no label."""
    outcomes = list(outcomes)
    n = len(outcomes) + unlabelled
    step = timedelta(days=days) / max(n, 1)
    rows, labels = [], []
    for i in range(n):
        made = start + step * (i + 0.5)
        pid = secrets.token_hex(16)
        rows.append({"id": pid, "model": model, "version": version, "digest": "0" * 64,
                     "environment": ENV, "variant": variant, "created_at": made,
                     "expires_at": None, "features": {"a": 1.0},
                     "predicted_label": None if regression else "Yes",
                     "predicted_value": 1.0 if regression else None, "output": {}})
        if i < len(outcomes):
            outcome = outcomes[i]
            labels.append({"prediction_id": pid, "label": None if regression else "Yes",
                           "value": None, "received_at": made + timedelta(minutes=5),
                           "correct": None if regression else bool(outcome),
                           "abs_error": float(outcome) if regression else None})
    log = PredictionLog(url)
    with log.engine.begin() as connection:
        connection.execute(insert(predictions), rows)
        if labels:
            connection.execute(insert(feedback), labels)
    log.close()


@pytest.fixture()
def ab_repo(gitops_repo, registry_env):
    """churn in staging released by A/B test: v1 in service, then v2 started as variant b at
    START (90/10, unit header X-Unit-Id)."""
    repo = gitops_repo.path
    strategy.change(repo, ENV, MODEL, "ab", here=True)
    promote(repo, MODEL, 1, ENV, here=True, now=START - timedelta(days=30))
    promote(repo, MODEL, 2, ENV, here=True, now=START)
    return repo


def accuracy_outcomes(rng, p: float, n: int):
    return rng.random(n) < p


def test_a_planted_effect_of_eight_points_gives_the_verdict_b(ab_repo, log_url):
    rng = np.random.default_rng(3)
    plant(log_url, MODEL, "a", 1, accuracy_outcomes(rng, 0.70, 9000), days=20)
    plant(log_url, MODEL, "b", 2, accuracy_outcomes(rng, 0.78, 1000), days=20)

    r = ab_report.report(ab_repo, ENV, MODEL, database=log_url, now=START + timedelta(days=20))

    assert r.metric == "accuracy" and r.winner == "b"
    assert (r.a.labels, r.b.labels) == (9000, 1000)
    assert 0.68 < r.a.value < 0.72 and 0.75 < r.b.value < 0.81
    low, high = r.verdict.interval
    assert 0 < low < r.verdict.difference < high and r.verdict.p_value < 0.05
    assert START < r.decided_at <= START + timedelta(days=20)
    out = ab_report.text(r)
    assert "verdict: b (v2) wins: always-valid p = " in out
    assert "a        v1       90%    9,000        9,000" in out
    assert "mixture sequential probability ratio test (mSPRT), alpha 0.05" in out


def test_without_a_difference_it_says_how_many_more_labels_at_the_current_rate(ab_repo,
                                                                             log_url):
    rng = np.random.default_rng(4)
    # 500 labels a day for 6 days (450 a, 50 b), the same accuracy on both sides.
    plant(log_url, MODEL, "a", 1, accuracy_outcomes(rng, 0.72, 2700), days=6)
    plant(log_url, MODEL, "b", 2, accuracy_outcomes(rng, 0.72, 300), days=6)

    r = ab_report.report(ab_repo, ENV, MODEL, database=log_url, now=START + timedelta(days=6))

    assert r.winner is None and r.current.more_labels and r.current.more_labels > 0
    assert r.labels_per_day == pytest.approx(500, rel=0.02)
    assert r.days_needed == pytest.approx(r.current.more_labels / r.labels_per_day)
    assert r.outcome().startswith(f"no difference yet: about {r.current.more_labels:,} more "
                                  "labels at the current rate (~")
    assert "days at 500 labels/day)" in r.outcome()


def test_too_few_labels_is_no_verdict_and_only_this_tests_variants_count(ab_repo, log_url):
    plant(log_url, MODEL, "a", 1, [True] * 40, days=1)
    plant(log_url, MODEL, "b", 2, [True] * 10, days=1, unlabelled=5)
    # Not this test: before it started, outside any test, another version, another model.
    plant(log_url, MODEL, "a", 1, [False] * 50, days=1, start=START - timedelta(days=3))
    plant(log_url, MODEL, None, 1, [False] * 7, days=1)
    plant(log_url, MODEL, "b", 3, [False] * 9, days=1)
    plant(log_url, OTHER, "b", 2, [False] * 11, days=1)

    r = ab_report.report(ab_repo, ENV, MODEL, database=log_url, now=START + timedelta(days=1))

    assert (r.a.labels, r.b.labels, r.b.predictions, r.ignored) == (40, 10, 15, 16)
    assert r.a.value == 1.0 and r.winner is None
    assert r.outcome().startswith("no verdict yet: each variant needs 30 labels first, about "
                                  "20 more labels")
    assert "16 predictions since the start came from another variant" in ab_report.text(r)


def test_regression_is_judged_on_mean_absolute_error_lower_being_better(gitops_repo,
                                                                       registry_env, log_url):
    repo = gitops_repo.path
    gitops_repo.add_model(OTHER)
    strategy.change(repo, ENV, OTHER, "ab", here=True)
    promote(repo, OTHER, 1, ENV, here=True, now=START - timedelta(days=30))
    promote(repo, OTHER, 2, ENV, here=True, now=START)
    rng = np.random.default_rng(5)
    plant(log_url, OTHER, "a", 1, np.abs(rng.normal(0, 0.6, 4500)), days=10, regression=True)
    plant(log_url, OTHER, "b", 2, np.abs(rng.normal(0, 0.5, 500)), days=10, regression=True)

    r = ab_report.report(repo, ENV, OTHER, database=log_url, now=START + timedelta(days=10))

    assert r.metric == "mae" and not r.higher_is_better
    assert r.tau == pytest.approx(0.1 * 0.5)  # a tenth of v1's test MAE, as pinned
    assert r.winner == "b" and r.verdict.difference < 0
    assert "MAE" in ab_report.text(r) and "(lower is better)" in ab_report.text(r)


def test_a_split_the_predictions_did_not_follow_is_flagged(ab_repo, log_url):
    rng = np.random.default_rng(6)
    plant(log_url, MODEL, "a", 1, accuracy_outcomes(rng, 0.7, 600), days=3)
    plant(log_url, MODEL, "b", 2, accuracy_outcomes(rng, 0.7, 400), days=3)

    r = ab_report.report(ab_repo, ENV, MODEL, database=log_url, now=START + timedelta(days=3))

    assert r.srm and r.srm_p < 1e-6
    assert "WARNING: sample ratio mismatch: b answered 40.0% of the predictions, the split " \
           "says 10%" in ab_report.text(r)


def test_a_report_needs_an_ab_pin(gitops_repo, registry_env, log_url, capsys, monkeypatch):
    promote(gitops_repo.path, MODEL, 1, ENV, here=True)
    with pytest.raises(CommandError, match="no A/B test runs for churn in staging: "
                                           "environments/staging/churn/model.yaml pins churn v1"):
        ab_report.report(gitops_repo.path, ENV, MODEL, database=log_url)
    monkeypatch.setenv("DATABASE_URL", log_url)
    assert cli.main(["ab-report", ENV, "--repo", str(gitops_repo.path)]) == 2
    assert "no A/B test runs" in capsys.readouterr().err


# --- concluding -----------------------------------------------------------------------------

def test_conclude_pins_the_winner_in_one_commit_whose_revert_restores_both_pins(ab_repo,
                                                                               log_url):
    rng = np.random.default_rng(3)
    plant(log_url, MODEL, "a", 1, accuracy_outcomes(rng, 0.70, 9000), days=20)
    plant(log_url, MODEL, "b", 2, accuracy_outcomes(rng, 0.78, 1000), days=20)
    path = ab_repo / pins.relpath(ENV, MODEL)
    ab_bytes = path.read_bytes()
    before = git(ab_repo, "rev-parse", "HEAD").strip()

    done = conclude(ab_repo, ENV, MODEL, here=True, database=log_url,
                    now=START + timedelta(days=20))

    assert git(ab_repo, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
    assert git(ab_repo, "diff-tree", "--no-commit-id", "--name-only", "-r",
               done.commit).split() == [pins.relpath(ENV, MODEL)]
    pin = Pin.read(path)
    assert not pin.is_ab and pin.model == done.previous.ab.b.model
    assert pin.lineage == done.previous.ab.b.lineage
    message = git(ab_repo, "log", "-1", "--format=%B")
    assert message.startswith("Conclude A/B test of churn in staging: v2 (b) wins")
    trailers = git(ab_repo, "log", "-1", "--format=%(trailers:only,unfold)").splitlines()
    assert trailers[:4] == ["Model: churn", "Version: 2", f"Digest: {pin.model.sha256}",
                            "Environment: staging"]
    assert trailers[4] == "Concludes: v1 90% / v2 10%"
    assert trailers[5].startswith("Verdict: b (v2) wins: always-valid p = ")
    assert "### The test" in done.body and f"git revert {done.commit}" in done.body
    newest = history.events(ab_repo, ENV, MODEL)[0]
    assert (newest.kind, newest.served.short()) == ("promotion", "v2")

    git(ab_repo, "revert", "--no-edit", done.commit)
    assert path.read_bytes() == ab_bytes
    # ... and so does `mlops rollback`, which finds the conclusion as the promotion in effect.
    git(ab_repo, "reset", "-q", "--hard", done.commit)
    rollback(ab_repo, ENV, MODEL, here=True)
    assert path.read_bytes() == ab_bytes


def test_conclude_without_a_verdict_is_refused_unless_forced_with_a_reason(ab_repo, log_url):
    rng = np.random.default_rng(7)
    plant(log_url, MODEL, "a", 1, accuracy_outcomes(rng, 0.72, 900), days=3)
    plant(log_url, MODEL, "b", 2, accuracy_outcomes(rng, 0.72, 100), days=3)
    head = git(ab_repo, "rev-parse", "HEAD")
    now = START + timedelta(days=3)

    for kwargs, message in [
            ({}, "no verdict yet for the A/B test of churn in staging: no difference yet"),
            ({"force": True, "keep": "a"}, "--force needs --reason"),
            ({"force": True, "reason": "  "}, "--force needs --reason"),
            ({"force": True, "reason": "budget"}, "--force needs --keep a|b"),
            ({"reason": "budget"}, "--reason goes with --force")]:
        with pytest.raises(CommandError, match=message):
            conclude(ab_repo, ENV, MODEL, here=True, database=log_url, now=now, **kwargs)
        assert git(ab_repo, "rev-parse", "HEAD") == head

    done = conclude(ab_repo, ENV, MODEL, here=True, database=log_url, now=now, force=True,
                    keep="a", reason="no difference after three days;\nthe pricing team needs "
                                     "the slot")

    assert Pin.read(ab_repo / pins.relpath(ENV, MODEL)).model.version == 1
    message = git(ab_repo, "log", "-1", "--format=%B")
    assert message.startswith("Conclude A/B test of churn in staging: keep v1 (a), forced")
    assert "Stopped early by decision: no difference after three days; the pricing team needs " \
           "the slot" in message
    verdict = git(ab_repo, "log", "-1", "--format=%(trailers:key=Verdict,valueonly)").strip()
    assert verdict.startswith("forced (no difference yet")
    assert verdict.endswith("): no difference after three days; the pricing team needs the slot")
    assert "**Forced:** no difference after three days" in done.body
    assert "forced, without a verdict" in done.summary()
