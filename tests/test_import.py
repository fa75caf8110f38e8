"""`mlops import`: a delivered pickle goes through skops and the gates before the registry."""
from __future__ import annotations

import pickle
import sys

import pytest
import yaml
from project import mlops, run
from sklearn.dummy import DummyClassifier, DummyRegressor

from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines.registry import store as registry
from pipelines.stages.features import build_pipeline, features, target

pytestmark = pytest.mark.slow

# The console script once (the refusal); the other cases call its entry point in process.
MLOPS = [sys.executable, "-m", "pipelines.cli"]


@pytest.fixture()
def delivered(project_copy):
    """The trained model as a data-science team would hand it over: model.pkl."""
    model = load_skops(project_copy / "models/churn/model.skops")
    path = project_copy / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return path


def test_pickle_is_refused_without_explicit_trust(project_copy, delivered):
    proc = run([*MLOPS, "import", str(delivered), "--name", "churn"], project_copy, check=False)
    assert proc.returncode == 2
    assert "is a pickle: loading it runs any code it holds. Pass --trust-pickle" in proc.stderr
    assert not (project_copy / "build/import").exists()


def test_trusted_pickle_is_converted_gated_and_registered(project_copy, delivered, monkeypatch):
    proc = mlops(["import", str(delivered), "--name", "churn", "--trust-pickle"], project_copy)
    assert "gate: PASSED" in proc.stdout and "registered churn version 1" in proc.stdout
    out = project_copy / "build/import/churn"
    assert (out / "model.skops").is_file() and not list(out.glob("*.pkl"))
    assert "model.onnx agrees with model.skops on 1409 rows" in proc.stdout
    assert (out / "model.onnx").is_file()
    monkeypatch.chdir(project_copy)
    info = registry.get_version("churn", 1, project_copy)
    assert info.gate == "passed" and info.metrics["roc_auc"] >= 0.80


def test_weak_delivered_model_fails_the_gates_and_is_not_registered(project_copy, splits):
    sig = Signature.read(project_copy / "models/churn/signature.json")
    weak = build_pipeline(sig, DummyClassifier(strategy="prior")).fit(features(splits[0], sig),
                                                                      target(splits[0], sig))
    path = project_copy / "weak.pkl"
    path.write_bytes(pickle.dumps(weak))
    # This model has no ONNX form, so its latency gate times scikit-learn, milliseconds a call
    # over some 1,200 calls by default: the fewest the declaration allows do for this verdict.
    decl = project_copy / "models/churn/model.yaml"
    spec = yaml.safe_load(decl.read_text())
    spec["gates"]["latency"].update(calls=20, rounds=1)
    decl.write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = mlops(["import", str(path), "--name", "churn", "--trust-pickle"], project_copy,
                 check=False)
    assert proc.returncode == 1
    assert "beats baseline (log_loss)" in proc.stdout and "floor roc_auc" in proc.stdout
    assert "gate: FAILED" in proc.stdout and "not registered: the gate failed" in proc.stderr
    assert not (project_copy / ".mlflow").exists()


@pytest.mark.parametrize("name, held, message", [
    ("churn", {"weights": [1, 2, 3]}, "holds a dict, not a fitted classifier with predict_proba; "
                                      "churn is declared as binary"),
    ("flats", DummyClassifier(), "holds a DummyClassifier, not a fitted regressor"),
    ("tiers", DummyRegressor(), "holds a DummyRegressor, not a fitted classifier"),
])
def test_a_pickle_that_does_not_fit_the_declaration_is_named(project_copy, name, held, message):
    path = project_copy / "odd.pkl"
    path.write_bytes(pickle.dumps(held))
    proc = mlops(["import", str(path), "--name", name, "--trust-pickle"], project_copy,
                 check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (project_copy / "build").exists()


def test_the_name_is_checked_before_any_path_is_built_from_it(project_copy, delivered):
    proc = mlops(["import", str(delivered), "--name", "../../etc", "--trust-pickle"],
                 project_copy, check=False)
    assert proc.returncode == 2 and "is not a DNS-1123 label" in proc.stderr
    assert not (project_copy / "build").exists()


def test_a_classifier_with_other_classes_is_refused(project_copy, splits):
    sig = Signature.read(project_copy / "models/churn/signature.json")
    relabelled = target(splits[0], sig).map({"No": "stay", "Yes": "leave"})
    model = build_pipeline(sig, DummyClassifier()).fit(features(splits[0], sig), relabelled)
    path = project_copy / "other.pkl"
    path.write_bytes(pickle.dumps(model))
    proc = mlops(["import", str(path), "--name", "churn", "--trust-pickle"], project_copy,
                 check=False)
    assert proc.returncode == 2
    assert "the model predicts classes ['leave', 'stay']; churn declares ['No', 'Yes']" in proc.stderr
