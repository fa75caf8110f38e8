"""Set up a serving benchmark: register the trained model in a throwaway MLflow store,
write the pin that names it, and the request bodies both servers get.

Usage: python benchmarks/serving_setup.py WORKDIR   (run from the repository root, after
`dvc repro`); prints shell assignments for serving.sh to eval.
"""
from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd


def main(work: Path) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from contracts.pin import Pin
    from pipelines.registry import bundle
    from pipelines.registry import store as registry
    from pipelines.stages.features import features

    models = Path("models/churn")
    if not (models / "model.onnx").is_file():
        sys.exit(f"{models}/model.onnx is missing: run `dvc repro` first")
    test = pd.read_parquet("data/split/test.parquet")
    client = registry.client()
    exp = client.create_experiment("churn", artifact_location=(work / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    path = bundle.build(models, test.head(3), work / "bundle", "benchmark\n")
    info = registry.register_bundle(path, "churn", run_id=run_id, tags={
        "gate": "passed", "run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32})
    client.set_terminated(run_id)
    Pin.model_validate({
        "environment": "benchmark",
        "model": {"name": "churn", "version": info.version, "uri": info.uri,
                  "sha256": info.sha256},
        "lineage": {"run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32},
        "promoted": {"by": "benchmark", "at": datetime.now(UTC).isoformat()},
    }).write(work / "model.yaml")
    records = json.loads(features(test).to_json(orient="records"))
    for n in (1, 100):
        rows = records[:n]
        (work / f"service-{n}.json").write_text(json.dumps(rows[0] if n == 1 else rows))
        (work / f"mlflow-{n}.json").write_text(json.dumps({"dataframe_records": rows}))
    print(f"TRACKING_URI='{uri}'\nMODEL_URI='{info.uri}'\nPIN='{work / 'model.yaml'}'")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
