"""One image, any declared model: answers, feedback, metrics and drift follow the task
(binary, multiclass, regression). In process, through Litestar's test client."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from service_fixtures import ODD_NAME, in_process, sqlite_log, write_pin

pytest_plugins = ("service_fixtures",)
TASKS = ("binary", "multiclass", "regression")
ROW_KEYS = {"binary": {"prediction", "probability", "prediction_id"},
            "multiclass": {"prediction", "probabilities", "prediction_id"},
            "regression": {"prediction", "prediction_id"}}


@pytest.fixture(scope="module", params=TASKS)
def served(request, served_registry, tmp_path_factory):
    """The task's model in service, in process; (service, the model's fixture data)."""
    task = served_registry.tasks[request.param]
    tmp = tmp_path_factory.mktemp(f"task-{request.param}")
    pin = write_pin(tmp / "model.yaml", served_registry, 1, model=task.name)
    with in_process(tmp, served_registry, pin, drift_window_rows=100, drift_min_rows=50,
                    max_batch_rows=300, max_body_bytes=200_000) as svc:
        svc.wait_ready(1)
        yield svc, task


@pytest.fixture()
def fresh(served_registry, tmp_path):
    """A service of its own per test, on an empty prediction log (SQLite)."""
    def start(task_name: str):
        task = served_registry.tasks[task_name]
        pin = write_pin(tmp_path / "model.yaml", served_registry, 1, model=task.name)
        return in_process(tmp_path, served_registry, pin,
                          database_url=sqlite_log(tmp_path / "log.db")), task
    return start


def _check_rows(task, rows: list[dict], records: list[dict]) -> None:
    labels, scores = task.expected(records)
    # Outside an A/B test every row names no variant, and the version that answered it.
    assert all(set(r) == ROW_KEYS[task.task] | {"version", "variant"} for r in rows), rows[0]
    assert all(r["variant"] is None and r["version"] == task.version for r in rows)
    if task.task == "regression":
        got = np.array([r["prediction"] for r in rows])
        assert np.max(np.abs(got - scores) / (1 + np.abs(scores))) < 1e-5
        return
    assert [r["prediction"] for r in rows] == labels
    classes = list(task.signature.classes)
    if task.task == "binary":
        got = np.array([r["probability"] for r in rows])
        expected = scores[:, classes.index(task.signature.positive_class)]
    else:
        assert all(list(r["probabilities"]) == classes for r in rows)
        got = np.array([[r["probabilities"][c] for c in classes] for r in rows])
        expected = scores
    assert np.max(np.abs(got - expected)) < 1e-6


def test_answers_are_the_registered_models_for_each_task(served):
    svc, task = served
    records = task.records(120, start=3)
    batch = svc.post("/v1/predict", json=records)
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert (body["model"], body["version"]) == (task.name, 1)
    _check_rows(task, body["predictions"], records)
    assert len({r["prediction_id"] for r in body["predictions"]}) == 120
    one = svc.post("/v1/predict", json=records[0])
    assert one.status_code == 200
    single = one.json()
    assert set(single) == ROW_KEYS[task.task] | {"model", "version", "variant"}
    _check_rows(task, [{k: v for k, v in single.items() if k != "model"}], records[:1])


@pytest.mark.parametrize("served", ["multiclass", "regression"], indirect=True)
def test_empty_values_of_nullable_features_are_imputed(served):
    svc, task = served
    nullable = [f for f in task.signature.features if f.nullable]
    assert {f.type for f in nullable} >= ({"category"} if task.task == "regression" else set())
    records = task.records(40)
    for k, record in enumerate(records):
        record[nullable[k % len(nullable)].name] = None
    r = svc.post("/v1/predict", json=records)
    assert r.status_code == 200, r.text
    _check_rows(task, r.json()["predictions"], records)
    # A feature that may not be empty still refuses null, naming it.
    required = next(f.name for f in task.signature.features if not f.nullable)
    refused = svc.post("/v1/predict", json=dict(records[0], **{required: None}))
    assert refused.status_code == 422 and refused.json()["extra"]["errors"][0]["field"] == required


@pytest.mark.parametrize("served", ["multiclass"], indirect=True)
def test_a_feature_name_that_is_not_an_identifier_works(served):
    svc, task = served
    record = task.records(1)[0]
    assert svc.post("/v1/predict", json=record).status_code == 200
    bad = svc.post("/v1/predict", json=dict(record, **{ODD_NAME: "high"}))
    assert bad.status_code == 422
    assert bad.json()["extra"]["errors"][0]["field"] == ODD_NAME
    schema = svc.get("/schema/openapi.json").json()
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert ODD_NAME in body["schema"]["oneOf"][0]["properties"]


def _bad_bodies(task) -> dict[str, tuple[bytes, int, str | None]]:
    """case -> (body, status, field named)."""
    good = task.records(1)[0]
    sig = task.signature
    first = sig.features[0].name
    number = next(f.name for f in sig.features if f.type != "category" and not f.nullable)
    without = {k: v for k, v in good.items() if k != first}
    text = json.dumps(good)
    return {
        "missing field": (json.dumps(without).encode(), 422, first),
        "wrong type": (json.dumps(dict(good, **{number: "twelve"})).encode(), 422, number),
        "null where not nullable": (json.dumps(dict(good, **{number: None})).encode(), 422,
                                    number),
        "unknown field": (json.dumps(dict(good, colour="blue")).encode(), 422, "colour"),
        "overflowing number": (text.replace(f'"{number}": {json.dumps(good[number])}',
                                            f'"{number}": 1e999').encode(), 422, number),
        "NaN literal": (text.replace(f'"{number}": {json.dumps(good[number])}',
                                     f'"{number}": NaN').encode(), 400, None),
        "not JSON": (b"tenure=12&Contract=One+year", 400, None),
        "empty body": (b"", 400, None),
        "oversize batch": (json.dumps([good] * 301).encode(), 422, None),
        "huge body": (json.dumps([good] * 2000).encode(), 413, None),
    }


@pytest.mark.parametrize("case", ["missing field", "wrong type", "null where not nullable",
                                  "unknown field", "overflowing number", "NaN literal",
                                  "not JSON", "empty body", "oversize batch", "huge body"])
def test_every_task_refuses_bad_input_the_same_way(served, case):
    svc, task = served
    body, status, field = _bad_bodies(task)[case]
    r = svc.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["status_code"] == status
    if field is not None:
        assert answer["extra"]["errors"][0]["field"] == field
        assert field in answer["detail"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize("task_name", TASKS)
def test_feedback_gives_live_accuracy_or_mae(fresh, task_name):
    context, task = fresh(task_name)
    with context as svc:
        svc.wait_ready(1)
        records = task.records(12, start=30)
        predictions = svc.post("/v1/predict", json=records).json()["predictions"]
        truth = [task.truth.iloc[(30 + i) % len(task.truth)] for i in range(12)]
        answers = []
        for p, t in zip(predictions, truth):
            label = float(t) if task.task == "regression" else str(t)
            r = svc.post("/v1/feedback", json={"prediction_id": p["prediction_id"], "label": label})
            assert r.status_code == 200, r.text
            answers.append(r.json())
        assert svc.metric("gitops_ml_feedback_quality", version="1", measure="labelled") == 12
        if task.task == "regression":
            errors = [abs(float(t) - p["prediction"]) for p, t in zip(predictions, truth)]
            assert [a["error"] for a in answers] == pytest.approx(errors, abs=1e-9)
            assert svc.metric("gitops_ml_feedback_mae") == pytest.approx(sum(errors) / 12,
                                                                         abs=1e-9)
            assert svc.metric("gitops_ml_feedback_total", outcome="scored") == 12
            assert math.isnan(svc.metric("gitops_ml_feedback_accuracy"))
            refused = svc.post("/v1/feedback", json={"prediction_id": predictions[0][
                "prediction_id"], "label": "high"})
            other = answers[0]["label"] + 1
        else:
            correct = sum(p["prediction"] == str(t) for p, t in zip(predictions, truth))
            assert [a["outcome"] for a in answers] == [
                "correct" if p["prediction"] == str(t) else "incorrect"
                for p, t in zip(predictions, truth)]
            assert svc.metric("gitops_ml_feedback_accuracy") == correct / 12
            assert svc.metric("gitops_ml_feedback_total", outcome="correct") == correct
            assert (svc.metric("gitops_ml_feedback_total", outcome="incorrect") or 0) == \
                12 - correct
            assert math.isnan(svc.metric("gitops_ml_feedback_mae"))
            refused = svc.post("/v1/feedback", json={"prediction_id": predictions[0][
                "prediction_id"], "label": 3.5})
            other = next(c for c in task.signature.classes if c != answers[0]["label"])
        assert refused.status_code == 422  # the other task's kind of label
        first = predictions[0]["prediction_id"]
        again = svc.post("/v1/feedback", json={"prediction_id": first,
                                               "label": answers[0]["label"]})
        assert again.status_code == 200 and again.json() == answers[0]
        changed = svc.post("/v1/feedback", json={"prediction_id": first, "label": other})
        assert changed.status_code == 409 and "already" in changed.json()["detail"]
        unknown = svc.post("/v1/feedback", json={"prediction_id": "nope-1",
                                                 "label": answers[0]["label"]})
        assert unknown.status_code == 404 and "unknown prediction id" in unknown.json()["detail"]


def test_metrics_follow_the_task_and_carry_the_pins_test_metrics(served):
    svc, task = served
    labels = {"model": task.name, "version": "1"}
    for name, value in task.metrics.items():
        assert svc.metric("gitops_ml_model_test_metric", metric=name) == value
    records = task.records(30, start=7)
    if task.task == "regression":
        before = svc.metric("gitops_ml_prediction_value_count", **labels) or 0
        body = svc.post("/v1/predict", json=records).json()
        assert svc.metric("gitops_ml_prediction_value_count", **labels) == before + 30
        assert svc.metric("gitops_ml_prediction_probability_count", **labels) is None
        return
    classes = task.signature.classes
    before = {c: svc.metric("gitops_ml_predictions_total", **labels, **{"class": c}) or 0
              for c in classes}
    body = svc.post("/v1/predict", json=records).json()
    predicted = [p["prediction"] for p in body["predictions"]]
    for c in classes:
        assert (svc.metric("gitops_ml_predictions_total", **labels, **{"class": c}) or 0) == \
            before[c] + predicted.count(c)
    if task.task == "multiclass":
        assert svc.metric("gitops_ml_prediction_probability_count", **labels) is None
        return
    count = svc.metric("gitops_ml_prediction_probability_count", **labels)
    half = svc.metric("gitops_ml_prediction_probability_bucket", le="0.5", **labels)
    body = svc.post("/v1/predict", json=records).json()
    below_half = sum(p["probability"] <= 0.5 for p in body["predictions"])
    assert svc.metric("gitops_ml_prediction_probability_count", **labels) == count + 30
    assert svc.metric("gitops_ml_prediction_probability_bucket", le="0.5", **labels) == \
        half + below_half


def test_drift_of_inputs_and_answers_is_measured_per_task(served):
    svc, task = served
    assert svc.post("/v1/predict", json=task.records(100, start=0)).status_code == 200
    assert svc.metric("gitops_ml_drift_window_rows") == 100
    test = "psi" if task.task == "multiclass" else "ks"
    number = max((f for f in task.signature.features if f.type != "category"),
                 key=lambda f: task.rows[f.name].nunique())
    assert svc.metric("gitops_ml_feature_drift", feature=number.name, test="ks") < 0.3
    assert svc.metric("gitops_ml_prediction_drift", test=test) < 0.3
    # One row, a hundred times, at the top of a feature's range: a point mass lies at least
    # 0.5 (KS) from any spread-out sample, and one class alone is far from the class shares.
    top = float(task.rows[number.name].max())
    record = dict(task.records(1)[0], **{number.name: int(top) if number.type == "integer"
                                         else top})
    assert svc.post("/v1/predict", json=[record] * 100).status_code == 200
    assert svc.metric("gitops_ml_feature_drift", feature=number.name, test="ks") > 0.9
    assert svc.metric("gitops_ml_prediction_drift", test=test) >= (1.0 if test == "psi" else 0.45)


@pytest.mark.parametrize("task_name", ["binary", "regression"])
def test_feedback_for_a_batch_is_recorded_whole_or_not_at_all(fresh, task_name):
    context, task = fresh(task_name)
    with context as svc:
        svc.wait_ready(1)
        predictions = svc.post("/v1/predict", json=task.records(5)).json()["predictions"]
        truth = [float(t) if task.task == "regression" else str(t) for t in task.truth.iloc[:5]]
        items = [{"prediction_id": p["prediction_id"], "label": t}
                 for p, t in zip(predictions, truth)]
        # One unknown id among good ones: refused, naming it, and nothing is recorded.
        bad = svc.post("/v1/feedback", json=[*items[:3], {"prediction_id": "0" * 32,
                                                         "label": truth[0]}])
        assert bad.status_code == 404 and "item 3" in bad.json()["detail"]
        other = truth[0] + 1 if task.task == "regression" else \
            next(c for c in task.signature.classes if c != truth[0])
        twice = svc.post("/v1/feedback", json=[items[0], dict(items[0], label=other)])
        assert twice.status_code == 409 and "item 0" in twice.json()["detail"]
        assert (svc.metric("gitops_ml_feedback_total", outcome="scored") or 0) == 0
        assert (svc.metric("gitops_ml_feedback_total", outcome="correct") or 0) == 0
        assert svc.metric("gitops_ml_feedback_quality", version="1", measure="labelled") is None
        stored = svc.post("/v1/feedback", json=items)
        assert stored.status_code == 200, stored.text
        body = stored.json()
        assert [f["prediction_id"] for f in body["feedback"]] == [i["prediction_id"]
                                                                 for i in items]
        assert svc.metric("gitops_ml_feedback_quality", version="1", measure="labelled") == 5
        if task.task == "regression":
            errors = [abs(t - p["prediction"]) for p, t in zip(predictions, truth)]
            assert svc.metric("gitops_ml_feedback_mae") == pytest.approx(sum(errors) / 5,
                                                                         abs=1e-9)
        else:
            correct = sum(p["prediction"] == t for p, t in zip(predictions, truth))
            assert svc.metric("gitops_ml_feedback_accuracy") == correct / 5
