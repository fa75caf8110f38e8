"""Several models in one environment: each is pinned, promoted, rolled back, reported and served
on its own, and what happens to one never reaches another."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gitops_fixtures import MODEL, OTHER, git
from service_fixtures import RunningService, free_port, write_pin

from contracts.pin import Pin
from pipelines import cli
from pipelines.checks import manifests
from pipelines.errors import CommandError
from pipelines.gitops import history
from pipelines.gitops.promote import promote
from pipelines.gitops.rollback import rollback
from pipelines.gitops.status import status_rows
from pipelines.registry import store as registry
from pipelines.registry.sync_aliases import sync_aliases

pytest_plugins = ("gitops_fixtures", "service_fixtures")
MLOPS = Path(sys.executable).parent / "mlops"


def changed_files(repo, sha: str) -> list[str]:
    return git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()


def render(repo: Path, env: str, model: str) -> str:
    return manifests.render(repo / "environments" / env / model)


@pytest.fixture()
def two_models(gitops_repo):
    """The test repository with `housing` added to every environment beside `churn`."""
    gitops_repo.add_model(OTHER)
    return gitops_repo


@pytest.mark.slow
def test_rollbacks_stay_separate(two_models, registry_env, served_registry, tmp_path):
    """Rolling back model B in production leaves model A's pin, its rendered manifests and the
    version it serves untouched."""
    repo = two_models
    # Model A (churn, a real model the service can load) is pinned in production.
    write_pin(repo.path / "environments/production/churn/model.yaml", served_registry, 1,
              environment="production")
    git(repo.path, "commit", "-qam", "Pin churn v1 in production")
    # Model B (housing) is promoted twice.
    for version in (1, 2):
        for env in ("staging", "production"):
            promote(repo.path, OTHER, version, env, here=True)
    pin_a, render_a = repo.pin_bytes("production", MODEL), render(repo.path, "production", MODEL)
    render_b = render(repo.path, "production", OTHER)

    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": served_registry.uri, "PIN_POLL_SECONDS": "0.2",
           "MODEL_CACHE_DIR": str(tmp_path / "cache")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(MLOPS), "serve", "--env", "production", "--model", MODEL,
                                 "--port", str(port)], cwd=repo.path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    service = RunningService(f"http://127.0.0.1:{port}", proc, log,
                             repo.path / "environments/production/churn/model.yaml")
    try:
        assert service.wait_ready(1)["sha256"] == served_registry.digests[1]
        served = service.get("/v1/model").json()

        result = rollback(repo.path, "production", OTHER, here=True)

        assert changed_files(repo.path, result.commit) == [
            f"environments/production/{OTHER}/model.yaml"]
        assert Pin.read(repo.path / f"environments/production/{OTHER}/model.yaml"
                        ).model.version == 1
        assert render(repo.path, "production", OTHER) != render_b
        # Model A: the same pin, the same manifests (so Kubernetes restarts none of its pods),
        # and the service still serves the same load of the same version.
        assert repo.pin_bytes("production", MODEL) == pin_a
        assert render(repo.path, "production", MODEL) == render_a
        now = service.get("/v1/model").json()
        assert (now["name"], now["version"], now["sha256"], now["loaded_at"]) == (
            MODEL, 1, served_registry.digests[1], served["loaded_at"])
        assert service.get("/ready").json()["in_sync"] is True
    finally:
        service.stop()


def test_rolling_back_one_model_reverts_its_own_newest_promotion(two_models, registry_env):
    repo = two_models.path
    promote(repo, MODEL, 1, "staging", here=True)
    promote(repo, OTHER, 1, "staging", here=True)
    promote(repo, MODEL, 2, "staging", here=True)
    promote(repo, OTHER, 2, "staging", here=True)
    churn_v2 = two_models.pin_bytes("staging", MODEL)

    result = rollback(repo, "staging", OTHER, here=True)
    assert result.summary().startswith(f"rolled back staging: {OTHER} v2 -> {OTHER} v1")
    assert result.branch == "main"
    assert two_models.pin_bytes("staging", MODEL) == churn_v2
    # The next rollback of churn skips housing's commits and reverts churn v2.
    result = rollback(repo, "staging", MODEL, here=True)
    assert (result.previous.model.version, result.pin.model.version) == (2, 1)
    assert Pin.read(repo / f"environments/staging/{OTHER}/model.yaml").model.version == 1


def test_rollback_needs_the_model_when_the_environment_holds_several(two_models, registry_env,
                                                                     capsys):
    promote(two_models.path, MODEL, 1, "staging", here=True)
    head = two_models.head()
    args = ["rollback", "staging", "--here", "--repo", str(two_models.path)]
    assert cli.main(args) == 2
    assert ("mlops rollback: staging holds 2 models (churn, housing): say which with "
            "--model NAME") in capsys.readouterr().err
    assert cli.main([*args, "--model", "fraud"]) == 2
    assert "no model 'fraud' in staging" in capsys.readouterr().err
    assert two_models.head() == head
    assert cli.main([*args, "--model", MODEL]) == 0
    assert "rolled back staging: churn v1 -> nothing" in capsys.readouterr().out


def test_rollback_may_leave_out_the_model_when_the_environment_holds_one(gitops_repo,
                                                                         registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    assert rollback(gitops_repo.path, "staging", here=True).model == MODEL


def test_production_accepts_only_a_digest_staging_held_for_that_same_model(two_models,
                                                                          registry_env):
    repo = two_models.path
    promote(repo, OTHER, 1, "staging", here=True)
    promote(repo, OTHER, 1, "production", here=True)  # housing v1 was in staging
    with pytest.raises(CommandError) as info:
        promote(repo, MODEL, 1, "production", here=True)
    assert "never was in the history of environments/staging/churn/model.yaml" in str(info.value)


def test_promotion_refuses_a_model_the_environment_does_not_have(gitops_repo, registry_env):
    head = gitops_repo.head()
    with pytest.raises(CommandError, match="no model 'housing' in staging .*staging has churn"):
        promote(gitops_repo.path, OTHER, 1, "staging", here=True)
    assert gitops_repo.head() == head


def test_a_promotion_of_one_model_is_a_commit_changing_its_pin_alone(two_models, registry_env):
    result = promote(two_models.path, OTHER, 2, "staging", here=True)
    assert changed_files(two_models.path, result.commit) == [
        f"environments/staging/{OTHER}/model.yaml"]
    assert result.branch == "main" and result.pin.model.name == OTHER
    branch = promote(two_models.path, OTHER, 1, "staging").branch
    assert branch == f"promote/staging/{OTHER}-v1"


def test_status_shows_every_model_in_every_environment(two_models, registry_env):
    promote(two_models.path, OTHER, 2, "staging", here=True)
    rows = [(r["environment"], r["model"], r["version"]) for r in status_rows(two_models.path)]
    assert rows == [("staging", MODEL, "(nothing promoted)"), ("staging", OTHER, "v2"),
                    ("production", MODEL, "(nothing promoted)"),
                    ("production", OTHER, "(nothing promoted)")]


def test_history_of_an_environment_interleaves_its_models_and_one_model_can_be_asked_for(
        two_models, registry_env):
    repo = two_models.path
    promote(repo, MODEL, 1, "staging", here=True)
    promote(repo, OTHER, 1, "staging", here=True)
    rollback(repo, "staging", MODEL, here=True)
    rows = [line.split()[2:5] for line in
            history.history_lines(repo, "staging").splitlines()[2:]]
    assert rows[:3] == [[MODEL, "rollback", "nothing"], [OTHER, "promotion", "v1"],
                        [MODEL, "promotion", "v1"]]
    only = history.history_lines(repo, "staging", OTHER).splitlines()
    assert only[0] == (f"history of {OTHER} in staging (environments/staging/{OTHER}/model.yaml),"
                       " newest first")
    assert {line.split()[2] for line in only[2:]} == {OTHER}
    with pytest.raises(CommandError, match="no model 'fraud' in staging"):
        history.history_lines(repo, "staging", "fraud")


def test_sync_aliases_makes_every_models_aliases_follow_its_pins(two_models, registry_env):
    promote(two_models.path, MODEL, 3, "staging", here=True)
    promote(two_models.path, OTHER, 2, "staging", here=True)
    promote(two_models.path, OTHER, 2, "production", here=True)
    registry.set_alias(OTHER, "production", 1)
    changes = sync_aliases(two_models.path)
    assert [c.describe(applied=True) for c in changes] == [
        "churn@staging: registry says unset, git pins v3; moved to v3",
        "housing@staging: registry says unset, git pins v2; moved to v2",
        "housing@production: registry says v1, git pins v2; moved to v2",
    ]
    assert (registry.aliases(MODEL), registry.aliases(OTHER)) == (
        {"staging": 3}, {"staging": 2, "production": 2})
    # Rolled back to nothing everywhere, a model keeps no alias.
    rollback(two_models.path, "staging", MODEL, here=True)
    assert [c.describe(applied=True) for c in sync_aliases(two_models.path)] == [
        "churn@staging: registry says v3, git pins nothing; deleted"]
    assert registry.aliases(MODEL) == {}
