"""The prediction log's writer on its own: rows as the log keeps them, the bounded buffer, a
database that fails and comes back, a schema behind the code, and the flush at shutdown.
A real SQLite log; no model, no server (the service's end-to-end tests are in
tests/test_service_log.py)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from db_fixtures import wait_until

from contracts.prediction_log import migrate
from contracts.prediction_log.store import ROW_COLUMNS, PredictionLog
from contracts.signature import Signature
from service.inference import Answer
from service.logbook import Logbook, RowMaker, new_ids
from service.metrics import Metrics


def _signature(task: str = "binary", **extra) -> Signature:
    classes = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"], "regression": None}[task]
    return Signature.model_validate({
        "model": "m", "task": task, "target": "t", "classes": classes,
        "positive_class": "yes" if task == "binary" else None,
        "features": [{"name": "x", "type": "number", "nullable": True},
                     {"name": "email", "type": "category", "categories": ["p", "q"]}],
        **extra})


def _answer(task: str, n: int) -> Answer:
    ids = new_ids(n)
    if task == "regression":
        return Answer(None, [float(i) for i in range(n)], None, ids)
    if task == "binary":
        return Answer(["yes"] * n, [0.75] * n, np.tile([0.25, 0.75], (n, 1)), ids)
    return Answer(["b"] * n, None, np.tile([0.2, 0.5, 0.3], (n, 1)), ids)


class FlakyLog(PredictionLog):
    """A real log whose writes can be made to fail, as a database that is down."""

    down = False

    def append(self, rows):
        if self.down:
            raise ConnectionError("could not connect to server: Connection refused")
        super().append(rows)


@pytest.fixture()
def store(tmp_path) -> FlakyLog:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate.upgrade(url)
    return FlakyLog(url)


def _metric(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_ids_are_128_random_bits_each():
    ids = [i for _ in range(100) for i in new_ids(100)] + new_ids(1)
    assert len(set(ids)) == len(ids) == 10_001
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize("task, output", [
    ("binary", {"prediction": "yes", "probability": 0.75}),
    ("multiclass", {"prediction": "b", "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}}),
    ("regression", {"prediction": 1.0}),
])
def test_rows_hold_the_features_received_without_the_never_logged_and_the_output(task, output):
    maker = RowMaker("m", 3, "d" * 64, "production", _signature(task, never_log=["email"],
                                                                 retention_days=30))
    answer = _answer(task, 2)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [dict(zip(ROW_COLUMNS, r))
            for r in maker.rows(answer, [(None, 2.5), ("p", "q")], at.timestamp())]
    assert [r["id"] for r in rows] == answer.ids
    assert [json.loads(r["features"]) for r in rows] == [{"x": None}, {"x": 2.5}]
    assert json.loads(rows[1]["output"]) == output
    first = rows[0]
    assert (first["model"], first["version"], first["digest"], first["environment"]) == (
        "m", 3, "d" * 64, "production")
    assert (first["created_at"], first["expires_at"]) == (at, at + timedelta(days=30))
    if task == "regression":
        assert (first["predicted_label"], rows[1]["predicted_value"]) == (None, 1.0)
    else:
        assert (first["predicted_label"], first["predicted_value"]) == (output["prediction"],
                                                                         None)


def test_a_full_buffer_drops_counts_and_says_degraded_and_a_down_database_keeps_the_rest(
        store):
    metrics = Metrics()
    book = Logbook(store, metrics, capacity=50, batch_rows=20, flush_seconds=0.05)
    maker = RowMaker("m", 1, "d" * 64, "staging", _signature())
    columns = [(1.0,), ("p",)]
    book.start()
    store.down = True
    for _ in range(60):  # single rows, as a busy endpoint sends them
        book.add(maker, _answer("binary", 1), columns)
    assert book.buffered == 50
    assert _metric(metrics, "gitops_ml_prediction_log_dropped_total", reason="buffer_full") == 10
    wait_until(lambda: book.status()["state"] == "degraded" and "cannot write" in (
        book.status()["reason"] or ""), timeout=10)
    assert "Connection refused" in book.status()["reason"]
    assert _metric(metrics, "gitops_ml_prediction_log_degraded") == 1
    assert not book.flush(timeout=5)  # a flush asked for while it is down fails, soon
    store.down = False  # the database is back: what the buffer kept is written
    wait_until(lambda: store.count()["predictions"] == 50, timeout=15)
    assert book.buffered == 0 and book.problem is None
    assert _metric(metrics, "gitops_ml_prediction_log_written_total") == 50
    assert _metric(metrics, "gitops_ml_prediction_log_write_failures_total") >= 1
    book.close(timeout=5)


def test_close_writes_everything_buffered_and_counts_what_it_cannot(store):
    metrics = Metrics()
    book = Logbook(store, metrics, capacity=1000, batch_rows=100, flush_seconds=60)
    maker = RowMaker("m", 1, "d" * 64, "staging", _signature())
    book.start()
    for _ in range(7):
        book.add(maker, _answer("binary", 10), [(1.0,) * 10, ("p",) * 10])
    assert store.count()["predictions"] == 0  # nothing due yet: a minute's interval
    book.close(timeout=10)
    assert store.count()["predictions"] == 70

    stuck = Logbook(store, metrics, capacity=1000, batch_rows=100, flush_seconds=60)
    stuck.start()
    store.down = True
    stuck.add(maker, _answer("binary", 5), [(1.0,) * 5, ("p",) * 5])
    stuck.close(timeout=1)
    assert _metric(metrics, "gitops_ml_prediction_log_dropped_total", reason="shutdown") == 5


def test_a_schema_behind_the_code_is_reported_and_writing_starts_once_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    book = Logbook(PredictionLog(url), Metrics(), capacity=100, batch_rows=10,
                   flush_seconds=0.05)
    book.start()
    wait_until(lambda: "schema is empty" in (book.status()["reason"] or ""), timeout=10)
    assert "python -m contracts.prediction_log upgrade" in book.status()["reason"]
    book.add(RowMaker("m", 1, "d" * 64, "staging", _signature()), _answer("binary", 3),
             [(1.0,) * 3, ("p",) * 3])
    migrate.upgrade(url)
    wait_until(lambda: book.status()["state"] == "ok", timeout=15)
    assert PredictionLog(url).count()["predictions"] == 3
    book.close(timeout=5)
