"""`mlops status`, `mlops history` and `mlops sync-aliases`: git says, the registry follows."""
from __future__ import annotations

from gitops_fixtures import MODEL, git

from pipelines import cli
from pipelines.gitops import history
from pipelines.gitops.promote import promote
from pipelines.gitops.rollback import rollback
from pipelines.gitops.status import status_rows, status_table
from pipelines.registry import store as registry
from pipelines.registry.sync_aliases import sync_aliases

pytest_plugins = ("gitops_fixtures",)


def _row(repo, env: str, **kwargs) -> dict[str, str]:
    return next(r for r in status_rows(repo, **kwargs) if r["environment"] == env)


def test_status_shows_each_environment_with_its_pin_and_registry_agreement(gitops_repo,
                                                                           registry_env):
    promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    sync_aliases(gitops_repo.path)

    table = status_table(gitops_repo.path)
    header, staging, production = table.splitlines()
    assert header.split() == ["ENVIRONMENT", "MODEL", "VERSION", "DIGEST", "STRATEGY",
                              "PROMOTED", "BY", "METRICS", "REGISTRY"]
    assert staging.startswith("staging") and production.startswith("production")
    row = _row(gitops_repo.path, "staging")
    assert (row["model"], row["version"], row["digest"]) == (
        "churn", "v2", registry_env.digests[2][:12])
    assert row["metrics"] == "roc_auc=0.830 f1=0.630"
    assert row["registry"] == "ok"
    assert row["strategy"] == "rolling" and "canary" in production
    assert "(nothing promoted)" in production


def test_status_reports_an_alias_that_disagrees_with_git(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    registry.set_alias(MODEL, "staging", 3)
    assert _row(gitops_repo.path, "staging")["registry"] == \
        "alias staging is v3 (run mlops sync-aliases)"
    assert _row(gitops_repo.path, "staging", registry=False)["registry"] == "(not checked)"


def test_status_reports_a_pinned_version_missing_from_the_registry(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    pin = gitops_repo.path / "environments/staging/churn/model.yaml"
    pin.write_text(pin.read_text().replace("version: 1", "version: 77")
                   .replace("models:/churn/1", "models:/churn/77"))
    assert _row(gitops_repo.path, "staging")["registry"] == "MISSING: churn v77 not in registry"


def test_status_flags_a_pin_that_names_another_model_than_its_folder(gitops_repo, registry_env):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    pin = gitops_repo.path / "environments/staging/churn/model.yaml"
    pin.write_text(pin.read_text().replace("churn", "fraud"))
    row = _row(gitops_repo.path, "staging")
    assert row["model"] == "churn"
    assert row["version"].startswith("INVALID PIN: environments/staging/churn/model.yaml pins "
                                     "model 'fraud', but its folder is 'churn'")


def test_sync_aliases_moves_aliases_to_the_pinned_versions_and_git_wins(gitops_repo,
                                                                        registry_env):
    for env in ("staging", "production"):
        promote(gitops_repo.path, MODEL, 1, env, here=True)
    promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    registry.set_alias(MODEL, "production", 3)  # someone moved it by hand in the registry

    report = sync_aliases(gitops_repo.path, check=True)
    assert [c.describe(applied=False) for c in report] == [
        "churn@staging: registry says unset, git pins v2; disagrees",
        "churn@production: registry says v3, git pins v1; disagrees",
    ]
    assert registry.aliases(MODEL) == {"production": 3}  # --check changes nothing

    sync_aliases(gitops_repo.path)
    assert registry.aliases(MODEL) == {"staging": 2, "production": 1}
    assert sync_aliases(gitops_repo.path, check=True) == []

    # A rollback to "nothing" removes the alias: the registry must not claim what git does not.
    rollback(gitops_repo.path, "production", here=True)
    [change] = sync_aliases(gitops_repo.path)
    assert change.describe(applied=True) == \
        "churn@production: registry says v1, git pins nothing; deleted"
    assert registry.aliases(MODEL) == {"staging": 2}


def test_sync_aliases_check_exits_1_on_disagreement(gitops_repo, registry_env, capsys):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    args = ["sync-aliases", "--repo", str(gitops_repo.path)]
    assert cli.main([*args, "--check"]) == 1
    assert "churn@staging: registry says unset, git pins v1; disagrees" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert cli.main([*args, "--check"]) == 0
    assert "every alias agrees with git" in capsys.readouterr().out


def test_history_lists_promotions_and_rollbacks_newest_first_from_git_alone(gitops_repo,
                                                                            registry_env,
                                                                            monkeypatch):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    gitops_repo.unrelated_commit()
    promote(gitops_repo.path, MODEL, 2, "staging", here=True)
    v2 = gitops_repo.head()
    git(gitops_repo.path, "revert", "--no-edit", v2)  # by hand

    # No registry needed: point MLflow somewhere that does not exist.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    lines = history.history_lines(gitops_repo.path, "staging").splitlines()
    assert lines[0] == "history of staging (environments/staging/<model>/model.yaml), newest first"
    assert lines[1].split()[:6] == ["WHEN", "COMMIT", "MODEL", "ACTION", "SERVES", "DIGEST"]
    rows = [line.split() for line in lines[2:]]
    assert [r[3] for r in rows] == ["rollback", "promotion", "promotion", "change"]
    assert rows[0][2:5] == ["churn", "rollback", "v1"] and f"{v2[:8]}" in lines[2]
    assert "reverts promotion" in lines[2] and "(churn v2)" in lines[2]
    assert "reverted later" in lines[3]
    assert rows[2][4:6] == ["v1", registry_env.digests[1][:12]]
    assert rows[3][4:6] == ["nothing", "-"]
    assert all("NOTES.md" not in line for line in lines)  # unrelated commits are not history


def test_cli_status_and_history_print_tables(gitops_repo, registry_env, capsys):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    assert cli.main(["status", "--offline", "--repo", str(gitops_repo.path)]) == 0
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert ["staging", "churn", "v1"] in rows
    assert cli.main(["history", "staging", "--repo", str(gitops_repo.path)]) == 0
    rows = [line.split()[2:5] for line in capsys.readouterr().out.splitlines()]
    assert ["churn", "promotion", "v1"] in rows
    assert cli.main(["history", "qa", "--repo", str(gitops_repo.path)]) == 2
    assert "unknown environment 'qa'" in capsys.readouterr().err
