"""Fixtures for the service tests: a real MLflow registry holding real models of each task,
pins, the app in process (Litestar's test client) and the service as a process on a port.

Loaded as a pytest plugin (conftest.py), so the session-scoped registry is built once however
many modules use it; modules import only the helpers (`from service_fixtures import write_pin`).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from servers import free_port, launch, stop, wait_for

from contracts.pin import Pin

MODEL = "churn"
ROOT = Path(__file__).resolve().parents[1]
# A feature name that is not a Python identifier, and features that may be empty.
ODD_NAME = "od280/od315"


@dataclass
class TaskModel:
    """One registered model of a task, with rows to ask it about and its scikit-learn twin."""

    name: str
    task: str
    version: int
    model: Any                       # the scikit-learn pipeline it holds
    signature: Any
    rows: pd.DataFrame               # feature rows, typed as the model expects
    truth: pd.Series                 # their true labels or values
    metrics: dict[str, float]        # what its pin records

    def records(self, n: int, start: int = 0) -> list[dict[str, Any]]:
        """Rows as JSON records, the way a client sends them (cycling when n is large)."""
        index = [(start + i) % len(self.rows) for i in range(n)]
        rows = self.rows.iloc[index].copy()
        for f in self.signature.features:
            if f.type == "integer":  # an integer column with blanks is float64 in pandas
                rows[f.name] = rows[f.name].astype("Int64")
            elif f.type == "category" and f.nullable:
                rows[f.name] = rows[f.name].replace("", None)
        return json.loads(rows.to_json(orient="records"))

    def expected(self, records: list[dict[str, Any]]) -> tuple[list | None, np.ndarray]:
        """What the scikit-learn model says about `records`: (labels, probabilities) or
        (None, values)."""
        from pipelines.stages.features import features

        x = features(pd.DataFrame(records, columns=self.signature.feature_names), self.signature)
        if self.task == "regression":
            return None, np.asarray(self.model.predict(x), dtype=float)
        return [str(v) for v in self.model.predict(x)], self.model.predict_proba(x)


@dataclass
class ServedRegistry:
    """A SQLite MLflow store with registered churn versions, one model of each other task,
    and rows to ask them about."""

    uri: str
    root: Path
    digests: dict[int, str]          # churn version -> registered sha256
    models: dict[int, Any]           # churn version -> the scikit-learn pipeline it holds
    rows: pd.DataFrame               # held-out churn feature rows (typed as the model expects)
    labels: pd.Series                # their true labels
    roles: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, TaskModel] = field(default_factory=dict)   # task -> its model
    task_digests: dict[str, str] = field(default_factory=dict)  # model name -> sha256

    def records(self, n: int, start: int = 0) -> list[dict[str, Any]]:
        """Held-out rows as JSON records, the way a client sends them."""
        return json.loads(self.rows.iloc[start:start + n].to_json(orient="records"))


@pytest.fixture(scope="session")
def served_registry(tmp_path_factory) -> ServedRegistry:
    """Registry with churn v1 and v2 (two good models that disagree on some rows), v3 (its
    stored files were changed after registration) and v4 (registered with a model file that is
    not a model: its digest matches, loading fails); and version 1 of a multiclass model (wine)
    and of a regression model (diabetes). Built once per session."""
    return _build(tmp_path_factory.mktemp("served-registry"))


def _text_frame(name: str) -> pd.DataFrame:
    from pipelines.source import dataset_bytes

    return pd.read_csv(io.BytesIO(dataset_bytes(name)), dtype=str, keep_default_na=False)


def _wine() -> tuple[str, pd.DataFrame]:
    """A multiclass declaration on scikit-learn's wine data, with an odd name and blanks."""
    frame = _text_frame("wine.csv").rename(columns={"od280_od315": ODD_NAME})
    frame.loc[::15, "magnesium"] = ""
    features = {c: {"type": "number", "min": 0.0} for c in frame.columns if c != "cultivar"}
    features["magnesium"] = {"type": "integer", "min": 0, "max": 1000, "nullable": True}
    decl = {"apiVersion": "gitops-ml/v1", "kind": "ModelDeclaration", "name": "wine",
            "task": "multiclass", "target": "cultivar",
            "classes": ["class_0", "class_1", "class_2"], "features": features,
            "split": {"test_size": 0.25, "seed": 1},
            "train": {"estimator": "logistic_regression", "reference_sample_size": 100,
                      "hyperparameters": {"logistic_regression": {"C": 1.0, "max_iter": 5000}}}}
    return yaml.safe_dump(decl, sort_keys=False), frame


def _diabetes() -> tuple[str, pd.DataFrame]:
    """A regression declaration on scikit-learn's diabetes data, with a nullable category."""
    frame = _text_frame("diabetes.csv")
    frame["sex"] = frame["sex"].map({"1.0": "female", "2.0": "male"})
    frame.loc[::20, "sex"] = ""
    frame.loc[7::25, "bmi"] = ""
    features: dict[str, Any] = {c: {"type": "number"} for c in frame.columns
                                if c not in ("progression", "sex", "age")}
    features["age"] = {"type": "integer", "min": 0, "max": 120}
    features["sex"] = {"type": "category", "categories": ["female", "male"], "nullable": True}
    features["bmi"] = {"type": "number", "min": 0, "nullable": True}
    decl = {"apiVersion": "gitops-ml/v1", "kind": "ModelDeclaration", "name": "diabetes",
            "task": "regression", "target": "progression", "features": features,
            "train": {"estimator": "ridge", "reference_sample_size": 200,
                      "hyperparameters": {"ridge": {"alpha": 1.0}}}}
    return yaml.safe_dump(decl, sort_keys=False), frame


def _churn_declaration(c: float):
    from pipelines import declaration

    decl = declaration.load(ROOT / "models" / "churn" / "model.yaml")
    decl = decl.model_copy(deep=True)
    decl.train.hyperparameters["logistic_regression"]["C"] = c
    return decl


def _models_dir(dst: Path, decl, model, train: pd.DataFrame, test: pd.DataFrame,
                metrics: dict[str, float]) -> Path:
    from contracts.files import atomic_write_text
    from pipelines.stages import export_onnx
    from pipelines.stages import train as train_stage
    from pipelines.stages.serialize import dumps_skops

    dst.mkdir(parents=True)
    (dst / "model.skops").write_bytes(dumps_skops(model))
    sig = train_stage.signature(decl, model)
    sig.write(dst / "signature.json")
    reference = train_stage.reference(train, model, sig, decl.train.reference_sample_size, 0)
    atomic_write_text(dst / "reference.json", json.dumps(reference))
    onnx_bytes = export_onnx.convert(model, sig)
    assert export_onnx.parity(model, onnx_bytes, test, sig).ok
    (dst / "model.onnx").write_bytes(onnx_bytes)
    (dst / "metrics.json").write_text(json.dumps({k: {"value": v} for k, v in metrics.items()}))
    (dst / "gate.json").write_text(json.dumps({"passed": True, "rules": []}))
    return dst


def _register(client, root: Path, decl, model, train, test, metrics, version: int,
              tamper=None) -> tuple[str, Any]:
    from pipelines.registry import bundle
    from pipelines.registry import store as registry
    from pipelines.stages.train import signature

    exp = client.get_experiment_by_name(decl.name)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        decl.name, artifact_location=(root / "artifacts" / decl.name).as_uri())
    src = _models_dir(root / f"models-{decl.name}-v{version}", decl, model, train, test, metrics)
    dst = bundle.build(src, test.head(3), root / f"bundle-{decl.name}-v{version}", "card\n")
    if tamper is not None:
        tamper(dst)
    run_id = client.create_run(exp_id).info.run_id
    info = registry.register_bundle(dst, decl.name, run_id=run_id, tags={
        "gate": "passed", "run_id": run_id, "git_commit": f"{version:x}" * 40,
        "data_hash": f"{version}" * 32})
    assert info.version == version
    client.set_terminated(run_id)
    return info.sha256, signature(decl, model)


def _build(root: Path) -> ServedRegistry:
    from contracts.digest import bundle_sha256
    from pipelines import declaration
    from pipelines.registry import store as registry
    from pipelines.source import packaged_file
    from pipelines.stages import ingest, train
    from pipelines.stages.features import features, target

    churn = _churn_declaration(1.0)
    data = ingest.validate(ingest.read_source(packaged_file("telco_churn.csv")), churn).valid
    data = data.sample(frac=1.0, random_state=3).reset_index(drop=True)
    churn_train, churn_test = data.iloc[:3000], data.iloc[3000:3600].reset_index(drop=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    models, digests, tasks, task_digests = {}, {}, {}, {}
    churn_metrics = {"roc_auc": 0.84, "accuracy": 0.8}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        client = registry.client()
        # v2 is regularized hard, so the two versions disagree on a share of rows.
        for version, c in {1: 1.0, 2: 0.002, 3: 1.0, 4: 1.0}.items():
            decl = _churn_declaration(c)
            model = train.fit(decl, churn_train)
            models[version] = model
            corrupt = (lambda d: (d / "model.skops").write_bytes(b"this is not a skops file")) \
                if version == 4 else None
            digests[version], _ = _register(client, root, decl, model, churn_train, churn_test,
                                            churn_metrics, version, corrupt)
        stored = Path(registry.get_version(MODEL, 3).source.removeprefix("file://"))
        (stored / "reference.json").write_text("{}")  # changed after registration
        assert bundle_sha256(stored) != digests[3]
        churn_sig = train.signature(churn, models[1])
        tasks["binary"] = TaskModel(MODEL, "binary", 1, models[1], churn_sig,
                                    features(churn_test, churn_sig),
                                    target(churn_test, churn_sig), churn_metrics)
        for make, metrics in ((_wine, {"macro_f1": 0.95, "accuracy": 0.96}),
                              (_diabetes, {"rmse": 55.0, "mae": 44.0, "r2": 0.45})):
            text, frame = make()
            decl = declaration.parse(text, f"{make.__name__[1:]} (test fixture)")
            valid = ingest.validate(frame, decl).valid.sample(frac=1.0, random_state=1)
            cut = int(len(valid) * 0.75)
            fit_on, held = valid.iloc[:cut], valid.iloc[cut:].reset_index(drop=True)
            model = train.fit(decl, fit_on)
            task_digests[decl.name], sig = _register(client, root, decl, model, fit_on, held,
                                                     metrics, 1)
            x = features(valid.reset_index(drop=True), sig)
            tasks[decl.task] = TaskModel(decl.name, decl.task, 1, model, sig, x,
                                         target(valid.reset_index(drop=True), sig), metrics)
    task_digests[MODEL] = digests[1]
    return ServedRegistry(uri=uri, root=root, digests=digests, models=models,
                          rows=tasks["binary"].rows, labels=tasks["binary"].truth,
                          roles={"good": 1, "other": 2, "tampered": 3, "corrupt": 4},
                          tasks=tasks, task_digests=task_digests)


def write_pin(path: Path, reg: ServedRegistry | None, version: int | None,
              environment: str = "staging", shadow: int | None = None,
              model: str = MODEL) -> Path:
    """Write a pin for `version` of `model` (None: nothing promoted) the way `mlops promote`
    does."""
    if version is None:
        Pin(environment=environment).write(path)
        return path
    assert reg is not None
    task = next(t for t in reg.tasks.values() if t.name == model)

    def ref(v: int) -> dict[str, Any]:
        digest = reg.digests[v] if model == MODEL else reg.task_digests[model]
        return {"name": model, "version": v, "uri": f"models:/{model}/{v}", "sha256": digest}

    Pin.model_validate({
        "environment": environment, "model": ref(version),
        "lineage": {"run_id": f"run-{version}", "git_commit": f"{version:x}" * 40,
                    "data_hash": f"{version}" * 32, "params": {"train.estimator": "lr"}},
        "metrics": task.metrics,
        "promoted": {"by": "Test Person", "at": datetime.now(UTC).isoformat()},
        "shadow": ref(shadow) if shadow else None,
    }).write(path)
    return path


class ServiceCalls:
    """What a test does with a service, in process or on a port: requests, metrics, waiting."""

    def get(self, path: str, **kwargs) -> httpx.Response:
        raise NotImplementedError

    def post(self, path: str, **kwargs) -> httpx.Response:
        raise NotImplementedError

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
        return wait_for(what, predicate, timeout, every=0.05)

    def wait_ready(self, version: int | None = None, timeout: float = 60.0) -> dict:
        def ready():
            r = self.get("/ready")
            body = r.json()
            return body if r.status_code == 200 and (
                version is None or body["version"] == version) else None
        return self.wait_until(ready, timeout, f"/ready with version {version}")


@dataclass
class RunningService(ServiceCalls):
    """The service as a separate process on a local port."""

    url: str
    proc: subprocess.Popen
    log: Path
    pin: Path

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kwargs)

    def wait_until(self, predicate, timeout: float = 30.0, what: str = "condition"):
        return wait_for(what, predicate, timeout, every=0.1, proc=self.proc, log=self.log)

    def stop(self) -> None:
        stop(self.proc)


@dataclass
class InProcessService(ServiceCalls):
    """The app in this process behind Litestar's test client (no socket)."""

    client: Any
    app: Any
    pin: Path

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.client.post(path, **kwargs)

    @property
    def state(self):
        return self.app.state.service

    def poll_pin(self) -> None:
        """Read the pin once more now, on the app's event loop, as its poller would."""
        self.client.blocking_portal.call(self.state.sync_with_pin)


def sqlite_log(path: Path) -> str:
    """A migrated, empty prediction log in a SQLite file at `path`; its URL."""
    from contracts.prediction_log import migrate

    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    return url


@contextmanager
def in_process(tmp: Path, reg: ServedRegistry, pin: Path, **settings: Any
               ) -> Iterator[InProcessService]:
    """The app built from settings (the pin, the fixture's registry), started and stopped.
    Open to anyone unless credentials are given; the prediction log is on when a
    `database_url` is given (flushed often, live quality read at every scrape)."""
    from litestar.testing import TestClient

    from service.app import create_app
    from service.settings import Settings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    options = {"tracking_uri": reg.uri, "cache_dir": tmp / "model-cache",
               "pin_poll_seconds": 0.05, "allow_anonymous": True,
               "prediction_log": bool(settings.get("database_url")),
               "log_flush_seconds": 0.05, "quality_refresh_seconds": 0, **settings}
    app = create_app(Settings(model_pin=pin, **options))
    with TestClient(app, timeout=30) as client:
        yield InProcessService(client, app, pin)


def start_service(tmp: Path, reg: ServedRegistry, pin: Path, **env: str) -> RunningService:
    """Start `python -m service` on a free port; returns once /health answers. Open to anyone
    unless `env` configures credentials; the prediction log is on when `env` names a
    DATABASE_URL."""
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
        "ALLOW_ANONYMOUS": "true",
        "PREDICTION_LOG": "on" if env.get("DATABASE_URL") else "off",
        "LOG_FLUSH_SECONDS": "0.05",
        "QUALITY_REFRESH_SECONDS": "0",
        **env,
    }
    proc = launch([sys.executable, "-m", "service", "--port", str(port)], log,
                  cwd=tmp, env=environ)
    service = RunningService(f"http://127.0.0.1:{port}", proc, log, pin)
    service.wait_until(lambda: service.get("/health").status_code == 200, 60, "/health")
    return service


def sklearn_probability(reg: ServedRegistry, version: int, rows: pd.DataFrame) -> np.ndarray:
    """What the registered scikit-learn model says: P(Churn=Yes) per row."""
    model = reg.models[version]
    return model.predict_proba(rows)[:, list(model.classes_).index("Yes")]
