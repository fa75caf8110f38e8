"""`mlops promote`: one commit that changes one pin, after the registry checks pass."""
from __future__ import annotations

import pytest
from gitops_fixtures import MODEL, git

from contracts.pin import Pin
from pipelines import cli
from pipelines.errors import CommandError
from pipelines.gitops import git as gitops
from pipelines.gitops.promote import promote

PIN = "environments/{}/churn/model.yaml"

pytest_plugins = ("gitops_fixtures",)


def changed_files(repo, sha: str) -> list[str]:
    return git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()


def test_promotion_is_one_commit_changing_only_the_pin_with_trailers(gitops_repo, registry_env):
    before = gitops_repo.head()
    result = promote(gitops_repo.path, MODEL, 1, "staging", here=True)

    assert git(gitops_repo.path, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
    assert result.commit == gitops_repo.head()
    assert changed_files(gitops_repo.path, result.commit) == [PIN.format("staging")]
    trailers = git(gitops_repo.path, "log", "-1", "--format=%(trailers:only,unfold)")
    trailers = trailers.strip().splitlines()
    assert trailers == ["Model: churn", "Version: 1", f"Digest: {registry_env.digests[1]}",
                        "Environment: staging"]
    assert git(gitops_repo.path, "log", "-1", "--format=%s").strip() == \
        "Promote churn v1 to staging"
    assert git(gitops_repo.path, "status", "--porcelain").strip() == ""


def test_pin_holds_immutable_references_lineage_metrics_and_who(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    pin = Pin.read(gitops_repo.path / PIN.format("staging"))

    assert pin.model.uri == "models:/churn/2"
    assert pin.model.sha256 == registry_env.digests[2]
    assert pin.lineage.git_commit == "2" * 40 and pin.lineage.data_hash == "2" * 32
    assert len(pin.lineage.run_id) == 32
    assert pin.lineage.params == {"train.estimator": "logistic_regression"}
    # Point estimates only; the intervals stay in the registry and the PR.
    assert pin.metrics == {"roc_auc": 0.83, "f1": 0.63}
    assert pin.promoted.by == gitops.identity(gitops_repo.path)
    text = (gitops_repo.path / PIN.format("staging")).read_text()
    assert "@" not in text.split("promoted:")[0] and "latest" not in text


def test_promotion_defaults_to_a_new_branch_and_leaves_the_checkout_alone(gitops_repo,
                                                                          registry_env):
    before_head, before_pin = gitops_repo.head(), gitops_repo.pin_bytes("staging")
    result = promote(gitops_repo.path, MODEL, 1, "staging")

    assert result.branch == "promote/staging/churn-v1"
    assert gitops_repo.head() == before_head
    assert gitops_repo.pin_bytes("staging") == before_pin
    assert git(gitops_repo.path, "rev-parse", result.branch).strip() == result.commit
    assert git(gitops_repo.path, "rev-parse", f"{result.commit}^").strip() == before_head
    assert changed_files(gitops_repo.path, result.commit) == [PIN.format("staging")]
    assert git(gitops_repo.path, "worktree", "list").count("\n") == 1  # temp work tree gone
    # Not pushed unless asked.
    assert git(gitops_repo.remote, "branch", "--list", result.branch).strip() == ""


def test_push_sends_the_promotion_branch_to_the_remote(gitops_repo, registry_env, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    result = promote(gitops_repo.path, MODEL, 1, "staging", push=True)
    assert result.pushed and result.pull_request is None
    assert git(gitops_repo.remote, "rev-parse", result.branch).strip() == result.commit


def test_production_accepts_a_digest_staging_pinned_before(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    # Staging has moved on to v2; v1 was still proven in staging by history.
    result = promote(gitops_repo.path, MODEL, 1, "production", here=True)
    assert Pin.read(gitops_repo.path / PIN.format("production")).model.version == 1
    assert "Staging pinned this exact digest" in result.body


def _refusal(repo, *args, **kwargs) -> str:
    head = git(repo, "rev-parse", "HEAD").strip()
    branches = git(repo, "branch", "--list")
    with pytest.raises(CommandError) as info:
        promote(repo, *args, **kwargs)
    # A refusal changes nothing: no commit, no branch, no file.
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "branch", "--list") == branches
    return str(info.value)


def test_refuses_an_unknown_version(gitops_repo, registry_env):
    message = _refusal(gitops_repo.path, MODEL, 99, "staging", here=True)
    assert message.startswith("unknown version:") and "churn version 99 does not exist" in message


def test_refuses_a_version_whose_gate_failed(gitops_repo, registry_env):
    message = _refusal(gitops_repo.path, MODEL, 4, "staging", here=True)
    assert message.startswith("failed gate: churn v4 did not pass its gates")
    assert "'failed'" in message


def test_a_gate_tag_set_to_passed_by_hand_does_not_promote_a_version_whose_bundle_failed(
        gitops_repo, registry_env):
    # Anyone with MLflow write access can set the tag; the verdict travels inside the verified
    # bundle (gate.json is part of the digest the pin records).
    from pipelines.registry import store as registry

    client = registry.client()
    client.set_model_version_tag(MODEL, "4", "gate", "passed")
    try:
        message = _refusal(gitops_repo.path, MODEL, 4, "staging", here=True)
    finally:
        client.set_model_version_tag(MODEL, "4", "gate", "failed")
    assert message.startswith("failed gate: the gate.json in the artifact of churn v4 says it "
                              "did not pass its gates (failed: floor roc_auc), whatever the "
                              "registry's gate tag says")


def test_a_bundle_without_gate_json_is_refused_whatever_its_tag_says(gitops_repo, registry_env,
                                                                      tmp_path):
    from gitops_fixtures import _base_bundle

    from pipelines.registry import store as registry

    name = "nogate"
    gitops_repo.add_model(name)
    client = registry.client()
    run_id = client.create_run(registry.experiment_id(name)).info.run_id
    bundle = _base_bundle(tmp_path / "bundle", name)
    info = registry.register_bundle(bundle, name, run_id=run_id, tags={
        "gate": "passed", "run_id": run_id, "git_commit": "a" * 40, "data_hash": "b" * 32})
    message = _refusal(gitops_repo.path, name, info.version, "staging", here=True)
    assert message.startswith(f"failed gate: the artifact of nogate v{info.version} holds no "
                              f"gate.json")


def test_refuses_an_artifact_whose_digest_no_longer_matches(gitops_repo, registry_env):
    message = _refusal(gitops_repo.path, MODEL, 6, "staging")
    assert message.startswith("digest mismatch: the artifact of churn v6 hashes to")
    assert registry_env.digests[6] in message


def test_refuses_production_before_staging_held_the_digest(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    message = _refusal(gitops_repo.path, MODEL, 2, "production", here=True)
    assert message.startswith("skipping staging: production only accepts a digest that "
                              "staging has pinned before")
    assert "mlops promote churn 2 --to staging" in message


def test_a_staging_promotion_that_was_rolled_back_does_not_count_for_production(gitops_repo,
                                                                               registry_env):
    from pipelines.gitops.rollback import rollback

    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    v2 = promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    undo = rollback(gitops_repo.path, "staging", here=True)
    message = _refusal(gitops_repo.path, MODEL, 2, "production", here=True)
    assert f"churn v2 (sha256 {registry_env.digests[2][:12]}) was pinned there by " \
           f"{v2.commit[:8]} but that was reverted" in message
    promote(gitops_repo.path, MODEL, 1, "production", here=True)  # v1 is still held
    # Reverting the rollback puts v2 back in staging, and with it the proof.
    git(gitops_repo.path, "revert", "--no-edit", undo.commit)
    result = promote(gitops_repo.path, MODEL, 2, "production", here=True)
    assert f"Staging pinned this exact digest in commit `{v2.commit[:12]}`" in result.body


def test_a_staging_branch_not_yet_merged_does_not_count_for_production(gitops_repo,
                                                                       registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging")  # branch only, main unchanged
    assert "skipping staging" in _refusal(gitops_repo.path, MODEL, 1, "production", here=True)


def test_refuses_a_dirty_working_tree(gitops_repo, registry_env):
    (gitops_repo.path / "README.md").write_text("edited\n")
    message = _refusal(gitops_repo.path, MODEL, 1, "staging", here=True)
    assert message.startswith("dirty working tree: uncommitted changes in README.md")
    assert (gitops_repo.path / "README.md").read_text() == "edited\n"


def test_refuses_a_pin_already_at_that_version(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    message = _refusal(gitops_repo.path, MODEL, 1, "staging", here=True)
    assert message == "staging already pins churn v1; nothing to promote"


def test_refuses_an_unknown_environment(gitops_repo, registry_env):
    message = _refusal(gitops_repo.path, MODEL, 1, "prod", here=True)
    assert message.startswith("unknown environment 'prod': this repository has staging, "
                              "production")


def test_refuses_a_branch_that_already_exists(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging")
    message = _refusal(gitops_repo.path, MODEL, 1, "staging")
    assert message.startswith("branch promote/staging/churn-v1 already exists")


def test_a_rejected_commit_leaves_the_pin_and_index_untouched(gitops_repo, registry_env):
    hook = gitops_repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'pin changes need review' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = gitops_repo.pin_bytes("staging")
    for here in (True, False):
        message = _refusal(gitops_repo.path, MODEL, 1, "staging", here=here)
        assert "pin changes need review" in message
        assert gitops_repo.pin_bytes("staging") == before
        assert git(gitops_repo.path, "status", "--porcelain").strip() == ""
        assert git(gitops_repo.path, "worktree", "list").count("\n") == 1


def test_cli_prints_the_refusal_and_exits_2(gitops_repo, registry_env, capsys):
    code = cli.main(["promote", MODEL, "4", "--to", "staging", "--repo", str(gitops_repo.path)])
    assert code == 2
    assert "mlops promote: failed gate: churn v4" in capsys.readouterr().err


def test_cli_promotes_here_and_prints_the_undo_command(gitops_repo, registry_env, capsys):
    code = cli.main(["promote", MODEL, "1", "--to", "staging", "--here",
                     "--repo", str(gitops_repo.path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "promoted churn v1 to staging (was nothing)" in out
    assert f"undo: git revert {gitops_repo.head()}" in out


def test_a_clone_can_promote_from_the_embedded_registry_of_another_checkout(
        gitops_repo, registry_env, registry_store, monkeypatch, tmp_path):
    # The embedded default: <checkout>/.mlflow/mlflow.db, found through `registry_repo`.
    checkout = tmp_path / "checkout"
    (checkout / ".mlflow").mkdir(parents=True)
    db = registry_store.uri.removeprefix("sqlite:///")
    (checkout / ".mlflow" / "mlflow.db").symlink_to(db)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    result = promote(gitops_repo.path, MODEL, 1, "staging", here=True, registry_repo=checkout)
    assert result.sha256 == registry_env.digests[1]
