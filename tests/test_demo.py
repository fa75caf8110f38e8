"""`make demo` works in a throwaway clone: the user's checkout and branch are never touched."""
from __future__ import annotations

from project import make_project, run

from pipelines.demo import clone, commit_training, set_estimator


def status(repo) -> tuple[str, str, str]:
    return (run(["git", "rev-parse", "HEAD"], repo).stdout,
            run(["git", "status", "--porcelain"], repo).stdout,
            run(["git", "branch", "--list"], repo).stdout)


def test_demo_clone_carries_uncommitted_edits_and_leaves_the_checkout_as_it_was(tmp_path):
    user = make_project(tmp_path / "user")
    declared = user / "models/churn/model.yaml"
    declared.write_text(declared.read_text().replace("test_size: 0.2", "test_size: 0.25"))
    before = status(user)

    demo = clone(user, tmp_path / "build" / "demo" / "repo")
    assert "test_size: 0.25" in (demo / "models/churn/model.yaml").read_text()
    set_estimator(demo, "random_forest")
    commit_training(demo, "Train churn with random forest")

    assert status(user) == before
    assert "test_size: 0.25" in declared.read_text()
    assert "estimator: logistic_regression" in declared.read_text()
    log = run(["git", "log", "--format=%s"], demo).stdout.splitlines()
    assert log[:2] == ["Train churn with random forest", "demo: uncommitted changes of the checkout"]
    assert run(["git", "status", "--porcelain"], demo).stdout == ""
