"""The Open Inference Protocol v2 and MLflow's /invocations beside /v1, for every task: same
answers, same rules, same metrics and prediction ids; each protocol's own error bodies.
In process; the real clients (tritonclient, mlflow models serve) are in
tests/test_service_clients.py."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from service_fixtures import in_process, sqlite_log, write_pin

pytest_plugins = ("service_fixtures",)
TASKS = ("binary", "multiclass", "regression")


def datatype(f) -> str:
    """What the metadata says: an integer that may be empty travels as FP64 (NaN = empty)."""
    if f.type == "category":
        return "BYTES"
    return "INT64" if f.type == "integer" and not f.nullable else "FP64"

OUTPUTS = {"binary": ["prediction", "probability"], "multiclass": ["prediction", "probabilities"],
           "regression": ["prediction"]}


@pytest.fixture(scope="module", params=TASKS)
def served(request, served_registry, tmp_path_factory):
    task = served_registry.tasks[request.param]
    tmp = tmp_path_factory.mktemp(f"protocols-{request.param}")
    pin = write_pin(tmp / "model.yaml", served_registry, 1, model=task.name)
    with in_process(tmp, served_registry, pin, max_batch_rows=200, max_body_bytes=300_000,
                    drift_window_rows=1000, database_url=sqlite_log(tmp / "log.db")) as svc:
        svc.wait_ready(1)
        yield svc, task


def tensors(task, records: list[dict], nested: bool = False) -> list[dict]:
    """One JSON input tensor per feature, as an OIP client builds them from the metadata."""
    out = []
    for f in task.signature.features:
        values = [r[f.name] for r in records]
        out.append({"name": f.name, "datatype": datatype(f),
                    "shape": [len(records), 1] if nested else [len(records)],
                    "data": [[v] for v in values] if nested else values})
    return out


def _v1(svc, records):
    r = svc.post("/v1/predict", json=records)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def _outputs(body: dict) -> dict[str, dict]:
    return {o["name"]: o for o in body["outputs"]}


def test_metadata_names_every_feature_with_its_datatype_and_the_tasks_outputs(served):
    svc, task = served
    for path in (f"/v2/models/{task.name}", f"/v2/models/{task.name}/versions/1"):
        meta = svc.get(path).json()
        assert meta["name"] == task.name and meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": f.name, "datatype": datatype(f),
                                   "shape": [-1, 1]} for f in task.signature.features]
        assert [o["name"] for o in meta["outputs"]] == OUTPUTS[task.task]
        assert meta["parameters"]["task"] == task.task
    for path in (f"/v2/models/{task.name}/versions/2", "/v2/models/other",
                 "/v2/models/other/ready", f"/v2/models/{task.name}/versions/7/ready"):
        r = svc.get(path)
        assert r.status_code == 404 and set(r.json()) == {"error"}, (path, r.text)
    assert svc.get("/v2/health/live").json() == {"live": True}
    assert svc.get("/v2/health/ready").json() == {"ready": True}
    assert svc.get(f"/v2/models/{task.name}/ready").json()["ready"] is True
    assert svc.get(f"/v2/models/{task.name}/versions/1/ready").status_code == 200
    assert svc.get("/v2").json()["name"] == "gitops-ml"


@pytest.mark.parametrize("nested", [False, True])
def test_infer_answers_what_v1_answers_and_its_ids_take_feedback(served, nested):
    svc, task = served
    records = task.records(50, start=11)
    expected = _v1(svc, records)
    rows_before = svc.metric("gitops_ml_drift_window_rows")
    r = svc.post(f"/v2/models/{task.name}/versions/1/infer",
                 json={"id": "req-7", "inputs": tensors(task, records, nested)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (task.name, "1", "req-7")
    out = _outputs(body)
    assert list(out) == OUTPUTS[task.task]
    assert out["prediction"]["shape"] == [50]
    assert out["prediction"]["data"] == [e["prediction"] for e in expected]
    if task.task == "binary":
        assert out["probability"]["data"] == [e["probability"] for e in expected]
    if task.task == "multiclass":
        classes = task.signature.classes
        assert out["probabilities"]["shape"] == [50, len(classes)]
        grid = np.reshape(out["probabilities"]["data"], (50, len(classes)))
        assert grid.tolist() == [[e["probabilities"][c] for c in classes] for e in expected]
    assert svc.metric("gitops_ml_drift_window_rows") == rows_before + 50
    assert svc.metric("gitops_ml_requests_total", route="/v2/models/{name}/versions/{version}/infer",
                      method="POST", status="200") >= 1
    ids = body["parameters"]["prediction_ids"]
    assert len(set(ids)) == 50 and not set(ids) & {e["prediction_id"] for e in expected}
    truth = task.truth.iloc[11]
    label = float(truth) if task.task == "regression" else str(truth)
    feedback = svc.post("/v1/feedback", json={"prediction_id": ids[0], "label": label})
    assert feedback.status_code == 200, feedback.text


def test_infer_returns_only_the_outputs_asked_for(served):
    svc, task = served
    r = svc.post(f"/v2/models/{task.name}/infer", json={
        "inputs": tensors(task, task.records(2)), "outputs": [{"name": "prediction"}]})
    assert [o["name"] for o in r.json()["outputs"]] == ["prediction"]
    r = svc.post(f"/v2/models/{task.name}/infer", json={
        "inputs": tensors(task, task.records(2)), "outputs": [{"name": "logits"}]})
    assert r.status_code == 400 and "logits" in r.json()["error"]


def _binary_body(task, records, corrupt=None) -> tuple[bytes, dict]:
    """The binary tensor extension, as tritonclient sends it; `corrupt(name, bytes)` may
    change one input's bytes."""
    header, blobs = [], []
    for f in task.signature.features:
        values = [r[f.name] for r in records]
        if f.type == "category":
            blob = b"".join(struct.pack("<I", len(v.encode())) + v.encode()
                            for v in ("" if v is None else v for v in values))
        else:
            blob = np.asarray([np.nan if v is None else v for v in values],
                              dtype="<i8" if datatype(f) == "INT64" else "<f8").tobytes()
        if corrupt is not None:
            blob = corrupt(f, blob)
        blobs.append(blob)
        header.append({"name": f.name, "datatype": datatype(f), "shape": [len(values), 1],
                       "parameters": {"binary_data_size": len(blob)}})
    head = json.dumps({"inputs": header}).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head)),
                                    "Content-Type": "application/octet-stream"}


def test_binary_tensors_answer_what_json_tensors_answer(served):
    svc, task = served
    records = task.records(30, start=4)
    body, headers = _binary_body(task, records)
    r = svc.post(f"/v2/models/{task.name}/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert _outputs(r.json())["prediction"]["data"] == [e["prediction"] for e in _v1(svc, records)]


def _hostile(task) -> dict[str, tuple[bytes, dict]]:
    """case -> (body, headers): malformed tensors and requests."""
    sig = task.signature
    records = task.records(3)
    good = tensors(task, records)
    number = next(i for i, f in enumerate(sig.features)
                  if f.type != "category" and not f.nullable)
    json_headers = {"Content-Type": "application/json"}

    def with_input(i: int, **change) -> bytes:
        inputs = [dict(t) for t in good]
        inputs[i].update(change)
        return json.dumps({"inputs": inputs}).encode()

    cases = {
        "wrong shape": with_input(0, shape=[3, 2]),
        "three dimensions": with_input(0, shape=[3, 1, 1]),
        "rows disagree": with_input(0, shape=[2], data=good[0]["data"][:2]),
        "shape and data disagree": with_input(0, shape=[5]),
        "no rows": with_input(0, shape=[0], data=[]),
        "too many rows": json.dumps({"inputs": tensors(task, task.records(201))}).encode(),
        "wrong datatype": with_input(number, datatype="FP32"),
        "string for a number": with_input(number, data=["a", "b", "c"]),
        "missing input": json.dumps({"inputs": good[1:]}).encode(),
        "unknown input": json.dumps({"inputs": [*good, {**good[0], "name": "colour"}]}).encode(),
        "input twice": json.dumps({"inputs": [*good, good[0]]}).encode(),
        "no data": with_input(0, data=None),
        "out of range": with_input(number, data=[-1e300] * 3) if sig.features[number].min
        is not None else with_input(number, data=[1e999] * 3),
        "not JSON": b"inputs=1",
        "empty body": b"",
        "no inputs key": b'{"outputs": []}',
        "NaN literal": with_input(number).replace(b'"data": [', b'"data": [NaN, ', 1),
    }
    out = {k: (v, json_headers) for k, v in cases.items()}
    category = next((f for f in sig.features if f.type == "category"), None)
    if category is not None:
        nan = struct.pack("<I", 3) + b"nan"
        out["NaN in a categorical (binary)"] = _binary_body(
            task, records, lambda f, b: nan * 3 if f is category else b)
        out["BYTES for a number"] = (with_input(number, datatype="BYTES"), json_headers)
    out["NaN in a number that may not be empty (binary)"] = _binary_body(
        task, records, lambda f, b: np.full(3, np.nan).tobytes() if f is sig.features[number]
        else b)
    out["binary size beyond the body"] = _binary_body(
        task, records, lambda f, b: b[:-1] if f is sig.features[-1] else b)
    body, headers = _binary_body(task, records)
    out["header length beyond the body"] = (body, {
        **headers, "Inference-Header-Content-Length": str(len(body) + 10)})
    return out


HOSTILE = ["wrong shape", "three dimensions", "rows disagree", "shape and data disagree",
           "no rows", "too many rows", "wrong datatype", "string for a number",
           "missing input", "unknown input", "input twice", "no data", "out of range",
           "not JSON", "empty body", "no inputs key", "NaN literal",
           "NaN in a categorical (binary)", "BYTES for a number",
           "NaN in a number that may not be empty (binary)", "binary size beyond the body",
           "header length beyond the body"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_tensors_get_400_with_the_protocols_error_body(served, case):
    svc, task = served
    cases = _hostile(task)
    if case not in cases:
        assert task.task != "binary", f"{case} applies to the binary model"
        return  # the task's model has no categorical feature
    body, headers = cases[case]
    r = svc.post(f"/v2/models/{task.name}/infer", content=body, headers=headers)
    assert r.status_code == 400, (case, r.text)
    assert set(r.json()) == {"error"} and r.json()["error"]


@pytest.mark.parametrize("served", ["multiclass"], indirect=True)
def test_an_integer_that_may_be_empty_travels_as_fp64_and_must_be_whole(served):
    svc, task = served
    inputs = tensors(task, task.records(2))
    magnesium = next(t for t in inputs if t["name"] == "magnesium")
    assert magnesium["datatype"] == "FP64"
    magnesium["data"] = [None, 101.0]
    assert svc.post(f"/v2/models/{task.name}/infer", json={"inputs": inputs}).status_code == 200
    magnesium["data"] = [100.5, 101.0]
    r = svc.post(f"/v2/models/{task.name}/infer", json={"inputs": inputs})
    assert r.status_code == 400 and "magnesium must be an integer" in r.json()["error"]


def test_v2_names_the_feature_and_rule_like_v1(served):
    svc, task = served
    number = next(f for f in task.signature.features if f.type != "category" and not f.nullable)
    inputs = tensors(task, task.records(2))
    for t in inputs:
        if t["name"] == number.name:
            t["data"] = ["twelve", "twelve"]
    r = svc.post(f"/v2/models/{task.name}/infer", json={"inputs": inputs})
    assert r.status_code == 400 and number.name in r.json()["error"]
    assert "must be a number" in r.json()["error"] or "must be an integer" in r.json()["error"]


def test_oversized_bodies_get_413_in_each_protocols_shape(served):
    svc, task = served
    huge = b'{"inputs": [' + b" " * 400_000 + b"]}"
    r = svc.post(f"/v2/models/{task.name}/infer", content=huge)
    assert r.status_code == 413 and set(r.json()) == {"error"}
    r = svc.post("/invocations", content=huge)
    assert r.status_code == 413 and r.json()["error_code"] == "BAD_REQUEST"


def test_invocations_accept_each_of_mlflows_formats_with_the_same_answer(served):
    svc, task = served
    records = task.records(25, start=2)
    names = task.signature.feature_names
    bodies = {
        "dataframe_split": {"dataframe_split": {
            "columns": names[::-1], "data": [[r[n] for n in names[::-1]] for r in records]}},
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs as columns": {"inputs": {n: [r[n] for r in records] for n in names}},
    }
    answers = {}
    for kind, body in bodies.items():
        r = svc.post("/invocations", json=body)
        assert r.status_code == 200, (kind, r.text)
        assert set(r.json()) == {"predictions"}
        answers[kind] = r.json()["predictions"]
    first = answers["dataframe_split"]
    assert all(a == first for a in answers.values())
    _, expected = task.expected(records)
    np.testing.assert_allclose(np.asarray(first), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("body", [
    b"not json", b"{}", b'{"dataframe_records": [], "instances": []}',
    b'{"dataframe_records": []}', b'{"dataframe_records": [{"colour": 1}]}',
    b'{"dataframe_split": {"columns": ["a"], "data": [[1]]}}', b'{"something": 1}',
    b'{"inputs": {"a": [1]}}',
])
def test_invocations_refuse_bad_bodies_with_mlflows_error_body(served, body):
    svc, _ = served
    r = svc.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "BAD_REQUEST" and r.json()["message"]


def test_the_openapi_document_describes_every_endpoint(served):
    svc, task = served
    paths = svc.get("/schema/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/feedback", "/v1/model", "/health", "/ready", "/invocations",
            "/ping", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}",
            "/v2/models/{name}/ready", "/v2/models/{name}/infer",
            "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready",
            "/v2/models/{name}/versions/{version}/infer"} <= set(paths)
    infer = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]
    named = [t["properties"]["name"]["enum"][0]
             for t in infer["schema"]["properties"]["inputs"]["items"]["oneOf"]]
    assert named == task.signature.feature_names


def test_nothing_is_served_before_a_model_is_ready(served_registry, tmp_path):
    pin = write_pin(tmp_path / "model.yaml", served_registry, 3)  # its digest does not match
    with in_process(tmp_path, served_registry, pin) as svc:
        svc.wait_until(lambda: svc.get("/ready").json().get("failure"), 30, "failure")
        assert svc.get("/v2/health/ready").status_code == 503
        r = svc.post("/v2/models/churn/infer", json={"inputs": []})
        assert r.status_code == 503 and "not ready" in r.json()["error"]
        assert svc.get("/v2/models/other").status_code == 404
        r = svc.post("/invocations", json={"dataframe_records": []})
        assert r.status_code == 503 and r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert svc.get("/ping").status_code == 503
