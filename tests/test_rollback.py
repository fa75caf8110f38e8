"""Rollback is `git revert` of a promotion: it always applies and restores the pin byte for byte."""
from __future__ import annotations

import pytest
from gitops_fixtures import MODEL, git

from contracts.pin import Pin
from pipelines import cli
from pipelines.errors import CommandError
from pipelines.gitops import history
from pipelines.gitops.promote import promote
from pipelines.gitops.rollback import rollback

ENVS = ("staging", "production")

pytest_plugins = ("gitops_fixtures",)


def promotion_commit(repo, env: str, version: int) -> str:
    """Find a promotion the way a person would: by its trailers."""
    out = git(repo, "log", "--format=%H", "--grep", f"^Environment: {env}$",
              "--grep", f"^Version: {version}$", "--all-match")
    shas = out.split()
    assert len(shas) == 1, out
    return shas[0]


def test_promotions_then_rollbacks_restore_every_previous_pin_byte_for_byte(gitops_repo,
                                                                           registry_env):
    repo = gitops_repo
    pins = {env: [repo.pin_bytes(env)] for env in ENVS}  # index = version, 0 = empty
    for version in (1, 2, 3):
        for env in ENVS:
            promote(repo.path, MODEL, version, env, here=True, push=True)
            pins[env].append(repo.pin_bytes(env))
            repo.unrelated_commit(text=f"after v{version} to {env}\n")

    # mlops rollback: v3 -> v2, with unrelated work landing in between.
    result = rollback(repo.path, "production", here=True, push=True)
    assert result.reverted == promotion_commit(repo.path, "production", 3)
    assert repo.pin_bytes("production") == pins["production"][2]
    repo.unrelated_commit(text="hotfix\n")

    # Typed by hand: git revert of the v2 promotion found by its trailers.
    git(repo.path, "revert", "--no-edit", promotion_commit(repo.path, "production", 2))
    assert repo.pin_bytes("production") == pins["production"][1]

    # mlops rollback now finds v1 as the promotion in effect, and reverting it empties the pin.
    rollback(repo.path, "production", here=True)
    assert repo.pin_bytes("production") == pins["production"][0]
    assert Pin.read(repo.path / "environments/production/churn/model.yaml").is_empty
    with pytest.raises(CommandError, match="nothing to roll back in production"):
        rollback(repo.path, "production", here=True)

    # Staging is untouched by all of it, and rolls back on its own.
    assert repo.pin_bytes("staging") == pins["staging"][3]
    for version in (2, 1, 0):
        rollback(repo.path, "staging", here=True)
        assert repo.pin_bytes("staging") == pins["staging"][version]
    assert git(repo.path, "status", "--porcelain").strip() == ""


def test_hand_typed_git_revert_gives_the_same_commit_content_as_mlops_rollback(gitops_repo,
                                                                               registry_env,
                                                                               tmp_path):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    promote(gitops_repo.path, MODEL, 2, "staging", here=True, push=True)
    by_hand = gitops_repo.clone(tmp_path / "by-hand")

    result = rollback(gitops_repo.path, "staging", here=True)
    git(by_hand.path, "revert", "--no-edit", promotion_commit(by_hand.path, "staging", 2))

    assert result.commit == gitops_repo.head()
    for fmt in ("%T", "%B"):  # same tree, same message
        assert git(gitops_repo.path, "log", "-1", f"--format={fmt}") == \
            git(by_hand.path, "log", "-1", f"--format={fmt}")
    kinds = [e.kind for e in history.events(by_hand.path, "staging", MODEL)]
    assert kinds[:3] == ["rollback", "promotion", "promotion"]


def test_reverting_a_rollback_brings_the_promotion_back(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    v2 = gitops_repo.pin_bytes("staging")
    first = rollback(gitops_repo.path, "staging", here=True)
    git(gitops_repo.path, "revert", "--no-edit", first.commit)
    assert gitops_repo.pin_bytes("staging") == v2

    # The promotion of v2 is in effect again, so it is what the next rollback reverts.
    second = rollback(gitops_repo.path, "staging", here=True)
    assert second.reverted == first.reverted
    assert Pin.read(gitops_repo.path / "environments/staging/churn/model.yaml").model.version == 1


def test_rollback_defaults_to_a_branch_and_leaves_the_checkout_alone(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    head, pin = gitops_repo.head(), gitops_repo.pin_bytes("staging")

    result = rollback(gitops_repo.path, "staging", push=True)

    assert result.branch.startswith("rollback/staging/churn-v2-")
    assert (gitops_repo.head(), gitops_repo.pin_bytes("staging")) == (head, pin)
    assert git(gitops_repo.remote, "rev-parse", result.branch).strip() == result.commit
    assert result.previous.model.version == 2 and result.pin.model.version == 1
    assert git(gitops_repo.path, "log", "-1", "--format=%s", result.commit).strip() == \
        'Revert "Promote churn v2 to staging"'


def test_rollback_refuses_when_the_pin_was_edited_outside_promotions(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    pin_path = gitops_repo.path / "environments/staging/churn/model.yaml"
    pin_path.write_text(pin_path.read_text().replace("roc_auc: 0.81", "roc_auc: 0.91"))
    git(gitops_repo.path, "commit", "-qam", "Edit the staging pin by hand")
    head = gitops_repo.head()

    with pytest.raises(CommandError,
                       match="does not apply cleanly .*environments/staging/churn/model.yaml"):
        rollback(gitops_repo.path, "staging", here=True)
    assert gitops_repo.head() == head
    assert git(gitops_repo.path, "status", "--porcelain").strip() == ""
    with pytest.raises(CommandError, match="does not apply cleanly"):
        rollback(gitops_repo.path, "staging")
    assert "rollback/" not in git(gitops_repo.path, "branch", "--list")


def test_rollback_refuses_a_dirty_working_tree(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    (gitops_repo.path / "environments/staging/churn/model.yaml").write_text("edited\n")
    with pytest.raises(CommandError, match="dirty working tree: .*environments/staging/churn/model.yaml"):
        rollback(gitops_repo.path, "staging", here=True)


def test_cli_rollback_prints_what_changed(gitops_repo, registry_env, capsys):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    assert cli.main(["rollback", "staging", "--here", "--repo", str(gitops_repo.path)]) == 0
    assert "rolled back staging: churn v1 -> nothing" in capsys.readouterr().out
    assert cli.main(["rollback", "staging", "--repo", str(gitops_repo.path)]) == 2
    assert "mlops rollback: nothing to roll back in staging" in capsys.readouterr().err
