"""Two promotions racing from the same base: the second never silently overwrites the first."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from gitops_fixtures import MODEL, git, sh

from contracts.pin import Pin
from pipelines.errors import CommandError
from pipelines.gitops.promote import promote

PIN = "environments/staging/churn/model.yaml"

pytest_plugins = ("gitops_fixtures",)


def test_second_push_from_the_same_base_is_rejected_and_loses_nothing(gitops_repo, registry_env,
                                                                      tmp_path):
    ada = gitops_repo
    grace = ada.clone(tmp_path / "grace")

    promote(ada.path, MODEL, 1, "staging", here=True, push=True)
    with pytest.raises(CommandError) as info:
        promote(grace.path, MODEL, 2, "staging", here=True, push=True)

    message = str(info.value)
    assert message.startswith("push of main to origin was rejected: origin/main has commits "
                              "you do not have")
    assert "Your commit is kept on local main" in message
    # Remote keeps the first promotion; the second is intact locally.
    assert Pin.parse(git(ada.remote, "show", f"main:{PIN}")).model.version == 1
    assert Pin.read(grace.path / PIN).model.version == 2
    assert git(grace.path, "log", "-1", "--format=%s").strip() == "Promote churn v2 to staging"

    # Catching up cannot pick a winner silently: the two pins conflict.
    pull = sh(grace.path, "git", "pull", "--rebase", "origin", "main", check=False)
    assert pull.returncode != 0 and f"CONFLICT (content): Merge conflict in {PIN}" in pull.stdout
    sh(grace.path, "git", "rebase", "--abort")


def test_two_promotion_branches_from_the_same_base_conflict_when_both_are_merged(gitops_repo,
                                                                                  registry_env):
    first = promote(gitops_repo.path, MODEL, 1, "staging")
    second = promote(gitops_repo.path, MODEL, 2, "staging")

    git(gitops_repo.path, "merge", "--no-ff", "-q", "-m", "Merge first", first.branch)
    merge = sh(gitops_repo.path, "git", "merge", "--no-ff", "-m", "Merge second", second.branch,
               check=False)
    assert merge.returncode != 0 and f"Merge conflict in {PIN}" in merge.stdout
    sh(gitops_repo.path, "git", "merge", "--abort")
    assert Pin.read(gitops_repo.path / PIN).model.version == 1


def test_the_same_promotion_branch_pushed_twice_is_rejected(gitops_repo, registry_env, tmp_path,
                                                            monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    grace = gitops_repo.clone(tmp_path / "grace")
    promote(gitops_repo.path, MODEL, 1, "staging", push=True)
    with pytest.raises(CommandError, match="push of promote/staging/churn-v1 to origin was "
                                           "rejected"):
        promote(grace.path, MODEL, 1, "staging", push=True, by="Grace <grace@example.com>",
                now=datetime(2030, 1, 1, tzinfo=UTC))
    assert git(grace.path, "rev-parse", "--verify", "promote/staging/churn-v1").strip()
