"""The GitHub Actions workflows: valid for actionlint and GitHub's schema, thin, least-privilege,
serialised per environment, every action pinned by commit, clean under zizmor."""
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
               ("release", "image-staging"): {"contents", "pull-requests"},
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


def test_train_trains_and_reports_only_the_models_a_pull_request_touches():
    doc = load("train")
    paths = doc["on"]["pull_request"]["paths"]
    for wanted in ("models/*/model.yaml", "data/**", "params.yaml", "dvc.yaml", "dvc.lock",
                   "pipelines/**"):
        assert wanted in paths
    named = {s.get("id"): s for _, _, s in steps(doc) if s.get("id")}
    assert named["changed"]["run"] == 'mlops changed --base "$BASE"'
    runs = {s["run"]: s for _, _, s in steps(doc) if "run" in s}
    # Both the training and the report take the names that step printed.
    train = runs['make repro-changed MODELS="$MODELS"']
    assert train["env"]["MODELS"] == "${{ steps.changed.outputs.models }}"
    report = named["report"]
    assert report["run"].startswith('make report BASE="$BASE" MODELS="$MODELS"')
    assert "GITHUB_STEP_SUMMARY" in report["run"]
    assert report["env"]["MODELS"] == "${{ steps.changed.outputs.models }}"
    assert "dvc repro" not in runs, "training every model on every pull request"
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
    # The digest the registry answered goes to staging by a pull request changing one file.
    assert doc["jobs"]["image"]["outputs"]["digest"] == f"${{{{ steps.{build['id']}.outputs.digest }}}}"
    rollout = doc["jobs"]["image-staging"]
    assert rollout["needs"] == "image"
    step = next(s for s in rollout["steps"] if s.get("run", "").startswith("mlops image"))
    assert step["run"] == 'mlops image staging --name "$IMAGE" --digest "$DIGEST" ' \
                          '--tag "$GITHUB_SHA" --push'
    assert step["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    assert build["with"]["tags"].startswith(step["env"]["IMAGE"] + ":")
    # Every model the push trained is registered, then promoted by its own pull request.
    register = next(s for s in doc["jobs"]["register"]["steps"] if s.get("id") == "register")
    assert register["run"] == "mlops register $MODELS"
    promote = doc["jobs"]["promote-staging"]
    assert promote["needs"] == "register"
    assert promote["strategy"]["matrix"]["include"] == (
        "${{ fromJSON(needs.register.outputs.registered) }}")
    step = next(s for s in promote["steps"] if s.get("run", "").startswith("mlops promote"))
    assert step["run"] == 'mlops promote "$MODEL" "$VERSION" --to staging --push'
    assert step["env"]["MODEL"] == "${{ matrix.model }}"
    # And the image Argo runs the pipeline in is built from the lock beside the service's.
    files = [s["with"]["file"] for _, _, s in steps(doc)
             if s.get("uses", "").startswith("docker/build-push-action@")]
    assert files == ["service/Dockerfile", "pipelines/Dockerfile"]


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


# `uses: owner/repo@<full commit sha> # vX.Y.Z`: a tag can be moved, a commit cannot; the
# comment says which release it is (Dependabot updates both).
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v(\d+)\.\d+\.\d+)$")


def pinned_uses() -> list[tuple[str, re.Match | None]]:
    return [(f"{p.name}: {line.strip()}", PINNED.match(line))
            for p in sorted(WORKFLOWS.glob("*.yml")) for line in p.read_text().splitlines()
            if re.match(r"^\s*(?:- )?uses:", line)]


def test_every_action_is_pinned_by_full_commit_sha_with_its_version_as_a_comment():
    found = pinned_uses()
    assert len(found) >= 30
    unpinned = [where for where, match in found if match is None]
    assert not unpinned, unpinned
    # One commit per action: two SHAs for one action would be two versions to review.
    shas: dict[str, set[str]] = {}
    for _, match in found:
        shas.setdefault(match[1], set()).add(match[2])
    assert all(len(v) == 1 for v in shas.values()), shas


def test_pinned_versions_are_ones_actionlint_checks_the_inputs_of(tmp_path):
    majors = sorted({f"{m[1]}@v{m[4]}" for _, m in pinned_uses() if m})
    known = _known(majors, tmp_path)
    assert set(majors) <= known, f"versions actionlint does not know: {set(majors) - known}"


def test_zizmor_offline_finds_nothing_in_the_workflows_or_the_dependabot_config():
    proc = subprocess.run([str(BIN / "zizmor"), "--offline", "--no-progress", str(ROOT / ".github")],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


@pytest.mark.parametrize("target", ["workflows-lint", "crds", "monitoring-check", "report",
                                    "repro-changed", "argo-workflow", "github-path"])
def test_make_targets_the_workflows_call_are_documented(target):
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout
    assert re.search(rf"^\s+{re.escape(target)}\s", listed, re.MULTILINE), target


def test_dependabot_updates_python_actions_the_base_image_and_npm():
    config = ROOT / ".github" / "dependabot.yml"
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot",
                           str(config)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    updates = {u["package-ecosystem"]: u for u in yaml.safe_load(config.read_text())["updates"]}
    assert set(updates) == {"pip", "github-actions", "docker", "npm"}
    for ecosystem, path in (("docker", "service/Dockerfile"), ("npm", "tools/crd-validate/package.json")):
        assert (ROOT / updates[ecosystem]["directory"].lstrip("/") / Path(path).name).is_file(), path
