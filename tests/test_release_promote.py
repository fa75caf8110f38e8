"""`mlops promote` follows the model's release strategy: under `ab` it starts an A/B test (one
file, revertible byte for byte), under `shadow` the version first runs in shadow; history,
status and the pull request show both."""
from __future__ import annotations

import pytest
from gitops_fixtures import MODEL, git

from contracts.pin import Pin
from pipelines.errors import CommandError
from pipelines.gitops import history
from pipelines.gitops.promote import promote
from pipelines.gitops.rollback import rollback
from pipelines.gitops.status import status_rows
from pipelines.release import strategy

pytest_plugins = ("gitops_fixtures",)
PIN = "environments/{}/churn/model.yaml"


def changed_files(repo, sha: str) -> list[str]:
    return git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()


def trailers(repo, sha: str) -> list[str]:
    return git(repo, "log", "-1", "--format=%(trailers:only,unfold)", sha).strip().splitlines()


@pytest.fixture()
def by(gitops_repo):
    """Sets churn's strategy in staging (committed) and returns the repository's path."""
    def use(name: str):
        strategy.change(gitops_repo.path, "staging", MODEL, name, here=True)
        return gitops_repo.path
    return use


def _refused(repo, *args, **kwargs) -> str:
    head, pin = git(repo, "rev-parse", "HEAD"), (repo / PIN.format("staging")).read_bytes()
    with pytest.raises(CommandError) as info:
        promote(repo, *args, **kwargs)
    assert git(repo, "rev-parse", "HEAD") == head
    assert (repo / PIN.format("staging")).read_bytes() == pin
    return str(info.value)


def test_under_ab_a_promotion_starts_an_ab_test_in_one_revertible_commit(by, registry_env):
    repo = by("ab")
    promote(repo, MODEL, 1, "staging", here=True)  # nothing in service: nothing to test against
    before = (repo / PIN.format("staging")).read_bytes()

    result = promote(repo, MODEL, 2, "staging", here=True, unit_field="customerID")

    assert result.kind == "ab" and changed_files(repo, result.commit) == [PIN.format("staging")]
    pin = Pin.read(repo / PIN.format("staging"))
    assert (pin.variant("a").version, pin.variant("b").version) == (1, 2)
    assert pin.ab.split == {"a": 90, "b": 10}  # staging's release settings
    assert (pin.ab.unit.header, pin.ab.unit.field) == (None, "customerID")
    assert pin.ab.b.model.sha256 == registry_env.digests[2]
    assert pin.ab.b.lineage.git_commit == "2" * 40
    assert trailers(repo, result.commit) == [
        "Model: churn", "Version: 2", f"Digest: {registry_env.digests[2]}",
        "Environment: staging", "Variant: b", "Split: 90/10", "Control: 1"]
    assert git(repo, "log", "-1", "--format=%s").strip() == \
        "Start A/B test of churn in staging: v1 90% / v2 10%"
    assert "## Start an A/B test of `churn` in **staging**: v1 (90%) against v2 (10%)" in \
        result.body
    assert "mlops ab-report staging --model churn" in result.body

    # History and status show both variants.
    newest = history.events(repo, "staging", MODEL)[0]
    assert (newest.served.short(), newest.served.note()) == ("v1/v2", "A/B test 90/10")
    row = next(r for r in status_rows(repo, registry=False) if r["environment"] == "staging")
    assert row["version"] == "v1 90% / v2 10%" and row["strategy"] == "ab*"

    # While it runs nothing else is promoted; a rollback ends it, restoring the pin exactly.
    message = _refused(repo, MODEL, 3, "staging", here=True)
    assert "an A/B test runs in staging: churn v1 90% / v2 10%" in message
    assert "mlops ab-conclude staging --model churn" in message
    rollback(repo, "staging", here=True)
    assert (repo / PIN.format("staging")).read_bytes() == before


def test_an_ab_tests_split_and_unit_come_from_the_command_line_or_are_refused(by,
                                                                             registry_env):
    repo = by("ab")
    promote(repo, MODEL, 1, "staging", here=True)
    assert "--split '95' is not A/B" in _refused(repo, MODEL, 2, "staging", here=True,
                                                 split="95")
    assert "add up to 100" in _refused(repo, MODEL, 2, "staging", here=True, split="80/30")
    assert "not an HTTP header name" in _refused(repo, MODEL, 2, "staging", here=True,
                                                 unit_header="X Customer")
    promote(repo, MODEL, 2, "staging", here=True, split="80/20", unit_header="X-Customer-Id")
    pin = Pin.read(repo / PIN.format("staging"))
    assert pin.ab.split == {"a": 80, "b": 20} and pin.ab.unit.header == "X-Customer-Id"


def test_an_ab_split_is_refused_where_the_strategy_is_not_ab(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    message = _refused(gitops_repo.path, MODEL, 2, "staging", here=True, split="90/10")
    assert "churn's strategy in staging is rolling" in message
    assert "mlops strategy staging --model churn --set ab" in message


def test_under_shadow_a_version_first_runs_beside_the_model_then_replaces_it(by, registry_env):
    repo = by("shadow")
    promote(repo, MODEL, 1, "staging", here=True)

    shadowed = promote(repo, MODEL, 2, "staging", here=True)

    pin = Pin.read(repo / PIN.format("staging"))
    assert shadowed.kind == "shadow" and (pin.model.version, pin.shadow.version) == (1, 2)
    assert trailers(repo, shadowed.commit)[-2:] == ["Variant: shadow", "Control: 1"]
    assert git(repo, "log", "-1", "--format=%s").strip() == "Shadow churn v2 beside v1 in staging"
    newest = history.events(repo, "staging", MODEL)[0]
    assert (newest.served.short(), newest.served.note()) == ("v1", "shadow v2")
    # A version that only ran in shadow answered no user: production does not take it yet.
    with pytest.raises(CommandError, match="skipping staging"):
        promote(repo, MODEL, 2, "production", here=True)

    answering = promote(repo, MODEL, 2, "staging", here=True)

    pin = Pin.read(repo / PIN.format("staging"))
    assert answering.kind == "from-shadow" and pin.model.version == 2 and pin.shadow is None
    assert "It ran in shadow before" in answering.body
    promote(repo, MODEL, 2, "production", here=True)  # now staging held it
