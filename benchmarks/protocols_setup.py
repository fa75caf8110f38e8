"""Set up the protocol benchmark: train a declared model (default churn) on its data, register
it in a throwaway MLflow store, write the pin naming it, and the request bodies: /v1/predict,
the Open Inference Protocol v2 (JSON tensors) and MLflow's /invocations, 1 and 100 rows.

Usage: python benchmarks/protocols_setup.py WORKDIR [MODEL]   (from the repository root);
prints shell assignments for protocols.sh to eval.
"""
from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path


def main(work: Path, name: str) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import yaml

    from contracts.files import atomic_write_text
    from contracts.pin import Pin
    from pipelines import declaration
    from pipelines.registry import bundle
    from pipelines.registry import store as registry
    from pipelines.source import packaged_dataset
    from pipelines.stages import export_onnx, ingest, train
    from pipelines.stages.features import features
    from pipelines.stages.serialize import dumps_skops
    from service.protocols.tensors import datatype

    decl = declaration.load(Path("models") / name / "model.yaml")
    params = yaml.safe_load(Path("params.yaml").read_text())
    source = Path(params["models"][name]["source"])
    if name == "churn" and not source.is_file():
        source = packaged_dataset()
    data = ingest.validate(ingest.read_source(source), decl).valid.sample(frac=1.0, random_state=0)
    cut = int(len(data) * 0.8)
    fit_on, test = data.iloc[:cut], data.iloc[cut:]
    model = train.fit(decl, fit_on)
    sig = train.signature(decl, model)
    models = work / "models"
    models.mkdir()
    (models / "model.skops").write_bytes(dumps_skops(model))
    sig.write(models / "signature.json")
    atomic_write_text(models / "reference.json", json.dumps(
        train.reference(fit_on, model, sig, decl.train.reference_sample_size, 0)))
    (models / "model.onnx").write_bytes(export_onnx.convert(model, sig))
    client = registry.client()
    exp = client.create_experiment(name, artifact_location=(work / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    path = bundle.build(models, test.head(3), work / "bundle", "benchmark\n")
    info = registry.register_bundle(path, name, run_id=run_id, tags={
        "gate": "passed", "run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32})
    client.set_terminated(run_id)
    Pin.model_validate({
        "environment": "benchmark",
        "model": {"name": name, "version": info.version, "uri": info.uri, "sha256": info.sha256},
        "lineage": {"run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32},
        "promoted": {"by": "benchmark", "at": datetime.now(UTC).isoformat()},
    }).write(work / "model.yaml")
    records = json.loads(features(test, sig).to_json(orient="records"))
    for n in (1, 100):
        rows = records[:n]
        (work / f"v1-{n}.json").write_text(json.dumps(rows[0] if n == 1 else rows))
        (work / f"v2-{n}.json").write_text(json.dumps({"inputs": [
            {"name": f.name, "datatype": datatype(f), "shape": [n, 1],
             "data": [r[f.name] for r in rows]} for f in sig.features]}))
        (work / f"invocations-{n}.json").write_text(json.dumps({"dataframe_records": rows}))
    print(f"TRACKING_URI='{uri}'\nPIN='{work / 'model.yaml'}'\nMODEL='{name}'")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), sys.argv[2] if len(sys.argv) > 2 else "churn")
