"""The prediction log on a real PostgreSQL and on SQLite: migrations, feedback that is stored
once whichever replica answers, live quality every replica agrees on, labelled rows, pruning."""
from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta

from contracts.prediction_log import migrate
from contracts.prediction_log.store import PredictionLog


def prediction(model: str = "churn", version: int = 1, label: str = "Yes", value=None,
               at: datetime | None = None, keep_days: int | None = 90, **features) -> dict:
    at = at or datetime.now(UTC)
    return {"id": secrets.token_hex(16), "model": model, "version": version, "digest": "a" * 64,
            "environment": "production", "variant": None, "created_at": at,
            "expires_at": None if keep_days is None else at + timedelta(days=keep_days),
            "features": features or {"tenure": 3},
            "predicted_label": None if value is not None else label,
            "predicted_value": value, "output": {"prediction": value or label}}


def test_migrations_bring_a_database_to_head_and_can_run_again(log_url):
    assert migrate.current(log_url) == migrate.head() == "0001"
    assert migrate.upgrade(log_url) == ("0001", "0001")


def test_a_label_is_stored_once_repeated_idempotently_and_a_different_one_conflicts(log_url):
    log = PredictionLog(log_url)
    rows = [prediction(label="Yes"), prediction(label="No")]
    log.write(rows)
    first = log.record_feedback([(rows[0]["id"], "Yes"), (rows[1]["id"], "Yes")],
                                regression=False)
    assert [(o.status, o.correct) for o in first] == [("stored", True), ("stored", False)]
    again = log.record_feedback([(rows[0]["id"], "Yes"), (rows[1]["id"], "No"),
                                 ("0" * 32, "Yes")], regression=False)
    assert [o.status for o in again] == ["repeated", "conflict", "unknown"]
    assert again[1].stored == "Yes" and again[1].predicted == "No"


def test_feedback_reaches_a_prediction_written_by_another_replica(log_url):
    one, other = PredictionLog(log_url), PredictionLog(log_url)
    rows = [prediction(label="Yes") for _ in range(10)]
    one.write(rows)
    outcomes = other.record_feedback([(r["id"], "Yes" if i < 7 else "No")
                                      for i, r in enumerate(rows)], regression=False)
    assert {o.status for o in outcomes} == {"stored"}
    assert one.live_quality("churn", 1000) == other.live_quality("churn", 1000) == {
        1: {"labelled": 10, "accuracy": 0.7}}


def test_two_replicas_racing_with_different_labels_store_exactly_one(log_url):
    rows = [prediction() for _ in range(20)]
    PredictionLog(log_url).write(rows)
    results: dict[str, list] = {}

    def label(name: str, value: str) -> None:
        results[name] = PredictionLog(log_url).record_feedback(
            [(r["id"], value) for r in rows], regression=False)

    threads = [threading.Thread(target=label, args=(n, v)) for n, v in (("a", "Yes"), ("b", "No"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(rows)):
        statuses = sorted(results[n][i].status for n in ("a", "b"))
        assert statuses == ["conflict", "stored"]
    assert PredictionLog(log_url).count("churn") == {"predictions": 20, "labelled": 20}


def test_regression_feedback_is_numeric_and_live_quality_is_the_mean_absolute_error(log_url):
    log = PredictionLog(log_url)
    rows = [prediction("flats", 2, value=v) for v in (100.0, 200.0, 300.0)]
    log.write(rows)
    outcomes = log.record_feedback([(rows[0]["id"], 110.0), (rows[1]["id"], 180.0),
                                    (rows[2]["id"], 300.0)], regression=True)
    assert [o.abs_error for o in outcomes] == [10.0, 20.0, 0.0]
    assert log.live_quality("flats", 1000) == {2: {"labelled": 3, "mae": 10.0}}


def test_live_quality_is_per_version_over_the_newest_labels(log_url):
    log = PredictionLog(log_url)
    old = [prediction(version=1, label="No") for _ in range(5)]
    new = [prediction(version=2, label="Yes") for _ in range(5)]
    log.write(old + new)
    log.record_feedback([(r["id"], "Yes") for r in old], regression=False)
    log.record_feedback([(r["id"], "Yes") for r in new], regression=False)
    assert log.live_quality("churn", 1000) == {1: {"labelled": 5, "accuracy": 0.0},
                                               2: {"labelled": 5, "accuracy": 1.0}}
    assert log.live_quality("churn", 5) == {2: {"labelled": 5, "accuracy": 1.0}}


def test_labelled_rows_come_back_with_features_and_pruning_removes_old_ones(log_url):
    log = PredictionLog(log_url)
    now = datetime.now(UTC)
    old = prediction(at=now - timedelta(days=100), tenure=1)
    recent = prediction(at=now - timedelta(days=1), tenure=2)
    unlabelled = prediction(at=now)
    log.write([old, recent, unlabelled])
    log.record_feedback([(old["id"], "No"), (recent["id"], "Yes")], regression=False)
    rows = log.labelled("churn")
    assert [(r["features"], r["label"]) for r in rows] == [({"tenure": 1}, "No"),
                                                            ({"tenure": 2}, "Yes")]
    assert [r["id"] for r in log.labelled("churn", since=now - timedelta(days=7))] == [
        recent["id"]]
    kept_forever = prediction(at=now - timedelta(days=400), keep_days=None)
    log.write([kept_forever])
    assert log.prune(now) == {"predictions": 1, "labelled": 1}  # the 100-day-old one
    assert log.count("churn") == {"predictions": 3, "labelled": 1}
    assert log.prune(before=now - timedelta(days=30)) == {"predictions": 1, "labelled": 0}


def test_pods_migrating_at_once_take_turns_and_only_the_first_changes_the_schema(postgres):
    # What every service pod's init container does at a rollout: `python -m
    # contracts.prediction_log upgrade`, several at once. While the test holds the migration
    # lock they all wait on it; released, one migrates and the others find the schema at head.
    import os
    import subprocess
    import sys

    from db_fixtures import wait_until
    from sqlalchemy import create_engine, text

    url = postgres.database()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": migrate.MIGRATION_LOCK})
        pods = [subprocess.Popen([sys.executable, "-m", "contracts.prediction_log", "upgrade"],
                                 env={**os.environ,
                                      "DATABASE_URL": url.replace("postgresql+psycopg://",
                                                                  "postgres://")},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(3)]
        try:
            wait_until(lambda: holder.execute(waiting).scalar() == 3, timeout=30)
            assert migrate.current(url) is None
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": migrate.MIGRATION_LOCK})
        outputs = [pod.communicate(timeout=120) for pod in pods]
    engine.dispose()
    assert [pod.returncode for pod in pods] == [0, 0, 0], outputs
    said = sorted(out.strip().rsplit(": ", 1)[1] for out, _ in outputs)
    assert said == ["schema 0001 -> 0001", "schema 0001 -> 0001", "schema empty -> 0001"]
    assert migrate.current(url) == migrate.head()


def test_provider_style_postgres_urls_use_the_installed_driver():
    assert migrate.sqlalchemy_url("postgres://u:p@db:5432/log") == \
        "postgresql+psycopg://u:p@db:5432/log"
    assert migrate.sqlalchemy_url("postgresql://u@db/log?sslmode=require") == \
        "postgresql+psycopg://u@db/log?sslmode=require"
    for kept in ("postgresql+psycopg://u@db/log", "sqlite:///x.db"):
        assert migrate.sqlalchemy_url(kept) == kept


def test_an_older_image_leaves_a_newer_schema_alone(log_url):
    from sqlalchemy import create_engine, text

    from contracts.prediction_log.migrate import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(log_url))
    with engine.begin() as connection:  # as a later release's migration would leave it
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    assert migrate.upgrade(log_url) == ("0099", "0099")
    PredictionLog(log_url).write([prediction()])  # and it still logs


def test_rows_appended_on_the_fast_path_read_back_like_written_ones(log_url):
    import json

    from contracts.prediction_log.store import ROW_COLUMNS

    log = PredictionLog(log_url)
    now = datetime.now(UTC).replace(microsecond=123456)
    rows = [prediction(at=now - timedelta(days=d), tenure=d, Contract="One year")
            for d in (200, 1)]
    rows[1]["expires_at"] = None
    log.append([tuple(json.dumps(r[c]) if c in ("features", "output") else r[c]
                      for c in ROW_COLUMNS) for r in rows])
    log.record_feedback([(r["id"], "Yes") for r in rows], regression=False)
    back = log.labelled("churn")
    assert [(r["id"], r["features"], r["created_at"]) for r in back] == [
        (r["id"], r["features"], r["created_at"]) for r in rows]
    assert log.prune(now) == {"predictions": 1, "labelled": 1}  # its 90 days ran out
    assert log.count() == {"predictions": 1, "labelled": 1}
