"""Set up a serving benchmark: register the trained model in a throwaway MLflow store,
write the pin that names it, and the request bodies both servers get.

Usage: python benchmarks/serving_setup.py WORKDIR [--ab]   (run from the repository root,
after `dvc repro`); prints shell assignments for serving.sh to eval. With --ab the same bundle
is registered twice and the pin runs an A/B test of the two versions (90/10, unit header
X-Customer-Id): what routing costs, with two models that answer alike.
"""
from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd


def main(work: Path, ab: bool = False) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from contracts.pin import Pin
    from pipelines.registry import bundle
    from pipelines.registry import store as registry
    from contracts.signature import Signature
    from pipelines.stages.features import features

    models = Path("models/churn")
    if not (models / "model.onnx").is_file():
        sys.exit(f"{models}/model.onnx is missing: run `dvc repro` first")
    test = pd.read_parquet("data/churn/test.parquet")
    signature = Signature.read(models / "signature.json")
    client = registry.client()
    exp = client.create_experiment("churn", artifact_location=(work / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    path = bundle.build(models, test.head(3), work / "bundle", "benchmark\n")
    info = registry.register_bundle(path, "churn", run_id=run_id, tags={
        "gate": "passed", "run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32})
    client.set_terminated(run_id)
    infos = [info]
    if ab:
        infos.append(registry.register_bundle(path, "churn", run_id=run_id, tags={
            "gate": "passed", "run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32}))
    refs = [{"name": "churn", "version": i.version, "uri": i.uri, "sha256": i.sha256}
            for i in infos]
    lineage = {"run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32}
    promoted = {"by": "benchmark", "at": datetime.now(UTC).isoformat()}
    Pin.model_validate({
        "environment": "benchmark",
        "model": refs[0], "lineage": lineage, "promoted": promoted,
        "ab": {"split": {"a": 90, "b": 10}, "unit": {"header": "X-Customer-Id"},
               "b": {"model": refs[1], "lineage": lineage, "promoted": promoted}} if ab else None,
    }).write(work / "model.yaml")
    records = json.loads(features(test, signature).to_json(orient="records"))
    for n in (1, 100):
        rows = records[:n]
        (work / f"service-{n}.json").write_text(json.dumps(rows[0] if n == 1 else rows))
        (work / f"mlflow-{n}.json").write_text(json.dumps({"dataframe_records": rows}))
    print(f"TRACKING_URI='{uri}'\nMODEL_URI='{info.uri}'\nPIN='{work / 'model.yaml'}'")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), ab="--ab" in sys.argv[2:])
