"""The service and its prediction log on a real PostgreSQL and on SQLite: every protocol's
answers logged, two replicas sharing one database, a restart of both, and the database stopped
in the middle of the load. Service processes (`python -m service`) where replicas, signals or
restarts matter; the app in process otherwise."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from db_fixtures import wait_until
from service_fixtures import in_process, start_service, write_pin

from contracts.prediction_log.store import PredictionLog
from service.protocols.tensors import datatype

pytest_plugins = ("service_fixtures",)
# Rows stay in a replica's buffer until a label asks for them, or until it stops.
SLOW_FLUSH = {"LOG_FLUSH_SECONDS": "60", "LOG_BATCH_ROWS": "100000"}


def _labels(reg, answered: list[dict], start: int) -> list[dict]:
    truth = reg.labels.iloc[start:start + len(answered)].tolist()
    return [{"prediction_id": p["prediction_id"], "label": t} for p, t in zip(answered, truth)]


def _accuracy(answered: list[dict], labels: list[dict]) -> float:
    return sum(p["prediction"] == lab["label"] for p, lab in zip(answered, labels)) / len(labels)


def test_every_protocols_answers_are_logged_and_a_label_finds_a_buffered_prediction(
        log_url, tmp_path, served_registry):
    reg = served_registry
    pin = write_pin(tmp_path / "model.yaml", reg, 1, environment="production")
    with in_process(tmp_path, reg, pin, database_url=log_url, log_flush_seconds=60,
                    log_batch_rows=100_000) as svc:
        svc.wait_ready(1)
        records = reg.records(5, start=3)
        batch = svc.post("/v1/predict", json=records).json()["predictions"]
        single = svc.post("/v1/predict", json=records[0]).json()
        oip = svc.post("/v2/models/churn/infer", json={"inputs": [
            {"name": f.name, "datatype": datatype(f), "shape": [2],
             "data": [r[f.name] for r in records[:2]]}
            for f in reg.tasks["binary"].signature.features]})
        assert oip.status_code == 200, oip.text
        assert svc.post("/invocations", json={"dataframe_records": records[:3]}).status_code == 200
        assert svc.get("/ready").json()["logging"] == {"state": "ok", "reason": None,
                                                       "buffered": 11}
        # The label of a prediction still in this replica's buffer: the buffer is written first.
        r = svc.post("/v1/feedback", json={"prediction_id": batch[0]["prediction_id"],
                                           "label": "Yes"})
        assert r.status_code == 200, r.text
        assert svc.get("/ready").json()["logging"]["buffered"] == 0
    log = PredictionLog(log_url)
    assert log.count("churn") == {"predictions": 11, "labelled": 1}
    rows = {r["id"]: r for r in log.labelled("churn")}
    assert rows[batch[0]["prediction_id"]]["features"] == records[0]
    with log.engine.connect() as connection:
        logged = {r.id: r for r in connection.exec_driver_sql(
            "SELECT id, environment, digest, predicted_label, output FROM predictions")}
    ids = [p["prediction_id"] for p in batch] + [single["prediction_id"]] + \
        oip.json()["parameters"]["prediction_ids"]
    assert set(ids) < set(logged) and len(logged) == 11  # /invocations' 3 rows too
    row = logged[single["prediction_id"]]
    assert (row.environment, row.digest, row.predicted_label) == (
        "production", reg.digests[1], single["prediction"])
    output = row.output if isinstance(row.output, dict) else json.loads(row.output)
    assert output == {"prediction": single["prediction"], "probability": single["probability"]}


def test_two_replicas_share_one_log_and_a_restart_of_both_keeps_everything(
        log_url, tmp_path, served_registry):
    reg = served_registry
    pin = write_pin(tmp_path / "model.yaml", reg, 1)
    env = {"DATABASE_URL": log_url, **SLOW_FLUSH}
    one, two = (start_service(tmp_path, reg, pin, **env) for _ in range(2))
    try:
        for svc in (one, two):
            svc.wait_ready(1)
        answered = one.post("/v1/predict", json=reg.records(20)).json()["predictions"]
        answered += [one.post("/v1/predict", json=r).json() for r in reg.records(10, start=20)]
        labels = _labels(reg, answered, 0)
        # A label reaches the replica that answered while its rows are still buffered, then
        # the others reach the other replica: each finds its prediction.
        assert one.post("/v1/feedback", json=labels[:10]).status_code == 200
        to_two = two.post("/v1/feedback", json=labels[10:])
        assert to_two.status_code == 200, to_two.text
        later = two.post("/v1/predict", json=reg.records(25, start=40)).json()["predictions"]
        expected = _accuracy(answered, labels)
        for svc in (one, two):
            assert svc.metric("gitops_ml_feedback_accuracy") == pytest.approx(expected)
            assert svc.metric("gitops_ml_feedback_quality", version="1",
                              measure="labelled") == 30
        changed = dict(labels[0], label="No" if labels[0]["label"] == "Yes" else "Yes")
        assert two.post("/v1/feedback", json=changed).status_code == 409
    finally:
        one.stop()
        two.stop()  # SIGTERM: the 25 predictions still in its buffer are written
    assert PredictionLog(log_url).count("churn") == {"predictions": 55, "labelled": 30}

    one, two = (start_service(tmp_path, reg, pin, **env) for _ in range(2))
    try:
        for svc in (one, two):
            svc.wait_ready(1)
            assert svc.metric("gitops_ml_feedback_accuracy") == pytest.approx(expected)
        again = one.post("/v1/feedback", json=labels[12])
        assert again.status_code == 200 and again.json() == to_two.json()["feedback"][2]
        late = _labels(reg, later, 40)
        assert one.post("/v1/feedback", json=late).status_code == 200
        assert two.metric("gitops_ml_feedback_quality", version="1", measure="labelled") == 55
    finally:
        one.stop()
        two.stop()


def test_predictions_answer_while_the_database_is_down_and_logging_resumes(
        postgres, tmp_path, served_registry):
    from contracts.prediction_log import migrate

    reg = served_registry
    url = postgres.database()
    migrate.upgrade(url)
    pin = write_pin(tmp_path / "model.yaml", reg, 1)
    svc = start_service(tmp_path, reg, pin, DATABASE_URL=url, LOG_BUFFER_ROWS="400",
                        LOG_BATCH_ROWS="50", LOG_FLUSH_SECONDS="0.05")
    answered: list[dict] = []
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:  # single rows and small batches until told to stop (2 min at most)
        records = reg.records(30)
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                for body in (records[len(answered) % 30], records[:7]):
                    r = client.post("/v1/predict", json=body)
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        got = r.json()
                        answered.extend(got.get("predictions", [got]))

    def written() -> float:
        return svc.metric("gitops_ml_prediction_log_written_total") or 0

    def dropped() -> float:
        return svc.metric("gitops_ml_prediction_log_dropped_total", reason="buffer_full") or 0

    worker = threading.Thread(target=load)
    try:
        svc.wait_ready(1)
        worker.start()
        wait_until(lambda: written() >= 50, timeout=30)
        acknowledged = _labels(reg, answered[:20], 0)
        acknowledged = [dict(item, label=answered[i]["prediction"])  # the answered class
                        for i, item in enumerate(acknowledged)]
        assert svc.post("/v1/feedback", json=acknowledged).status_code == 200

        postgres.stop()
        try:
            wait_until(lambda: svc.get("/ready").json()["logging"]["state"] == "degraded",
                       timeout=30)
            ready = svc.get("/ready")
            assert ready.status_code == 200  # still ready: predictions answer
            assert "cannot" in ready.json()["logging"]["reason"]
            wait_until(lambda: dropped() > 0, timeout=60)  # the buffer filled: loss counted
            refused = svc.post("/v1/feedback", json=_labels(reg, answered[20:21], 20))
            assert refused.status_code == 503 and "nothing was stored" in refused.json()["detail"]
            assert svc.metric("gitops_ml_prediction_log_degraded") == 1
        finally:
            postgres.start()
        # Writing resumes under the load, then the buffer empties.
        resumed_from = written()
        wait_until(lambda: svc.metric("gitops_ml_prediction_log_degraded") == 0
                   and written() > resumed_from, timeout=30)
        stop.set()
        worker.join(30)
        wait_until(lambda: svc.get("/ready").json()["logging"]["buffered"] == 0, timeout=30)
        assert set(statuses) == {200}
        log = PredictionLog(url)
        in_log = log.count("churn")["predictions"]
        assert in_log == written() and in_log + dropped() == len(answered)
        assert 0 < dropped() < len(answered)
        kept = {r["id"]: r["label"] for r in log.labelled("churn")}
        assert {i["prediction_id"]: i["label"] for i in acknowledged}.items() <= kept.items()
        late = _labels(reg, answered[-5:], 0)
        assert svc.post("/v1/feedback", json=late).status_code == 200  # labels work again
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(30)
        svc.stop()
