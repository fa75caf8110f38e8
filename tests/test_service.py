"""The inference service as a user meets it, on a real registry: in process (Litestar's test
client) for its logic, on a real port only where a socket matters (schemathesis' CLI)."""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from service_fixtures import (
    in_process,
    sklearn_probability,
    sqlite_log,
    start_service,
    write_pin,
)

pytest_plugins = ("service_fixtures",)
WINDOW = 200


@pytest.fixture(scope="module")
def service(tmp_path_factory, served_registry):
    """v1 in service with v2 as its shadow; small drift window so tests can fill it."""
    tmp = tmp_path_factory.mktemp("service")
    pin = write_pin(tmp / "model.yaml", served_registry, 1, shadow=2)
    with in_process(tmp, served_registry, pin, drift_window_rows=WINDOW, drift_min_rows=50,
                    max_batch_rows=500, max_body_bytes=400_000) as svc:
        svc.wait_ready(1)
        yield svc


def test_predictions_match_the_registered_model(service, served_registry):
    reg = served_registry
    records = reg.records(300)
    batch = service.post("/v1/predict", json=records)
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert (body["model"], body["version"]) == ("churn", 1)
    got = np.array([p["probability"] for p in body["predictions"]])
    expected = sklearn_probability(reg, 1, reg.rows.iloc[:300])
    assert np.max(np.abs(got - expected)) < 1e-6
    assert [p["prediction"] for p in body["predictions"]] == \
        list(reg.models[1].predict(reg.rows.iloc[:300]))
    assert len({p["prediction_id"] for p in body["predictions"]}) == 300

    one = service.post("/v1/predict", json=records[7])
    assert one.status_code == 200
    single = one.json()
    assert set(single) == {"model", "version", "prediction", "probability", "prediction_id",
                           "variant"}
    assert single["variant"] is None  # no A/B test runs
    assert single["probability"] == pytest.approx(expected[7], abs=1e-6)


def test_concurrent_requests_through_the_model_thread_each_get_their_own_answers(
        tmp_path, served_registry):
    # Every model call in the model's thread (MODEL_THREAD_ROWS=1), requests of different
    # sizes at once: each answer is the registered model's for that request's rows.
    reg = served_registry
    pin = write_pin(tmp_path / "model.yaml", reg, 1)
    sizes = [1, 7, 30, 2, 64, 5, 13, 40] * 3
    starts = np.cumsum([0, *sizes[:-1]])
    with in_process(tmp_path, reg, pin, model_thread_rows=1, max_batch_rows=500) as svc:
        svc.wait_ready(1)
        with ThreadPoolExecutor(8) as callers:
            bodies = list(callers.map(
                lambda k: svc.post("/v1/predict", json=reg.records(sizes[k], int(starts[k]))),
                range(len(sizes))))
        counted = sum(svc.metric("gitops_ml_predictions_total", model="churn", version="1",
                                 variant="", **{"class": c}) or 0 for c in ("No", "Yes"))
    expected = sklearn_probability(reg, 1, reg.rows.iloc[:sum(sizes)])
    for k, response in enumerate(bodies):
        assert response.status_code == 200, response.text
        got = [p["probability"] for p in response.json()["predictions"]]
        assert got == pytest.approx(expected[starts[k]:starts[k] + sizes[k]], abs=1e-6)
    assert counted == sum(sizes)


def _record(reg, **changes):
    record = reg.records(1, start=11)[0]
    record.update(changes)
    return record


@pytest.mark.parametrize("case, status, words", [
    ("missing field", 422, ["tenure", "required"]),
    ("wrong type", 422, ["tenure", "integer", "string"]),
    ("float for an integer", 422, ["SeniorCitizen", "integer"]),
    ("boolean for a number", 422, ["MonthlyCharges", "number"]),
    ("unknown category", 422, ["Contract", "Ten year", "Month-to-month"]),
    ("out of range", 422, ["tenure", ">= 0"]),
    ("above range", 422, ["SeniorCitizen", "<= 1"]),
    ("NaN literal", 400, ["not valid JSON"]),
    ("Infinity literal", 400, ["not valid JSON"]),
    ("overflowing number", 422, ["TotalCharges", "finite"]),
    ("unknown field", 422, ["favourite_colour"]),
    ("empty batch", 422, ["at least one record"]),
    ("oversize batch", 422, ["at most 500 records"]),
    ("not JSON", 400, ["not valid JSON"]),
    ("empty body", 400, ["empty"]),
    ("JSON that is not a record", 422, ["record object or an array"]),
    ("huge body", 413, ["larger than 400000 bytes"]),
])
def test_every_invalid_input_gets_a_4xx_naming_the_problem(service, served_registry,
                                                           case, status, words):
    reg = served_registry
    good = _record(reg)
    without = {k: v for k, v in good.items() if k != "tenure"}
    bodies = {
        "missing field": json.dumps(without),
        "wrong type": json.dumps(_record(reg, tenure="twelve")),
        "float for an integer": json.dumps(_record(reg, SeniorCitizen=0.5)),
        "boolean for a number": json.dumps(_record(reg, MonthlyCharges=True)),
        "unknown category": json.dumps(_record(reg, Contract="Ten year")),
        "out of range": json.dumps(_record(reg, tenure=-3)),
        "above range": json.dumps(_record(reg, SeniorCitizen=2)),
        "NaN literal": json.dumps(good).replace(
            f'"MonthlyCharges": {json.dumps(good["MonthlyCharges"])}', '"MonthlyCharges": NaN'),
        "Infinity literal": json.dumps(good).replace(
            f'"TotalCharges": {json.dumps(good["TotalCharges"])}', '"TotalCharges": Infinity'),
        "overflowing number": json.dumps(good).replace(
            f'"TotalCharges": {json.dumps(good["TotalCharges"])}', '"TotalCharges": 1e999'),
        "unknown field": json.dumps(_record(reg, favourite_colour="blue")),
        "empty batch": "[]",
        "oversize batch": json.dumps([good] * 501),
        "not JSON": "tenure=12&Contract=One+year",
        "empty body": "",
        "JSON that is not a record": '"hello"',
        "huge body": json.dumps([good] * 1200),
    }
    response = service.post("/v1/predict", content=bodies[case],
                            headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    text = json.dumps(body)
    for word in words:
        assert word in text, f"{case}: {word!r} not in {text}"
    assert "Traceback" not in response.text and "File \"" not in response.text


def test_model_endpoint_and_readiness_prove_what_is_served(service, served_registry):
    model = service.get("/v1/model").json()
    assert model["uri"] == "models:/churn/1"
    assert model["sha256"] == served_registry.digests[1]
    assert model["runtime"] == "onnxruntime"
    assert model["lineage"]["git_commit"] == "1" * 40
    assert model["environment"] == "staging" and model["in_sync"] is True
    assert model["loaded_at"].endswith("+00:00")
    assert model["shadow"]["uri"] == "models:/churn/2"
    ready = service.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["sha256"] == served_registry.digests[1]
    assert service.get("/health").json() == {"status": "ok"}
    info = service.metric("gitops_ml_model_info", version="1", environment="staging",
                          sha256=served_registry.digests[1])
    assert info == 1.0
    assert service.metric("gitops_ml_model_ready") == 1.0


def test_feedback_scores_predictions_and_exports_live_accuracy(served_registry, tmp_path):
    reg = served_registry
    pin = write_pin(tmp_path / "model.yaml", reg, 1)
    log = sqlite_log(tmp_path / "log.db")
    with in_process(tmp_path, reg, pin, database_url=log) as service:
        service.wait_ready(1)
        body = service.post("/v1/predict", json=reg.records(20, start=40)).json()
        truth = list(reg.labels.iloc[40:60])
        answers = []
        for prediction, label in zip(body["predictions"], truth):
            r = service.post("/v1/feedback", json={
                "prediction_id": prediction["prediction_id"], "label": label})
            assert r.status_code == 200, r.text
            assert r.json()["outcome"] == ("correct" if prediction["prediction"] == label
                                           else "incorrect")
            answers.append(r.json())
        correct = sum(p["prediction"] == t for p, t in zip(body["predictions"], truth))
        assert service.metric("gitops_ml_feedback_total", outcome="correct") == correct
        assert service.metric("gitops_ml_feedback_total", outcome="incorrect") == 20 - correct
        assert service.metric("gitops_ml_feedback_accuracy") == correct / 20
        assert service.metric("gitops_ml_feedback_quality", version="1",
                              measure="labelled") == 20
        assert service.get("/v1/model").json()["live_quality"] == {
            "1": {"labelled": 20, "accuracy": correct / 20}}
        first = body["predictions"][0]["prediction_id"]
        again = service.post("/v1/feedback", json={"prediction_id": first, "label": truth[0]})
        assert again.status_code == 200 and again.json() == answers[0]  # idempotent
        other = "No" if truth[0] == "Yes" else "Yes"
        changed = service.post("/v1/feedback", json={"prediction_id": first, "label": other})
        assert changed.status_code == 409 and "labelled" in changed.json()["detail"]
        assert service.metric("gitops_ml_feedback_total", outcome="correct") == correct
        unknown = service.post("/v1/feedback", json={"prediction_id": "0" * 32, "label": "Yes"})
        assert unknown.status_code == 404 and "unknown prediction id" in unknown.json()["detail"]
        bad = service.post("/v1/feedback", json={"prediction_id": body["predictions"][1][
            "prediction_id"], "label": "Maybe"})
        assert bad.status_code == 422 and "Maybe" in bad.json()["detail"]


def test_drift_is_measured_against_the_training_reference(service, served_registry):
    reg = served_registry
    typical = service.post("/v1/predict", json=reg.records(WINDOW, start=100))
    assert typical.status_code == 200
    calm_ks = service.metric("gitops_ml_feature_drift", feature="tenure", test="ks")
    calm_psi = service.metric("gitops_ml_feature_drift", feature="Contract", test="psi")
    assert service.metric("gitops_ml_drift_window_rows") == WINDOW
    # New customers only, all on monthly contracts: a shifted population.
    skewed = [dict(r, tenure=1, Contract="Month-to-month") for r in reg.records(WINDOW)]
    assert service.post("/v1/predict", json=skewed).status_code == 200
    drift_ks = service.metric("gitops_ml_feature_drift", feature="tenure", test="ks")
    drift_psi = service.metric("gitops_ml_feature_drift", feature="Contract", test="psi")
    assert calm_ks < 0.15 and calm_psi < 0.1, (calm_ks, calm_psi)
    assert drift_ks > 0.5 and drift_psi > 0.5, (drift_ks, drift_psi)


def test_shadow_model_runs_off_the_request_path_and_exports_agreement(service,
                                                                      served_registry):
    reg = served_registry
    records = reg.records(400, start=0)

    def counts() -> tuple[float, float]:
        return (service.metric("gitops_ml_shadow_predictions_total", agreement="agree") or 0,
                service.metric("gitops_ml_shadow_predictions_total", agreement="disagree") or 0)

    service.wait_until(lambda: service.get("/v1/model").json()["shadow"]["compared_rows"] ==
                       sum(counts()), 20, "earlier traffic compared")
    agree0, disagree0 = counts()
    primary = service.post("/v1/predict", json=records).json()["predictions"]
    shadow_labels = list(reg.models[2].predict(reg.rows.iloc[:400]))
    disagreements = sum(p["prediction"] != s for p, s in zip(primary, shadow_labels))
    assert disagreements > 0, "the fixture's two versions should disagree somewhere"
    service.wait_until(lambda: sum(counts()) == agree0 + disagree0 + 400, 20,
                       "400 more shadow comparisons")
    assert counts() == (agree0 + 400 - disagreements, disagree0 + disagreements)
    assert 0.0 < service.metric("gitops_ml_shadow_agreement") < 1.0


def test_requests_are_counted_by_route_and_status(service, served_registry):
    def count(route: str, method: str, status: str) -> float:
        return service.metric("gitops_ml_requests_total", route=route, method=method,
                              status=status) or 0

    refused, missing = count("/v1/predict", "POST", "422"), count("other", "GET", "404")
    timed = service.metric("gitops_ml_request_duration_seconds_count", route="/v1/predict") or 0
    service.post("/v1/predict", json={"tenure": 1})
    service.get("/no/such/page")
    service.get("/another/unknown/page")
    assert count("/v1/predict", "POST", "422") == refused + 1
    assert count("other", "GET", "404") == missing + 2
    assert service.metric("gitops_ml_request_duration_seconds_count",
                          route="/v1/predict") == timed + 1


SCHEMATHESIS_CHECKS = ("not_a_server_error", "status_code_conformance",
                       "content_type_conformance", "response_schema_conformance")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(served_registry, tmp_path):
    pin = write_pin(tmp_path / "model.yaml", served_registry, 1)
    running = start_service(tmp_path, served_registry, pin, MAX_BATCH_ROWS="50",
                            DATABASE_URL=sqlite_log(tmp_path / "log.db"))
    try:
        running.wait_ready(1)
        _schemathesis(running.url, tmp_path)
    finally:
        running.stop()


def _schemathesis(url: str, cwd: Path) -> None:
    st = Path(sys.executable).parent / "st"
    proc = subprocess.run(
        [str(st), "run", f"{url}/schema/openapi.json",
         "--checks", ",".join(SCHEMATHESIS_CHECKS),
         "--max-examples", "40", "--seed", "1", "--no-color",
         "--generation-database", "none"],
        check=False, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_empty_pin_keeps_the_service_up_but_not_ready(tmp_path, served_registry):
    pin = write_pin(tmp_path / "model.yaml", None, None, environment="production")
    with in_process(tmp_path, served_registry, pin) as svc:
        body = svc.wait_until(lambda: svc.get("/ready").json().get("reason"), 30, "a reason")
        ready = svc.get("/ready")
        assert ready.status_code == 503
        assert body == "nothing promoted to production"
        predict = svc.post("/v1/predict", json={})
        assert predict.status_code == 503 and "nothing promoted to production" in \
            predict.json()["detail"]
        assert svc.get("/health").status_code == 200
        assert svc.metric("gitops_ml_model_ready") == 0.0


def test_a_pin_whose_digest_does_not_match_is_never_loaded(tmp_path, served_registry):
    pin = write_pin(tmp_path / "model.yaml", served_registry, 3)
    with in_process(tmp_path, served_registry, pin) as svc:
        failure = svc.wait_until(lambda: svc.get("/ready").json().get("failure"), 30, "failure")
        assert svc.get("/ready").status_code == 503
        assert failure["reason"] == "digest_mismatch" and "models:/churn/3" in failure["message"]
        assert svc.metric("gitops_ml_model_load_failures_total", reason="digest_mismatch") == 1
        assert svc.post("/v1/predict", json={}).status_code == 503


def test_a_missing_pin_file_is_reported_once_and_picked_up_when_it_appears(
        tmp_path, served_registry):
    pin = tmp_path / "mounted" / "model.yaml"
    with in_process(tmp_path, served_registry, pin, pin_poll_seconds=0) as svc:
        reason = svc.wait_until(lambda: svc.get("/ready").json().get("reason"), 30, "a reason")
        assert reason.startswith("invalid_pin: cannot read pin file") and str(pin) in reason
        for _ in range(5):  # five more polls of the still missing file
            svc.poll_pin()
        assert svc.metric("gitops_ml_model_load_failures_total", reason="invalid_pin") == 1.0
        pin.parent.mkdir()
        write_pin(pin, served_registry, 1)
        svc.poll_pin()
        assert svc.wait_ready(1)["failure"] is None


def test_the_published_request_schema_is_the_models_signature(service, served_registry):
    doc = service.get("/schema/openapi.json").json()
    body = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    record, batch = body["schema"]["oneOf"]
    assert batch["type"] == "array" and batch["maxItems"] == 500 and batch["minItems"] == 1
    signature = service.get("/v1/model").json()["signature"]
    assert record["required"] == [f["name"] for f in signature["features"]]
    assert record["additionalProperties"] is False
    props = record["properties"]
    assert props["Contract"]["enum"] == ["Month-to-month", "One year", "Two year"]
    assert (props["tenure"]["type"], props["tenure"]["minimum"]) == ("integer", 0)
    assert props["MonthlyCharges"]["type"] == "number"
