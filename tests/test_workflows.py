"""The GitHub Actions workflows: valid for actionlint and GitHub's schema, thin, least-privilege,
serialised per environment, on current action versions."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
EXPECTED = {"ci", "train", "release", "promote", "rollback", "sync-aliases", "retrain"}
# Workflows whose run: steps `act` executes offline (tests/test_workflows_act.py).
RUN_UNDER_ACT = {"ci", "train", "rollback"}


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def workflows() -> dict[str, dict]:
    return {p.stem: load(p.stem) for p in sorted(WORKFLOWS.glob("*.yml"))}


def steps(doc: dict):
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def actionlint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "actionlint"), "-no-color", *map(str, paths)], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_the_seven_workflows_exist():
    assert set(workflows()) == EXPECTED


def test_every_workflow_passes_actionlint():
    proc = actionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_workflow_matches_the_github_workflow_schema():
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", *map(str, sorted(WORKFLOWS.glob("*.yml")))],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_rejects_a_step_reading_an_undefined_output(tmp_path):
    broken = (WORKFLOWS / "release.yml").read_text().replace(
        "needs.register.outputs.version", "needs.register.outputs.versoin")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    path = tmp_path / ".github" / "workflows" / "release.yml"
    path.write_text(broken)
    proc = actionlint(path, cwd=tmp_path)
    assert proc.returncode == 1
    assert "versoin" in proc.stdout


def test_every_run_step_calls_make_mlops_or_dvc():
    for name, doc in workflows().items():
        for job_id, _, step in steps(doc):
            if "run" in step:
                commands = [c for c in step["run"].strip().splitlines() if c.strip()]
                assert len(commands) == 1, f"{name}/{job_id}: one command per step"
                assert commands[0].split()[0] in {"make", "mlops", "dvc"}, (
                    f"{name}/{job_id}: `{commands[0]}` is logic no local command runs")


def test_permissions_default_to_read_and_jobs_ask_only_for_what_they_write():
    writers = {("release", "image"): {"packages"},
               ("release", "promote-staging"): {"contents", "pull-requests"},
               ("promote", "promote"): {"contents", "pull-requests"},
               ("rollback", "rollback"): {"contents", "pull-requests"},
               ("retrain", "retrain"): {"contents", "pull-requests"},
               ("train", "train"): {"pull-requests"}}
    for name, doc in workflows().items():
        assert doc["permissions"] == {"contents": "read"}, name
        for job_id, job in doc["jobs"].items():
            granted = job.get("permissions", {})
            assert granted != "write-all" and isinstance(granted, dict), (name, job_id)
            writes = {scope for scope, level in granted.items() if level == "write"}
            assert writes == writers.get((name, job_id), set()), (name, job_id, writes)


def test_changes_to_one_environment_are_serialised_and_never_cancelled():
    docs = workflows()
    promote, rollback = docs["promote"]["concurrency"], docs["rollback"]["concurrency"]
    assert promote["group"] == "gitops-${{ inputs.environment }}"
    assert rollback["group"].startswith("gitops-${{ inputs.environment ||")
    assert "client_payload.commonLabels.environment" in rollback["group"]
    assert docs["release"]["jobs"]["promote-staging"]["concurrency"]["group"] == "gitops-staging"
    for group in (promote, rollback, docs["release"]["jobs"]["promote-staging"]["concurrency"]):
        assert group["cancel-in-progress"] is False
    for name, doc in docs.items():
        assert "concurrency" in doc, name


def test_production_changes_need_the_protected_environment_and_its_code_owners():
    job = load("promote")["jobs"]["promote"]
    assert job["environment"] == "${{ inputs.environment }}"
    inputs = load("promote")["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["options"] == ["staging", "production"]
    assert inputs["version"]["type"] == "number"
    owners = (ROOT / ".github" / "CODEOWNERS").read_text()
    assert re.search(r"^/environments/production/\s+@\S+", owners, re.MULTILINE)


def test_workflow_inputs_reach_commands_only_through_environment_variables():
    # `${{ ... }}` inside a run: script is a script-injection hole for dispatch payloads.
    for name, doc in workflows().items():
        for job_id, _, step in steps(doc):
            if "run" in step:
                assert "${{" not in step["run"], f"{name}/{job_id}: {step['run']}"


def test_rollback_starts_by_hand_or_from_alertmanager():
    doc = load("rollback")
    assert doc["on"]["repository_dispatch"]["types"] == ["rollback"]
    env = doc["jobs"]["rollback"]["env"]
    for source in ("inputs.environment", "client_payload.environment",
                   "client_payload.commonLabels.environment"):
        assert source in env["ENVIRONMENT"]
    # The alert names the model (label model); by hand it may be left empty for an environment
    # holding one model.
    for source in ("inputs.model", "client_payload.model", "client_payload.commonLabels.model"):
        assert source in env["MODEL"]
    assert doc["on"]["workflow_dispatch"]["inputs"]["model"]["required"] is False
    runs = [s["run"] for _, _, s in steps(doc) if "run" in s]
    assert 'mlops rollback "$ENVIRONMENT" --model "$MODEL" --push --reason "$REASON"' in runs


def test_train_runs_on_data_params_and_pipeline_changes_and_reports_to_reviewers():
    doc = load("train")
    paths = doc["on"]["pull_request"]["paths"]
    for wanted in ("data/**", "params.yaml", "dvc.yaml", "dvc.lock", "pipelines/**"):
        assert wanted in paths
    runs = [s["run"] for _, _, s in steps(doc) if "run" in s]
    assert "dvc repro" in runs
    assert any(r.startswith("dvc params diff") for r in runs)
    assert any(r.startswith("dvc metrics diff") for r in runs)
    assert any(r.startswith("make report") and "GITHUB_STEP_SUMMARY" in r for r in runs)
    comment = next(s for _, _, s in steps(doc) if s.get("uses", "").startswith(
        "actions/github-script@"))
    assert "<!-- gitops-ml:train-report -->" in comment["with"]["script"]


def test_release_registers_pushes_an_immutable_image_and_opens_the_staging_pull_request():
    doc = load("release")
    assert doc["on"]["push"]["branches"] == ["main"]
    build = next(s for _, _, s in steps(doc) if s.get("uses", "").startswith(
        "docker/build-push-action@"))
    assert build["with"]["tags"].endswith(":${{ github.sha }}")
    assert "latest" not in build["with"]["tags"]
    promote = doc["jobs"]["promote-staging"]
    assert promote["needs"] == "register"
    assert any(s.get("run", "").startswith("mlops promote churn") and "--to staging" in s["run"]
               for s in promote["steps"])


def test_retraining_never_deploys():
    doc = load("retrain")
    assert {"schedule", "repository_dispatch"} <= set(doc["on"])
    assert doc["on"]["repository_dispatch"]["types"] == ["retrain"]
    runs = " ".join(s.get("run", "") for _, _, s in steps(doc))
    assert "mlops promote" not in runs and "mlops register" not in runs
    assert any(s.get("uses", "").startswith("peter-evans/create-pull-request@")
               for _, _, s in steps(doc))


def test_remote_actions_in_workflows_run_offline_are_skipped_only_under_act():
    for name in RUN_UNDER_ACT:
        for job_id, _, step in steps(load(name)):
            uses = step.get("uses", "")
            if uses and not uses.startswith("actions/checkout@"):
                assert "!env.ACT" in step.get("if", ""), f"{name}/{job_id}: {uses}"
            if "run" in step:
                assert "ACT" not in step.get("if", ""), "run: steps must run under act too"


def _known(uses: list[str], tmp_path: Path) -> set[str]:
    """Which `owner/repo@vN` actionlint knows the inputs of (it lists an undefined input)."""
    steps_yaml = "".join(f"      - uses: {u}\n        with:\n          not_an_input_{i}: x\n"
                         for i, u in enumerate(uses))
    wf = tmp_path / ".github" / "workflows" / "probe.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text("on: push\njobs:\n  probe:\n    runs-on: ubuntu-latest\n    steps:\n"
                  + steps_yaml)
    out = actionlint(wf, cwd=tmp_path).stdout
    return {u for i, u in enumerate(uses) if f'"not_an_input_{i}" is not defined' in out}


def test_actions_are_on_the_newest_major_version_actionlint_knows(tmp_path):
    used = sorted({s["uses"] for doc in workflows().values() for _, _, s in steps(doc)
                   if "uses" in s})
    newer = []
    for uses in used:
        repo, version = uses.split("@")
        assert re.fullmatch(r"v\d+", version), f"{uses}: pin a major version tag"
        newer.append(f"{repo}@v{int(version[1:]) + 1}")
    known = _known(used + newer, tmp_path)
    assert set(used) <= known, f"versions actionlint does not know: {set(used) - known}"
    assert not (set(newer) & known), f"a newer major exists: {set(newer) & known}"


@pytest.mark.parametrize("target", ["workflows-lint", "crds", "monitoring-check", "report",
                                    "argo-workflow", "github-path"])
def test_make_targets_the_workflows_call_are_documented(target):
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout
    assert re.search(rf"^\s+{re.escape(target)}\s", listed, re.MULTILINE), target
