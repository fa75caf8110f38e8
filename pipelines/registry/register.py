"""`mlops register`: log the gated model to MLflow and register it as a new version.

Only a model whose gate passed, and whose gate.json is the one dvc.lock recorded for the
current model file, gets in: the registry never holds a model its gates did not see.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.digest import file_sha256
from pipelines.errors import CommandError
from pipelines.metric_names import KEY_METRICS
from pipelines.params import flatten, load_params
from pipelines.registry import bundle, lineage
from pipelines.registry.store import VersionInfo, client, experiment_id, register_bundle


def check_gate(models_dir: Path, repo: Path, lock: dict[str, Any] | None) -> dict[str, Any]:
    """gate.json if it passed and is current; a CommandError naming the problem otherwise."""
    gate_path = models_dir / "gate.json"
    model_path = models_dir / "model.skops"
    for path in (model_path, gate_path, models_dir / "metrics.json"):
        if not path.is_file():
            raise CommandError(f"{path} not found: run `dvc repro` first")
    gate = json.loads(gate_path.read_text())
    if not gate.get("passed"):
        failed = [f"{r['rule']} = {r['value']} (threshold {r['threshold']})"
                  for r in gate["rules"] if r["verdict"] != "pass"]
        raise CommandError("refused: the gate failed: " + "; ".join(failed))
    if gate.get("model_sha256") != file_sha256(model_path):
        raise CommandError(f"refused: {gate_path} was written for another model file; "
                           "run `dvc repro` to gate the current one")
    if lock is not None:
        rel = lambda p: p.resolve().relative_to(repo.resolve()).as_posix()
        if lineage.locked(lock, "gate", "outs", rel(gate_path)) is None:
            raise CommandError(f"refused: dvc.lock has no gate stage entry for {rel(gate_path)}; "
                               "run `dvc repro`")
        for path, what in ((model_path, "the model the gate saw"),
                           (models_dir / "metrics.json", "the metrics the gate saw")):
            recorded = lineage.locked(lock, "gate", "deps", rel(path))
            if recorded is None:
                raise CommandError(f"refused: dvc.lock has no gate stage entry for {rel(path)}; "
                                   "run `dvc repro`")
            if recorded != lineage.md5(path):
                raise CommandError(f"refused: {rel(path)} is stale relative to dvc.lock "
                                   f"({what} changed since the gate ran); run `dvc repro`")
        # Every file of the model's folder that travels in the bundle, gate.json included,
        # must be the one its stage wrote.
        for stage, entry in lineage.outputs(lock):
            path = repo / entry["path"]
            if path.is_file() and path.parent.resolve() == models_dir.resolve() \
                    and entry.get("md5") != lineage.md5(path):
                raise CommandError(f"refused: {entry['path']} is stale relative to dvc.lock "
                                   f"(stage {stage!r} recorded another file); run `dvc repro`")
    return gate


def model_card(name: str, metrics: dict[str, Any], gate: dict[str, Any],
               tags: dict[str, str]) -> str:
    """A short human-readable card that travels inside the bundle."""
    rows = "\n".join(
        f"| {m} | {metrics[m]['value']:.4f} | "
        f"{metrics[m].get('ci_low', float('nan')):.4f} – {metrics[m].get('ci_high', float('nan')):.4f} |"
        for m in KEY_METRICS if m in metrics)
    rules = "\n".join(f"| {r['rule']} | {r['value']} | {r['threshold']} | {r['verdict']} |"
                      for r in gate["rules"])
    lineage_rows = "\n".join(f"| {k} | `{v}` |" for k, v in sorted(tags.items()))
    return (f"# Model card: {name}\n\nBinary classifier of customer churn (Telco schema).\n\n"
            f"## Test metrics ({metrics.get('rows', '?')} rows, 95% bootstrap interval)\n\n"
            f"| metric | value | interval |\n|---|---|---|\n{rows}\n\n"
            f"## Gates\n\n| rule | value | threshold | verdict |\n|---|---|---|---|\n{rules}\n\n"
            f"## Lineage\n\n| what | value |\n|---|---|\n{lineage_rows}\n")


def register(models_dir: Path, name: str, repo: Path, *, example: pd.DataFrame,
             params: dict[str, Any], tags: dict[str, str], gate: dict[str, Any],
             plots_dir: Path | None = None) -> VersionInfo:
    """Log params, metrics, plots and the bundle in one MLflow run; register the bundle."""
    import mlflow

    metrics = json.loads((models_dir / "metrics.json").read_text())
    c = client(repo)
    exp = experiment_id(name, repo)
    with mlflow.start_run(experiment_id=exp, run_name=f"{name}-{tags.get('git_commit', '')[:8]}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
        for m in KEY_METRICS:
            if m in metrics:
                mlflow.log_metric(m, metrics[m]["value"])
                for bound in ("ci_low", "ci_high"):
                    if bound in metrics[m]:
                        mlflow.log_metric(f"{m}_{bound}", metrics[m][bound])
        mlflow.set_tags({**tags, "gate": "passed"})
        if plots_dir is not None and plots_dir.is_dir():
            mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
        with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
            path = bundle.build(models_dir, example, Path(tmp) / "bundle",
                                model_card(name, metrics, gate, tags))
            info = register_bundle(path, name, run_id=run.info.run_id,
                                   tags={**tags, "gate": "passed", "run_id": run.info.run_id},
                                   repo=repo, description=f"ROC AUC {metrics['roc_auc']['value']:.4f}")
    c.set_tag(info.run_id, "registered_version", str(info.version))
    return info


def publish_outputs(info: VersionInfo) -> None:
    """In a GitHub Actions step, hand the new version to later steps (`steps.<id>.outputs`)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a") as fh:
            fh.write(f"version={info.version}\nsha256={info.sha256}\nrun_id={info.run_id}\n")


def pipeline_tags(repo: Path, lock: dict[str, Any]) -> dict[str, str]:
    tags = {"git_commit": lineage.git_commit(repo),
            "git_dirty": str(lineage.git_dirty(repo)).lower(), "data_hash": "unknown"}
    tags.update(lineage.data_hashes(lock))
    return tags


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="churn", help="registered model name (default churn)")
    parser.add_argument("--models-dir", type=Path, default=Path("models/churn"))
    parser.add_argument("--test", type=Path, default=Path("data/split/test.parquet"),
                        help="rows for the input example")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repo", type=Path, default=Path("."))


def run(args: argparse.Namespace) -> int:
    repo = args.repo
    lock = lineage.read_lock(repo)
    if not lock:
        raise CommandError(f"{repo / 'dvc.lock'} not found: run `dvc repro` first")
    gate = check_gate(args.models_dir, repo, lock)
    info = register(args.models_dir, args.name, repo, example=pd.read_parquet(args.test).head(5),
                    params=load_params(args.params), tags=pipeline_tags(repo, lock), gate=gate,
                    plots_dir=args.models_dir / "plots")
    print(f"registered {info.name} version {info.version}  sha256 {info.sha256}  run {info.run_id}")
    publish_outputs(info)
    return 0
