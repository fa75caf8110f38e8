"""Set up a serving benchmark for one model: train it, register it in a throwaway MLflow store,
write the pin that names it, and the request bodies every server gets.

Usage (from the repository root):
    python benchmarks/serving_setup.py WORKDIR [MODEL] [--estimator NAME] [--ab]
MODEL is a declared model (models/MODEL/model.yaml, default churn) or one of the datasets
`make data` can write, drafted as `mlops new-model` would: `wine` (multiclass, target
cultivar) and `diabetes` (regression, target progression). --estimator replaces the
declaration's estimator (e.g. gradient_boosting, the slowest of them to serve). With --ab the
same bundle is registered twice and the pin runs an A/B test of the two versions (90/10, unit
header X-Customer-Id): what routing costs, with two models that answer alike.
Prints shell assignments (TRACKING_URI, MODEL_URI, PIN, MODEL, TASK, ESTIMATOR) to eval; the
bodies are WORKDIR/{service,v2,mlflow}-{1,100}.json (/v1/predict, the Open Inference Protocol,
MLflow's dataframe_records).
"""
from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

# Not declared in this repository: drafted from the packaged data as `mlops new-model` does.
DRAFTED = {"wine": ("wine.csv", "cultivar"), "diabetes": ("diabetes.csv", "progression")}


def declaration_of(name: str, estimator: str | None, work: Path):
    """The declaration of `name` and its source file (a drafted one's is written in `work`),
    with `estimator` if given."""
    import yaml

    from pipelines import declaration
    from pipelines.declaration.draft import draft
    from pipelines.estimators import DEFAULT_HYPERPARAMETERS
    from pipelines.source import materialize
    from pipelines.stages import ingest

    if name in DRAFTED:
        file, target = DRAFTED[name]
        source = work / file
        materialize(source, file)
        decl = draft(name, ingest.read_source(source), target).declaration
    else:
        decl = declaration.load(Path("models") / name / "model.yaml")
        params = yaml.safe_load(Path("params.yaml").read_text())
        source = Path(params["models"][name]["source"])
        if not source.is_file():  # not put in place yet: the catalogue's copy, in `work`
            source = work / source.name
            materialize(source, source.name)
    if estimator:
        hyper = {**decl.train.hyperparameters, estimator: decl.train.hyperparameters.get(
            estimator, DEFAULT_HYPERPARAMETERS[estimator])}
        decl = decl.model_copy(update={"train": decl.train.model_copy(
            update={"estimator": estimator, "hyperparameters": hyper})})
    return decl, source


def main(work: Path, name: str, estimator: str | None, ab: bool) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from contracts.files import atomic_write_text
    from contracts.pin import Pin
    from pipelines.registry import bundle
    from pipelines.registry import store as registry
    from pipelines.stages import export_onnx, ingest, train
    from pipelines.stages.features import features
    from pipelines.stages.serialize import dumps_skops
    from service.protocols.tensors import datatype

    decl, source = declaration_of(name, estimator, work)
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
    tags = {"gate": "passed", "run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32}
    infos = [registry.register_bundle(path, name, run_id=run_id, tags=tags)]
    if ab:
        infos.append(registry.register_bundle(path, name, run_id=run_id, tags=tags))
    client.set_terminated(run_id)
    refs = [{"name": name, "version": i.version, "uri": i.uri, "sha256": i.sha256} for i in infos]
    lineage = {"run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32}
    promoted = {"by": "benchmark", "at": datetime.now(UTC).isoformat()}
    Pin.model_validate({
        "environment": "benchmark", "model": refs[0], "lineage": lineage, "promoted": promoted,
        "ab": {"split": {"a": 90, "b": 10}, "unit": {"header": "X-Customer-Id"},
               "b": {"model": refs[1], "lineage": lineage, "promoted": promoted}} if ab else None,
    }).write(work / "model.yaml")
    records = json.loads(features(test, sig).to_json(orient="records"))
    while len(records) < 100:  # small data sets (wine: 36 test rows) repeat their rows
        records += records
    for n in (1, 100):
        rows = records[:n]
        (work / f"service-{n}.json").write_text(json.dumps(rows[0] if n == 1 else rows))
        (work / f"v2-{n}.json").write_text(json.dumps({"inputs": [
            {"name": f.name, "datatype": datatype(f), "shape": [n, 1],
             "data": [r[f.name] for r in rows]} for f in sig.features]}))
        (work / f"mlflow-{n}.json").write_text(json.dumps({"dataframe_records": rows}))
    print(f"TRACKING_URI='{uri}'\nMODEL_URI='{infos[0].uri}'\nPIN='{work / 'model.yaml'}'\n"
          f"MODEL='{name}'\nTASK='{decl.task}'\nESTIMATOR='{decl.train.estimator}'")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("model", nargs="?", default="churn")
    parser.add_argument("--estimator")
    parser.add_argument("--ab", action="store_true")
    args = parser.parse_args()
    main(args.work.resolve(), args.model, args.estimator, args.ab)
