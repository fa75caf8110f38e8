"""`mlops register NAME`: log a declared model's gated files to MLflow and register them as a
new version of the registered model NAME.

Only a model whose gate passed, and whose gate.json is the one dvc.lock recorded for the
current model file, gets in: the registry never holds a model its gates did not see.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.digest import file_sha256
from pipelines import declaration
from pipelines.errors import CommandError
from pipelines.metric_names import HEADLINE, key_metrics
from pipelines.params import flatten
from pipelines.registry import bundle, lineage
from pipelines.registry.store import VersionInfo, client, experiment_id, register_bundle


def check_gate(models_dir: Path, repo: Path, lock: dict[str, Any] | None,
               model: str) -> dict[str, Any]:
    """gate.json if it passed and is current; a CommandError naming the problem otherwise."""
    gate_path = models_dir / "gate.json"
    model_path = models_dir / "model.skops"
    for path in (model_path, gate_path, models_dir / "metrics.json"):
        if not path.is_file():
            raise CommandError(f"{path} not found: run `dvc repro gate@{model}` first")
    gate = json.loads(gate_path.read_text())
    if not gate.get("passed"):
        failed = [f"{r['rule']} = {r['value']} (threshold {r['threshold']})"
                  for r in gate["rules"] if r["verdict"] == "FAIL"]
        raise CommandError("refused: the gate failed: " + "; ".join(failed))
    if gate.get("model_sha256") != file_sha256(model_path):
        raise CommandError(f"refused: {gate_path} was written for another model file; "
                           f"run `dvc repro gate@{model}` to gate the current one")
    if lock is not None:
        gate_stage = lineage.stage("gate", model)
        rel = lambda p: p.resolve().relative_to(repo.resolve()).as_posix()
        if lineage.locked(lock, gate_stage, "outs", rel(gate_path)) is None:
            raise CommandError(f"refused: dvc.lock has no {gate_stage} entry for "
                               f"{rel(gate_path)}; run `dvc repro {gate_stage}`")
        for path, what in ((model_path, "the model the gate saw"),
                           (models_dir / "metrics.json", "the metrics the gate saw")):
            recorded = lineage.locked(lock, gate_stage, "deps", rel(path))
            if recorded is None:
                raise CommandError(f"refused: dvc.lock has no {gate_stage} entry for "
                                   f"{rel(path)}; run `dvc repro {gate_stage}`")
            if recorded != lineage.md5(path):
                raise CommandError(f"refused: {rel(path)} is stale relative to dvc.lock "
                                   f"({what} changed since the gate ran); run `dvc repro`")
        # Every file of the model's folder that travels in the bundle, gate.json included,
        # must be the one its stage wrote.
        for stage, entry in lineage.outputs(lock):
            path = repo / entry["path"]
            if stage.endswith(f"@{model}") and path.is_file() \
                    and path.parent.resolve() == models_dir.resolve() \
                    and entry.get("md5") != lineage.md5(path):
                raise CommandError(f"refused: {entry['path']} is stale relative to dvc.lock "
                                   f"(stage {stage!r} recorded another file); run `dvc repro`")
    return gate


def _interval(entry: dict[str, Any]) -> str:
    if "ci_low" not in entry:
        return "–"
    return f"{entry['ci_low']:.4f} – {entry['ci_high']:.4f}"


def model_card(name: str, description: str, metrics: dict[str, Any], gate: dict[str, Any],
               tags: dict[str, str]) -> str:
    """A short human-readable card that travels inside the bundle."""
    task = metrics.get("task", "binary")
    level = f"{float(metrics.get('confidence', 0.95)):.0%}"
    rows = "\n".join(f"| {m} | {metrics[m]['value']:.4f} | {_interval(metrics[m])} |"
                     for m in key_metrics(task) if m in metrics)
    rules = "\n".join(f"| {r['rule']} | {r['value']} | {r['threshold']} | {r['verdict']} |"
                      for r in gate["rules"])
    lineage_rows = "\n".join(f"| {k} | `{v}` |" for k, v in sorted(tags.items()))
    baseline = ""
    if b := metrics.get("baseline"):
        baseline = (f"\nAgainst the trivial baseline ({b['predicts']}): {b['metric']} "
                    f"{b['value']:.4f}; model minus baseline {b['difference']['value']:+.4f} "
                    f"[{_interval(b['difference'])}].\n")
    return (f"# Model card: {name}\n\n{description or f'A {task} model.'}\n\n"
            f"## Test metrics ({metrics.get('rows', '?')} rows, {level} bootstrap interval)\n\n"
            f"| metric | value | interval |\n|---|---|---|\n{rows}\n{baseline}\n"
            f"## Gates\n\n| rule | value | threshold | verdict |\n|---|---|---|---|\n{rules}\n\n"
            f"## Lineage\n\n| what | value |\n|---|---|\n{lineage_rows}\n")


def register(models_dir: Path, name: str, repo: Path, *, example: pd.DataFrame,
             params: dict[str, Any], tags: dict[str, str], gate: dict[str, Any],
             description: str = "", plots_dir: Path | None = None,
             created: datetime | None = None) -> VersionInfo:
    """Log params, metrics, plots and the bundle in one MLflow run; register the bundle."""
    import mlflow

    metrics = json.loads((models_dir / "metrics.json").read_text())
    task = metrics.get("task", "binary")
    c = client(repo)
    exp = experiment_id(name, repo)
    with mlflow.start_run(experiment_id=exp, run_name=f"{name}-{tags.get('git_commit', '')[:8]}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
        for m in key_metrics(task):
            if m in metrics:
                mlflow.log_metric(m, metrics[m]["value"])
                for bound in ("ci_low", "ci_high"):
                    if bound in metrics[m]:
                        mlflow.log_metric(f"{m}_{bound}", metrics[m][bound])
        mlflow.set_tags({**tags, "gate": "passed", "task": task})
        if plots_dir is not None and plots_dir.is_dir():
            mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
        headline = HEADLINE[task]
        with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
            path = bundle.build(models_dir, example, Path(tmp) / "bundle",
                                model_card(name, description, metrics, gate, tags), created)
            info = register_bundle(path, name, run_id=run.info.run_id,
                                   tags={**tags, "gate": "passed", "task": task,
                                         "run_id": run.info.run_id},
                                   repo=repo,
                                   description=f"{headline} {metrics[headline]['value']:.4f}")
    c.set_tag(info.run_id, "registered_version", str(info.version))
    return info


def publish_outputs(info: VersionInfo) -> None:
    """In a GitHub Actions step, hand the new version to later steps (`steps.<id>.outputs`)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a") as fh:
            fh.write(f"model={info.name}\nversion={info.version}\nsha256={info.sha256}\n"
                     f"run_id={info.run_id}\n")


def pipeline_tags(repo: Path, lock: dict[str, Any], model: str) -> dict[str, str]:
    tags = {"git_commit": lineage.git_commit(repo),
            "git_dirty": str(lineage.git_dirty(repo)).lower(), "data_hash": "unknown"}
    tags.update(lineage.data_hashes(lock, model, declaration.sources(repo).get(model)))
    return tags


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="the declared model(s) (models/NAME/model.yaml)")
    parser.add_argument("--repo", type=Path, default=Path("."))


def run(args: argparse.Namespace) -> int:
    registered = [register_one(args.repo, name) for name in args.names]
    path = os.environ.get("GITHUB_OUTPUT")
    if path:  # what a workflow's later jobs fan out over (a matrix of model and version)
        with open(path, "a") as fh:
            fh.write("registered=" + json.dumps([{"model": i.name, "version": i.version}
                                                 for i in registered]) + "\n")
    return 0


def register_one(repo: Path, name: str) -> VersionInfo:
    """Check and register one declared model; print and publish its new version."""
    decl = declaration.load_named(repo, name)
    lock = lineage.read_lock(repo)
    if not lock:
        raise CommandError(f"{repo / 'dvc.lock'} not found: run `dvc repro` first")
    models_dir = repo / "models" / decl.name
    gate = check_gate(models_dir, repo, lock, decl.name)
    test = repo / "data" / decl.name / "test.parquet"
    if not test.is_file():
        raise CommandError(f"{test} not found: run `dvc repro split@{decl.name}` first")
    info = register(models_dir, decl.name, repo, example=pd.read_parquet(test).head(5),
                    params=decl.model_dump(mode="json", exclude={"features", "description"}),
                    tags=pipeline_tags(repo, lock, decl.name), gate=gate,
                    description=decl.description, plots_dir=models_dir / "plots",
                    created=lineage.commit_time(repo))
    print(f"registered {info.name} version {info.version}  sha256 {info.sha256}  run {info.run_id}")
    publish_outputs(info)
    return info
