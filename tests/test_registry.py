"""The registry round trip on a real SQLite MLflow store, and the gate that guards it."""
from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC

import numpy as np
import pytest
import yaml
from project import mlops, run

from contracts.digest import bundle_sha256
from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines.registry import store as registry
from pipelines.stages.features import features

MLOPS = [sys.executable, "-m", "pipelines.cli"]


@pytest.fixture(scope="module")
def registered(trained_project, tmp_path_factory):
    """A copy of the trained project with version 1 registered in its embedded store."""
    repo = tmp_path_factory.mktemp("registered") / "repo"
    shutil.copytree(trained_project, repo, symlinks=True)
    outputs = repo.parent / "github_output"
    out = run([*MLOPS, "register", "churn"], repo, env={"GITHUB_OUTPUT": str(outputs)}).stdout
    assert "registered churn version 1" in out
    return repo


def test_registered_version_round_trips_with_same_predictions_and_digest(registered, splits, tmp_path):
    info = registry.get_version("churn", 1, registered)
    handed_on = (registered.parent / "github_output").read_text()  # what a workflow step reads
    assert f"model=churn\nversion=1\nsha256={info.sha256}\n" in handed_on
    assert info.gate == "passed" and len(info.sha256) == 64
    assert info.git_commit == run(["git", "rev-parse", "HEAD"], registered).stdout.strip()
    lock = yaml.safe_load((registered / "dvc.lock").read_text())
    source_md5 = next(d["md5"] for d in lock["stages"]["ingest@churn"]["deps"]
                      if d["path"] == "data/source/telco_churn.csv")
    assert info.data_hash == source_md5
    assert info.metrics["roc_auc"] >= 0.80 and info.metrics["roc_auc_ci_low"] < info.metrics["roc_auc"]
    assert info.params["train.estimator"] == "logistic_regression"

    bundle = registry.download_bundle("churn", 1, tmp_path / "dl", registered)
    assert bundle_sha256(bundle) == info.sha256
    assert {"MLmodel", "model.skops", "signature.json", "reference.json", "gate.json",
            "metrics.json", "MODEL_CARD.md"} <= {p.name for p in bundle.iterdir()}
    sig = Signature.read(registered / "models/churn/signature.json")
    x = features(splits[1], sig)
    original = load_skops(registered / "models/churn/model.skops")
    np.testing.assert_array_equal(load_skops(bundle / "model.skops").predict_proba(x),
                                  original.predict_proba(x))

    import mlflow.pyfunc

    registry.client(registered)  # point the fluent API at this store
    served = mlflow.pyfunc.load_model("models:/churn/1")
    np.testing.assert_allclose(np.asarray(served.predict(x))[:, 1], original.predict_proba(x)[:, 1])


def test_tampered_artifact_fails_verification_naming_both_digests(registered):
    info = registry.verify_bundle("churn", 1, registered)
    card = next((registered / ".mlflow/artifacts").rglob("MODEL_CARD.md"))
    original = card.read_bytes()
    card.write_bytes(original + b"\nedited after registration\n")
    try:
        with pytest.raises(registry.RegistryError,
                           match=f"does not match the registered sha256 {info.sha256}"):
            registry.verify_bundle("churn", 1, registered)
    finally:
        card.write_bytes(original)


def test_unknown_version_is_a_clear_error(registered):
    with pytest.raises(registry.RegistryError, match="churn version 7 does not exist"):
        registry.get_version("churn", 7, registered)


def test_register_refuses_a_model_whose_gate_failed(project_copy):
    gate_path = project_copy / "models/churn/gate.json"
    gate = json.loads(gate_path.read_text())
    gate["passed"] = False
    floor = next(r for r in gate["rules"] if r["rule"] == "floor roc_auc")
    floor.update(value=0.71, verdict="FAIL", passed=False)
    gate_path.write_text(json.dumps(gate))
    refused = mlops(["register", "churn"], project_copy, check=False)
    assert refused.returncode == 2
    assert "refused: the gate failed: floor roc_auc = 0.71 (threshold 0.8)" in refused.stderr
    assert not (project_copy / ".mlflow/mlflow.db").exists() or registry.latest_version(
        "churn", project_copy) is None


def test_register_refuses_a_gate_verdict_stale_against_dvc_lock(project_copy):
    gate_path = project_copy / "models/churn/gate.json"
    gate_path.write_text(json.dumps(json.loads(gate_path.read_text())) + "\n")  # same verdict, new bytes
    refused = mlops(["register", "churn"], project_copy, check=False)
    assert refused.returncode == 2
    assert "models/churn/gate.json is stale relative to dvc.lock" in refused.stderr


def test_register_names_an_undeclared_model(project_copy):
    refused = mlops(["register", "credit"], project_copy, check=False)
    assert refused.returncode == 2
    assert "no model 'credit' is declared" in refused.stderr and "churn" in refused.stderr


def test_a_new_champion_pin_reruns_only_that_models_gate(project_copy):
    from datetime import datetime

    from contracts.pin import Lineage, ModelRef, Pin, Promotion

    metrics = json.loads((project_copy / "models/churn/metrics.json").read_text())
    champion = Pin(environment="production",
                   model=ModelRef(name="churn", version=4, uri="models:/churn/4", sha256="0" * 64),
                   lineage=Lineage(run_id="r", git_commit="c", data_hash="d"),
                   metrics={"roc_auc": metrics["roc_auc"]["value"] + 0.05, "pr_auc": 0.5},
                   promoted=Promotion(by="someone", at=datetime.now(UTC)))
    champion.write(project_copy / "environments/production/churn/model.yaml")
    out = run(["dvc", "repro"], project_copy, check=False)
    assert out.returncode != 0
    assert [line for line in out.stdout.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'gate@churn':"]
    gate = json.loads((project_copy / "models/churn/gate.json").read_text())
    rule = next(r for r in gate["rules"] if r["rule"] == "vs champion roc_auc")
    assert rule["verdict"] == "FAIL" and "champion v4" in rule["note"]
    assert next(r for r in gate["rules"] if r["rule"] == "vs champion pr_auc")["verdict"] == "pass"


def test_register_refuses_a_bundle_file_that_its_stage_did_not_write(project_copy):
    reference = project_copy / "models/churn/reference.json"
    reference.write_text(reference.read_text().replace('"rows"', '"rows" ', 1))
    refused = mlops(["register", "churn"], project_copy, check=False)
    assert refused.returncode == 2
    assert ("models/churn/reference.json is stale relative to dvc.lock (stage 'train@churn'"
            in refused.stderr)


def test_registering_twice_from_the_same_commit_gives_the_same_digest(registered):
    again = mlops(["register", "churn"], registered).stdout
    assert "registered churn version 2" in again
    first, second = (registry.get_version("churn", v, registered) for v in (1, 2))
    assert first.sha256 == second.sha256 and first.run_id != second.run_id
