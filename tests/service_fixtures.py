"""Fixtures for the service tests: a real MLflow registry holding real churn models, pins,
and the service itself running as a process on a local port.

Loaded as a pytest plugin (conftest.py), so the session-scoped registry is built once however
many modules use it; modules import only the helpers (`from service_fixtures import write_pin`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from servers import free_port, launch, stop, wait_for

from contracts.pin import Pin

MODEL = "churn"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServedRegistry:
    """A SQLite MLflow store with registered churn versions, and rows to ask them about."""

    uri: str
    root: Path
    digests: dict[int, str]          # version -> registered sha256
    models: dict[int, Any]           # version -> the scikit-learn pipeline it holds
    rows: pd.DataFrame               # held-out feature rows (typed as the model expects)
    labels: pd.Series                # their true labels
    roles: dict[str, int] = field(default_factory=dict)

    def records(self, n: int, start: int = 0) -> list[dict[str, Any]]:
        """Held-out rows as JSON records, the way a client sends them."""
        return json.loads(self.rows.iloc[start:start + n].to_json(orient="records"))


@pytest.fixture(scope="session")
def served_registry(tmp_path_factory) -> ServedRegistry:
    """Registry with: v1 and v2 (two good models that disagree on some rows), v3 (its stored
    files were changed after registration) and v4 (registered with a model file that is not
    a model: its digest matches, loading fails). Built once per session."""
    return _build(tmp_path_factory.mktemp("served-registry"))


def _telco() -> pd.DataFrame:
    from pipelines.source import packaged_dataset
    from pipelines.stages import ingest

    return ingest.validate(ingest.read_source(packaged_dataset())).valid


def _models_dir(dst: Path, model, train: pd.DataFrame, test: pd.DataFrame) -> Path:
    import skops.io as sio

    from contracts.files import atomic_write_text
    from pipelines.stages import export_onnx
    from pipelines.stages import train as train_stage

    dst.mkdir(parents=True)
    (dst / "model.skops").write_bytes(sio.dumps(model))
    signature = train_stage.signature(model)
    signature.write(dst / "signature.json")
    reference = train_stage.reference(train, model, 500, 0)
    atomic_write_text(dst / "reference.json", json.dumps(reference))
    onnx_bytes = export_onnx.convert(model, signature)
    assert export_onnx.parity(model, onnx_bytes, test, signature).ok
    (dst / "model.onnx").write_bytes(onnx_bytes)
    (dst / "metrics.json").write_text(json.dumps({"roc_auc": {"value": 0.84}}))
    (dst / "gate.json").write_text(json.dumps({"passed": True, "rules": []}))
    return dst


def _build(root: Path) -> ServedRegistry:
    from sklearn.linear_model import LogisticRegression

    from contracts.digest import bundle_sha256
    from pipelines.registry import bundle
    from pipelines.registry import store as registry
    from pipelines.stages.features import build_pipeline, features, target

    data = _telco().sample(frac=1.0, random_state=3).reset_index(drop=True)
    train, test = data.iloc[:3000], data.iloc[3000:3600].reset_index(drop=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    models, digests = {}, {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        client = registry.client()
        exp = client.create_experiment(MODEL, artifact_location=(root / "artifacts").as_uri())
        # v2 is regularized hard, so the two versions disagree on a share of rows.
        specs = {1: 1.0, 2: 0.002, 3: 1.0, 4: 1.0}
        for version, c in specs.items():
            model = build_pipeline(LogisticRegression(C=c, max_iter=2000)).fit(
                features(train), target(train))
            models[version] = model
            src = _models_dir(root / f"models-v{version}", model, train, test)
            dst = bundle.build(src, test.head(3), root / f"bundle-v{version}", "card\n")
            if version == 4:
                (dst / "model.skops").write_bytes(b"this is not a skops file")
            run_id = client.create_run(exp).info.run_id
            info = registry.register_bundle(dst, MODEL, run_id=run_id, tags={
                "gate": "passed", "run_id": run_id, "git_commit": f"{version:x}" * 40,
                "data_hash": f"{version}" * 32})
            assert info.version == version
            digests[version] = info.sha256
            client.set_terminated(run_id)
        stored = Path(registry.get_version(MODEL, 3).source.removeprefix("file://"))
        (stored / "reference.json").write_text("{}")  # changed after registration
        assert bundle_sha256(stored) != digests[3]
    return ServedRegistry(uri=uri, root=root, digests=digests, models=models,
                          rows=features(test), labels=target(test),
                          roles={"good": 1, "other": 2, "tampered": 3, "corrupt": 4})


def write_pin(path: Path, reg: ServedRegistry | None, version: int | None,
              environment: str = "staging", shadow: int | None = None) -> Path:
    """Write a pin for `version` (None: nothing promoted) the way `mlops promote` does."""
    if version is None:
        Pin(environment=environment).write(path)
        return path
    assert reg is not None

    def ref(v: int) -> dict[str, Any]:
        return {"name": MODEL, "version": v, "uri": f"models:/{MODEL}/{v}",
                "sha256": reg.digests[v]}

    Pin.model_validate({
        "environment": environment, "model": ref(version),
        "lineage": {"run_id": f"run-{version}", "git_commit": f"{version:x}" * 40,
                    "data_hash": f"{version}" * 32, "params": {"train.estimator": "lr"}},
        "metrics": {"roc_auc": 0.84},
        "promoted": {"by": "Test Person", "at": datetime.now(UTC).isoformat()},
        "shadow": ref(shadow) if shadow else None,
    }).write(path)
    return path


@dataclass
class RunningService:
    """The service as a separate process on a local port."""

    url: str
    proc: subprocess.Popen
    log: Path
    pin: Path

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kwargs)

    def metric(self, name: str, **labels: str) -> float | None:
        """Value of one series on /metrics (None when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return sample.value
        return None

    def wait_until(self, predicate, timeout: float = 30.0, what: str = "condition"):
        """Poll `predicate()` until it returns something truthy."""
        return wait_for(what, predicate, timeout, every=0.1, proc=self.proc, log=self.log)

    def wait_ready(self, version: int | None = None, timeout: float = 60.0) -> dict:
        def ready():
            r = self.get("/ready")
            body = r.json()
            return body if r.status_code == 200 and (
                version is None or body["version"] == version) else None
        return self.wait_until(ready, timeout, f"/ready with version {version}")

    def stop(self) -> None:
        stop(self.proc)


def start_service(tmp: Path, reg: ServedRegistry, pin: Path, **env: str) -> RunningService:
    """Start `python -m service` on a free port; returns once /health answers."""
    port = free_port()
    log = tmp / f"service-{port}.log"
    environ = {
        **os.environ,
        "MODEL_PIN": str(pin),
        "MLFLOW_TRACKING_URI": reg.uri,
        "MODEL_CACHE_DIR": str(tmp / "model-cache"),
        "PIN_POLL_SECONDS": "0.2",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    proc = launch([sys.executable, "-m", "service", "--port", str(port)], log,
                  cwd=tmp, env=environ)
    service = RunningService(f"http://127.0.0.1:{port}", proc, log, pin)
    service.wait_until(lambda: service.get("/health").status_code == 200, 60, "/health")
    return service


@pytest.fixture()
def service_factory(tmp_path, served_registry):
    """Start services for one test; every one is stopped afterwards."""
    started: list[RunningService] = []

    def start(pin: Path, **env: str) -> RunningService:
        service = start_service(tmp_path, served_registry, pin, **env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def sklearn_probability(reg: ServedRegistry, version: int, rows: pd.DataFrame) -> np.ndarray:
    """What the registered scikit-learn model says: P(Churn=Yes) per row."""
    model = reg.models[version]
    return model.predict_proba(rows)[:, list(model.classes_).index("Yes")]
