"""Fixtures for promotion and rollback tests: real git repositories with a bare remote, and a
real MLflow registry (SQLite store, local artifacts) holding tiny registered bundles.

Loaded as a pytest plugin (`pytest_plugins = ("gitops_fixtures",)`), so the session-scoped
registry is built once however many modules use it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = "churn"
# A second registered model, for what must stay separate between models.
OTHER = "housing"


def sh(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; on failure the assertion shows both streams."""
    proc = subprocess.run(list(cmd), cwd=cwd, check=False, capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"})
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """`git ARGS` in `cwd`, returning stdout."""
    return sh(cwd, "git", *args, check=check).stdout


@dataclass
class GitopsRepo:
    """A clone of a bare remote holding environments/ with empty pins, on branch main."""

    path: Path
    remote: Path

    def pin_bytes(self, env: str, model: str = MODEL) -> bytes:
        return (self.path / "environments" / env / model / "model.yaml").read_bytes()

    def add_model(self, name: str = OTHER) -> str:
        """Add a model to every environment (its overlay and an empty pin), committed."""
        from pipelines.gitops.environments import add_model

        add_model(self.path, name)
        git(self.path, "add", "environments")
        git(self.path, "commit", "-q", "-m", f"Add {name} to every environment")
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip()

    def clone(self, dst: Path) -> GitopsRepo:
        """Another person's clone of the same remote."""
        git(dst.parent, "clone", "-q", str(self.remote), str(dst))
        _identity(dst, "Grace Hopper", "grace@example.com")
        return GitopsRepo(dst, self.remote)

    def unrelated_commit(self, name: str = "NOTES.md", text: str = "notes\n") -> str:
        """A commit that touches no pin (someone else's work landing in between)."""
        path = self.path / name
        path.write_text((path.read_text() if path.exists() else "") + text)
        git(self.path, "add", name)
        git(self.path, "commit", "-q", "-m", f"Update {name}")
        return self.head()


def _identity(repo: Path, name: str, email: str) -> None:
    git(repo, "config", "user.name", name)
    git(repo, "config", "user.email", email)
    git(repo, "config", "commit.gpgsign", "false")


def make_gitops_repo(base: Path) -> GitopsRepo:
    """A bare remote and a clone with the project's environments/ committed on main."""
    remote = base / "remote.git"
    work = base / "work"
    git(base, "init", "-q", "--bare", "-b", "main", str(remote))
    git(base, "init", "-q", "-b", "main", str(work))
    _identity(work, "Ada Lovelace", "ada@example.com")
    shutil.copytree(ROOT / "environments", work / "environments",
                    ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
    (work / "README.md").write_text("gitops-ml test repository\n")
    (work / ".gitignore").write_text("/.mlflow/\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "Environments")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "-u", "origin", "main")
    return GitopsRepo(work, remote)


@pytest.fixture(scope="session")
def _gitops_template(tmp_path_factory) -> GitopsRepo:
    return make_gitops_repo(tmp_path_factory.mktemp("gitops-template"))


@pytest.fixture()
def gitops_repo(tmp_path, _gitops_template) -> GitopsRepo:
    """A fresh repository with empty pins and a bare remote `origin` (a copy of one made once
    per session: a dozen git commands each time cost half a second)."""
    template = _gitops_template
    remote, work = tmp_path / template.remote.name, tmp_path / template.path.name
    shutil.copytree(template.remote, remote, symlinks=True)
    shutil.copytree(template.path, work, symlinks=True)
    git(work, "remote", "set-url", "origin", str(remote))
    return GitopsRepo(work, remote)


# ---------------------------------------------------------------------------------------------
# A real registry with tiny bundles

@dataclass
class Registry:
    """The tracking URI and what each registered version is for."""

    uri: str
    versions: dict[str, int]  # role -> version number
    digests: dict[int, str]
    other_digests: dict[int, str]  # versions of OTHER, all gated


METRICS = {1: 0.81, 2: 0.83, 3: 0.85, 4: 0.60, 5: 0.86, 6: 0.87}


def _gate(version: int) -> dict:
    passed = version != 4
    return {"passed": passed, "rules": [
        {"rule": "floor roc_auc", "value": METRICS[version], "threshold": 0.8, "passed": passed,
         "note": "", "verdict": "pass" if passed else "FAIL"},
        {"rule": "model size MB", "value": 0.01, "threshold": 25.0, "passed": True,
         "note": "", "verdict": "pass"}]}


def _base_bundle(dst: Path, model: str = MODEL) -> Path:
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    mlflow.sklearn.save_model(LogisticRegression().fit(x, y), str(dst),
                              serialization_format="skops")
    (dst / "signature.json").write_text(json.dumps({
        "model": model, "target": "Churn", "classes": ["No", "Yes"], "positive_class": "Yes",
        "features": [{"name": "a", "type": "number"}, {"name": "b", "type": "number"}]}))
    return dst


@pytest.fixture(scope="session")
def registry_store(tmp_path_factory) -> Registry:
    """Versions 1-3 and 5-6 of `churn` pass their gate; 4 failed it; 6's artifact was altered
    after registration (digest mismatch); versions 1-2 of `housing` pass. Built once per test
    session."""
    return _build_registry(tmp_path_factory.mktemp("registry"))


def _register(client, experiment: str, base: Path, root: Path, model: str, version: int,
              metrics: dict[str, float], gate: dict) -> str:
    """Register a copy of `base` as the next version of `model`; return its digest."""
    from pipelines.registry import store as registry

    bundle = root / f"bundle-{model}-v{version}"
    shutil.copytree(base, bundle)
    (bundle / "metrics.json").write_text(json.dumps(
        {k: {"value": v, "ci_low": v - 0.02, "ci_high": v + 0.02} for k, v in metrics.items()}))
    (bundle / "gate.json").write_text(json.dumps(gate))
    run_id = client.create_run(experiment).info.run_id
    for key, value in metrics.items():
        for suffix, shift in (("", 0.0), ("_ci_low", -0.02), ("_ci_high", 0.02)):
            client.log_metric(run_id, key + suffix, value + shift)
    if "roc_auc" in metrics:
        client.log_metric(run_id, "f1", metrics["roc_auc"] - 0.2)
    client.log_param(run_id, "train.estimator", "logistic_regression")
    info = registry.register_bundle(bundle, model, run_id=run_id, tags={
        "gate": "passed" if gate["passed"] else "failed", "run_id": run_id,
        "git_commit": f"{version:x}" * 40, "data_hash": f"{version}" * 32})
    assert info.version == version
    client.set_terminated(run_id)
    return info.sha256


def _build_registry(root: Path) -> Registry:
    import mlflow

    from contracts.digest import bundle_sha256
    from pipelines.registry import store as registry

    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        client = registry.client()
        exp = client.create_experiment(MODEL, artifact_location=(root / "artifacts").as_uri())
        base = _base_bundle(root / "base")
        digests = {version: _register(client, exp, base, root, MODEL, version,
                                      {"roc_auc": auc}, _gate(version))
                   for version, auc in sorted(METRICS.items())}
        other_base = _base_bundle(root / "other-base", OTHER)
        passed = {"passed": True, "rules": []}
        other = {version: _register(client, exp, other_base, root, OTHER, version,
                                    {"mae": mae}, passed)
                 for version, mae in ((1, 0.5), (2, 0.4))}
        # Someone changes a stored file of v6 after it was registered.
        stored = Path(registry.get_version(MODEL, 6).source.removeprefix("file://"))
        (stored / "metrics.json").write_text('{"roc_auc": {"value": 0.99}}')
        assert bundle_sha256(stored) != digests[6]
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return Registry(uri, {"v1": 1, "v2": 2, "v3": 3, "failed_gate": 4, "v5": 5, "tampered": 6},
                    digests, other)


@pytest.fixture()
def registry_env(registry_store, monkeypatch) -> Iterator[Registry]:
    """Points MLFLOW_TRACKING_URI at the shared test registry for one test (aliases cleared)."""
    import mlflow

    from pipelines.registry import store as registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_store.uri)
    for model in (MODEL, OTHER):
        for alias in registry.aliases(model):
            registry.delete_alias(model, alias)
    yield registry_store
    # registry.client() also sets MLflow's process-wide URI (and exports it as
    # MLFLOW_TRACKING_URI); leave no trace for other tests.
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
