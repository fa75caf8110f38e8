"""The Argo WorkflowTemplate: built by hera from dvc.yaml, committed, and valid for Argo."""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.argo import workflow

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "pipelines" / "argo" / "churn-pipeline.yaml"


def template_doc() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


def containers(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"] if "container" in t}


def dag_tasks(doc: dict) -> dict[str, dict]:
    dag = next(t for t in doc["spec"]["templates"] if t["name"] == doc["spec"]["entrypoint"])
    return {task["name"]: task for task in dag["dag"]["tasks"]}


def copy_project(dst: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, dst / name)
    return dst


def test_committed_yaml_is_what_hera_builds_from_dvc_yaml():
    assert COMMITTED.read_text() == workflow.render(), (
        "pipelines/argo/churn-pipeline.yaml is stale: run `make argo-workflow` and commit it")


def test_check_mode_fails_when_dvc_yaml_and_committed_yaml_drift(tmp_path):
    project = copy_project(tmp_path)
    out = tmp_path / "churn-pipeline.yaml"
    out.write_text(workflow.render(project))
    ok = subprocess.run([sys.executable, "-m", "pipelines.argo", "--repo", str(project),
                         "--out", str(out), "--check"],
                        capture_output=True, text=True, cwd=ROOT, check=False)
    assert ok.returncode == 0, ok.stderr
    dvc = (project / "dvc.yaml").read_text().replace("--test data/split/test.parquet",
                                                      "--test data/split/holdout.parquet")
    (project / "dvc.yaml").write_text(dvc)
    stale = subprocess.run([sys.executable, "-m", "pipelines.argo", "--repo", str(project),
                            "--out", str(out), "--check"],
                        capture_output=True, text=True, cwd=ROOT, check=False)
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "make argo-workflow" in stale.stderr


def test_each_step_runs_the_dvc_stage_command_in_the_project_image():
    doc = template_doc()
    steps = containers(doc)
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert list(steps) == [*dvc, "register"]
    for name, spec in dvc.items():
        expected = workflow._interpolate(" ".join(spec["cmd"].split()), params)
        container = steps[name]["container"]
        assert container["command"] == shlex.split(expected), name
        assert container["image"] == "{{workflow.parameters.image}}"
        assert container["workingDir"] == workflow.WORKDIR
    register = steps["register"]["container"]["command"]
    assert register[-1].endswith("python -m pipelines.cli register")


def test_artifacts_flow_from_the_stage_that_writes_a_path_to_the_stages_that_read_it():
    doc = template_doc()
    tasks, steps = dag_tasks(doc), containers(doc)
    stages = workflow.stages(ROOT)
    writer = {out: s.name for s in stages for out in s.outs}
    for stage in stages:
        inputs = {a["name"]: a for a in steps[stage.name]["inputs"]["artifacts"]}
        assert inputs["repo"]["git"]["revision"] == "{{workflow.parameters.revision}}"
        outputs = {a["name"]: a["path"] for a in steps[stage.name].get("outputs", {}).get(
            "artifacts", [])}
        for out in stage.outs:
            assert outputs[workflow.artifact_name(out)] == f"{workflow.WORKDIR}/{out}"
        passed = {a["name"]: a["from"] for a in tasks[stage.name].get("arguments", {}).get(
            "artifacts", [])}
        for dep in stage.deps:
            if dep in writer:
                name = workflow.artifact_name(dep)
                assert inputs[name]["path"] == f"{workflow.WORKDIR}/{dep}"
                assert passed[name] == f"{{{{tasks.{writer[dep]}.outputs.artifacts.{name}}}}}"
                assert writer[dep] in tasks[stage.name]["depends"]
    # The raw data comes from the artifact store, not from git.
    assert "source-data" in passed_names(tasks["ingest"])
    # Registration waits for every stage, the gate included.
    assert set(tasks["register"]["depends"].split(" && ")) == {s.name for s in stages}


def passed_names(task: dict) -> set[str]:
    return {a["name"] for a in task.get("arguments", {}).get("artifacts", [])}


def test_registration_sees_every_output_and_only_runs_after_the_gate():
    doc = template_doc()
    stages = workflow.stages(ROOT)
    outs = {workflow.artifact_name(o) for s in stages for o in s.outs}
    assert outs <= passed_names(dag_tasks(doc)["register"])
    assert "gate" in [s.name for s in stages]


def test_a_missing_param_in_dvc_yaml_is_named(tmp_path):
    project = copy_project(tmp_path)
    (project / "dvc.yaml").write_text((project / "dvc.yaml").read_text().replace(
        "${ingest.source}", "${ingest.nowhere}", 1))
    from pipelines.errors import CommandError

    with pytest.raises(CommandError, match=r"ingest\.nowhere"):
        workflow.build(project)


def test_workflow_template_matches_the_argo_workflows_crd_schema():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing")
    proc = subprocess.run([sys.executable, "-m", "pipelines.checks.manifests", "--crds", "pipelines/argo"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   argoproj.io/v1alpha1 WorkflowTemplate/churn-pipeline" in proc.stdout


def test_crd_check_rejects_a_broken_workflow_template(tmp_path):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing")
    doc = template_doc()
    containers(doc)["train"]["container"]["command"] = "python -m pipelines.stages.train"  # not a list
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc))
    proc = subprocess.run([sys.executable, "-m", "pipelines.checks.manifests", "--crds", str(broken)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "WorkflowTemplate/churn-pipeline" in proc.stderr and "command" in proc.stderr
