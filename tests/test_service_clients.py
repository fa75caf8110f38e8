"""Existing clients, unchanged, against the real service on a port: tritonclient speaks the
Open Inference Protocol to it, and MLflow's scoring format gets what `mlflow models serve`
answers for the same registered version."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from servers import free_port, launch, stop, wait_for
from service_fixtures import MODEL, start_service, write_pin

pytest_plugins = ("service_fixtures",)
pytestmark = pytest.mark.slow
TASKS = ("binary", "multiclass", "regression")
_NUMPY = {"BYTES": object, "INT64": np.int64, "FP64": np.float64}


@pytest.fixture(scope="module", params=TASKS)
def running(request, served_registry, tmp_path_factory):
    task = served_registry.tasks[request.param]
    tmp = tmp_path_factory.mktemp(f"clients-{request.param}")
    pin = write_pin(tmp / "model.yaml", served_registry, 1, model=task.name)
    service = start_service(tmp, served_registry, pin, MAX_BATCH_ROWS="200")
    try:
        service.wait_ready(1)
        yield service, task
    finally:
        service.stop()


def _triton_inputs(metadata: dict, records: list[dict], binary: bool):
    """Inputs built from the model's metadata, as a Triton user writes them."""
    import tritonclient.http as triton

    inputs = []
    for spec in metadata["inputs"]:
        kind = _NUMPY[spec["datatype"]]
        empty = "" if kind is object else np.nan
        values = [empty if r[spec["name"]] is None else r[spec["name"]] for r in records]
        array = np.array(values, dtype=kind).reshape(len(records), 1)
        tensor = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("rows, binary", [(1, False), (1, True), (100, True), (100, False)])
def test_tritonclient_gets_what_v1_answers(running, rows, binary):
    import tritonclient.http as triton

    service, task = running
    client = triton.InferenceServerClient(service.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(task.name) and client.is_model_ready(task.name, "1")
    assert not client.is_model_ready(task.name, "2")
    metadata = client.get_model_metadata(task.name, "1")
    records = task.records(rows + 20, start=17)
    if not binary:  # tritonclient writes NaN into JSON, which JSON has not: no empty values
        records = [r for r in records if None not in r.values()]
    records = records[:rows]
    assert len(records) == rows
    result = client.infer(task.name, _triton_inputs(metadata, records, binary),
                          model_version="1", request_id="r1")
    v1 = service.post("/v1/predict", json=records if rows > 1 else records[0]).json()
    expected = v1["predictions"] if rows > 1 else [v1]
    predicted = result.as_numpy("prediction")
    if task.task == "regression":
        assert predicted.tolist() == [e["prediction"] for e in expected]
    else:
        assert [p.decode() if isinstance(p, bytes) else p for p in predicted.tolist()] == \
            [e["prediction"] for e in expected]
    if task.task == "binary":
        assert result.as_numpy("probability").tolist() == [e["probability"] for e in expected]
    if task.task == "multiclass":
        classes = metadata["parameters"]["classes"]
        assert result.as_numpy("probabilities").tolist() == [
            [e["probabilities"][c] for c in classes] for e in expected]
    response = result.get_response()
    assert response["id"] == "r1" and len(response["parameters"]["prediction_ids"]) == rows


def test_tritonclient_sees_refusals_as_errors_not_crashes(running):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    service, task = running
    client = triton.InferenceServerClient(service.url.removeprefix("http://"))
    metadata = client.get_model_metadata(task.name)
    inputs = _triton_inputs(metadata, task.records(2), binary=True)
    with pytest.raises(InferenceServerException, match="missing"):
        client.infer(task.name, inputs[1:])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("no-such-model", inputs)


@pytest.fixture(scope="module")
def mlflow_serve(served_registry, tmp_path_factory):
    """`mlflow models serve` on churn version 1, started once."""
    tmp = tmp_path_factory.mktemp("mlflow-serve")
    port = free_port()
    log = tmp / "mlflow.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": served_registry.uri,
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = launch([str(mlflow), "models", "serve", "-m", f"models:/{MODEL}/1",
                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], log,
                  cwd=tmp, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("mlflow models serve", lambda: httpx.get(f"{url}/ping").status_code == 200,
                 180, proc=proc, log=log)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def churn_service(served_registry, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("invocations")
    service = start_service(tmp, served_registry, write_pin(tmp / "model.yaml",
                                                            served_registry, 1))
    try:
        service.wait_ready(1)
        yield service
    finally:
        service.stop()


def _formats(records: list[dict]) -> dict[str, dict]:
    columns = list(records[0])
    return {"dataframe_split": {"dataframe_split": {
                "columns": columns, "data": [[r[c] for c in columns] for r in records]}},
            "dataframe_records": {"dataframe_records": records},
            "instances": {"instances": records}}


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "instances"])
def test_invocations_answer_what_mlflow_models_serve_answers(churn_service, mlflow_serve,
                                                             served_registry, fmt):
    records = served_registry.records(100, start=50)
    body = _formats(records)[fmt]
    ours = httpx.post(f"{churn_service.url}/invocations", json=body, timeout=30)
    theirs = httpx.post(f"{mlflow_serve}/invocations", json=body, timeout=30)
    assert theirs.status_code == 200, theirs.text
    assert ours.status_code == 200, ours.text
    assert set(ours.json()) == set(theirs.json()) == {"predictions"}
    got, expected = ours.json()["predictions"], theirs.json()["predictions"]
    assert np.shape(got) == np.shape(expected) == (100, 2)
    # onnxruntime against scikit-learn: the export's parity bound, no more.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
