"""The Argo WorkflowTemplate: built by hera from DVC's own resolution of dvc.yaml, committed,
one DAG per declared model, and valid for Argo."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from project import call

from pipelines.argo import workflow
from pipelines.argo.__main__ import main as argo_main
from pipelines.errors import CommandError

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "pipelines" / "argo" / "gitops-ml-pipeline.yaml"


def template_doc() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


def templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def dag_tasks(doc: dict, name: str) -> dict[str, dict]:
    return {task["name"]: task for task in templates(doc)[name]["dag"]["tasks"]}


def copy_project(dst: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, dst / name)
    return dst


def depends(task: dict) -> set[str]:
    return set(filter(None, (task.get("depends") or "").split(" && ")))


def test_committed_yaml_is_what_hera_builds_from_dvc_yaml():
    assert COMMITTED.read_text() == workflow.render(), (
        "pipelines/argo/gitops-ml-pipeline.yaml is stale: run `make argo-workflow` and commit it")


def test_check_mode_fails_when_dvc_yaml_and_committed_yaml_drift(tmp_path):
    project = copy_project(tmp_path)
    out = tmp_path / "pipeline.yaml"
    out.write_text(workflow.render(project))
    check = ["--repo", project, "--out", out, "--check"]
    ok = call(argo_main, check, ROOT)
    assert ok.returncode == 0, ok.stderr
    dvc = (project / "dvc.yaml").read_text().replace("--test data/${key}/test.parquet",
                                                      "--test data/${key}/holdout.parquet", 1)
    (project / "dvc.yaml").write_text(dvc)
    stale = call(argo_main, check, ROOT)
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "make argo-workflow" in stale.stderr


def test_each_step_runs_its_stage_command_for_its_model_in_the_project_image():
    steps = templates(template_doc())
    assert steps["train-churn"]["container"]["command"] == [
        "python", "-m", "pipelines.stages.train", "--declaration", "models/churn/model.yaml",
        "--train", "data/churn/train.parquet", "--model", "models/churn/model.skops",
        "--signature", "models/churn/signature.json", "--reference", "models/churn/reference.json"]
    ingest = steps["ingest-churn"]["container"]["command"]
    assert ingest[ingest.index("--source") + 1] == "data/source/telco_churn.csv"
    for name in ("ingest", "split", "train", "export", "evaluate", "gate", "register"):
        container = steps[f"{name}-churn"]["container"]
        assert container["image"] == workflow.IMAGE
        assert container["workingDir"] == workflow.WORKDIR
    register = steps["register-churn"]["container"]["command"][-1]
    assert register == ("dvc commit --force --quiet ingest@churn split@churn train@churn "
                        "export@churn evaluate@churn gate@churn && "
                        "python -m pipelines.cli register churn")


def test_a_models_stages_run_in_dependency_order_and_register_waits_for_all():
    tasks = dag_tasks(template_doc(), "churn")
    assert {name: depends(task) for name, task in tasks.items()} == {
        "ingest": set(),
        "split": {"ingest"},
        "train": {"split"},
        "export": {"train", "split"},
        "evaluate": {"train", "split"},
        "gate": {"train", "export", "evaluate", "split"},  # it times model.onnx
        "register": {"ingest", "split", "train", "export", "evaluate", "gate"},
    }
    # Each hand-off names the artifact its producer writes, at the path dvc.yaml gives it.
    gate_inputs = {a["name"]: a["from"] for a in tasks["gate"]["arguments"]["artifacts"]}
    assert gate_inputs["models-churn-metrics-json"] == (
        "{{tasks.evaluate.outputs.artifacts.models-churn-metrics-json}}")
    produced = {a["name"]: a["path"] for a in
                templates(template_doc())["evaluate-churn"]["outputs"]["artifacts"]}
    assert produced["models-churn-metrics-json"] == f"{workflow.WORKDIR}/models/churn/metrics.json"
    # The data comes from the artifact store, not from git: the source and the collected rows.
    ingest_inputs = {a["name"]: a["from"] for a in tasks["ingest"]["arguments"]["artifacts"]}
    assert ingest_inputs == {
        "data-source-telco-churn-csv": "{{inputs.artifacts.data-source-telco-churn-csv}}",
        "data-churn-production-csv": "{{inputs.artifacts.data-churn-production-csv}}"}


def test_the_model_parameter_chooses_one_model_or_all(tmp_path):
    project = copy_project(tmp_path)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["flats"] = {"source": "data/source/flats.csv",
                                  "production": "data/flats/production.csv"}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    doc = yaml.safe_load(workflow.render(project))
    model = next(p for p in doc["spec"]["arguments"]["parameters"] if p["name"] == "model")
    assert model["value"] == "all" and model["enum"] == ["all", "churn", "flats"]
    entry = dag_tasks(doc, "pipeline")
    assert set(entry) == {"churn", "flats"}
    assert "'{{workflow.parameters.model}}' == 'flats'" in entry["flats"]["when"]
    sources = {a["name"]: a["s3"]["key"] for a in doc["spec"]["arguments"]["artifacts"]}
    assert sources == {
        "data-source-telco-churn-csv": "datasets/data/source/telco_churn.csv",
        "data-churn-production-csv": "datasets/data/churn/production.csv",
        "data-source-flats-csv": "datasets/data/source/flats.csv",
        "data-flats-production-csv": "datasets/data/flats/production.csv"}
    assert "train-flats" in templates(doc) and "register-flats" in templates(doc)


def test_pods_run_unprivileged_and_only_registration_holds_credentials():
    doc = template_doc()
    pod = doc["spec"]["securityContext"]
    assert pod["runAsNonRoot"] and pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for name, template in templates(doc).items():
        if "container" not in template:
            continue
        container = template["container"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True, "runAsNonRoot": True}, name
        assert ("envFrom" in container) == name.startswith("register-"), name
    # What a submitter may choose: the model and the revision, never the image or the repo.
    chosen = {p["name"] for p in doc["spec"]["arguments"]["parameters"]}
    assert chosen == {"model", "revision"}
    repo = next(a for a in templates(doc)["train-churn"]["inputs"]["artifacts"]
                if a["name"] == "repo")
    assert repo["git"]["repo"] == workflow.REPO_URL


def test_a_missing_param_in_dvc_yaml_is_named(tmp_path):
    project = copy_project(tmp_path)
    (project / "dvc.yaml").write_text((project / "dvc.yaml").read_text().replace(
        "${item.source}", "${item.nowhere}", 1))
    with pytest.raises(CommandError, match=r"nowhere"):
        workflow.build(project)


def _crd_check(path: Path | str) -> subprocess.CompletedProcess:
    """`python -m pipelines.checks.manifests --crds PATH`, run in this process."""
    from pipelines.checks import manifests

    return call(manifests.main, ["--crds", path], ROOT)


def test_workflow_template_matches_the_argo_workflows_crd_schema():
    proc = _crd_check("pipelines/argo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   argoproj.io/v1alpha1 WorkflowTemplate/gitops-ml-pipeline" in proc.stdout


def test_crd_check_rejects_a_broken_workflow_template(tmp_path):
    doc = template_doc()
    templates(doc)["train-churn"]["container"]["command"] = "python -m pipelines.stages.train"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc))
    proc = _crd_check(broken)
    assert proc.returncode == 1
    assert "WorkflowTemplate/gitops-ml-pipeline" in proc.stderr and "command" in proc.stderr
