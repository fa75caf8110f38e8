"""A demo-like promotion history, the same bytes on every run: two models promoted through staging
and production, rollbacks (by `git revert`, as `mlops rollback` does), a rollback reverted, a pin
edited by hand, and unrelated commits in between. Fixed identities and clocks make every commit
sha the same each time, so `mlops history` output can be compared with a golden file."""
from __future__ import annotations

import hashlib
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.pin import Lineage, ModelRef, Pin, Promotion
from pipelines.gitops import pins
from pipelines.gitops.promote import commit_message

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PEOPLE = {"ada": ("Ada Lovelace", "ada@example.com"), "grace": ("Grace Hopper", "grace@example.com")}
SHARED = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamespace: gitops-ml-{env}\n"


class DemoHistory:
    """Makes commits in `path` at one-hour steps from START."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.step = 0
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, who: str = "ada") -> str:
        name, email = PEOPLE[who]
        when = (START + timedelta(hours=self.step)).isoformat()
        env = {**os.environ, "LC_ALL": "C", "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
               "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_CONFIG_NOSYSTEM": "1"}
        return subprocess.run(["git", *args], cwd=self.path, env=env, check=True,
                              capture_output=True, text=True).stdout

    def commit(self, message: str, *paths: str, who: str = "ada") -> str:
        self.step += 1
        self.git("add", *paths, who=who)
        self.git("commit", "-q", "-m", message, who=who)
        return self.git("rev-parse", "HEAD").strip()

    def add_model(self, model: str, envs=("staging", "production")) -> str:
        for env in envs:
            Pin(environment=env).write(self.path / pins.relpath(env, model))
            shared = self.path / "environments" / "shared" / env / "kustomization.yaml"
            shared.parent.mkdir(parents=True, exist_ok=True)
            shared.write_text(SHARED.format(env=env))
        return self.commit(f"Add {model} to every environment", "environments")

    def promote(self, model: str, version: int, env: str, who: str = "ada") -> str:
        path = self.path / pins.relpath(env, model)
        current = Pin.read(path)
        name, email = PEOPLE[who]
        digest = hashlib.sha256(f"{model}-{version}".encode()).hexdigest()
        new = Pin(
            environment=env,
            model=ModelRef(name=model, version=version, uri=f"models:/{model}/{version}",
                           sha256=digest),
            lineage=Lineage(run_id=digest[:32], git_commit=digest[-40:], data_hash=digest[8:40],
                            params={"train.estimator": "logistic_regression"}),
            metrics={"roc_auc": round(0.8 + version / 100, 4)},
            promoted=Promotion(by=f"{name} <{email}>", at=START + timedelta(hours=self.step + 1)),
        )
        new.write(path)
        return self.commit(commit_message(new, current), str(path.relative_to(self.path)), who=who)

    def revert(self, sha: str, who: str = "ada") -> str:
        self.step += 1
        self.git("revert", "--no-edit", sha, who=who)
        return self.git("rev-parse", "HEAD").strip()

    def unrelated(self, text: str) -> str:
        (self.path / "NOTES.md").write_text(text + "\n")
        return self.commit(f"Notes: {text}", "NOTES.md")

    def edit_by_hand(self, env: str, model: str, old: str, new: str) -> str:
        path = self.path / pins.relpath(env, model)
        path.write_text(path.read_text().replace(old, new))
        return self.commit(f"Edit the {env} pin of {model} by hand", str(path.relative_to(self.path)))


def demo_like_repository(path: Path) -> Path:
    """Build the demo-like history in `path` (a new folder); return it."""
    h = DemoHistory(path)
    h.add_model("churn")
    h.promote("churn", 1, "staging")
    h.promote("churn", 1, "production")
    h.unrelated("first release")
    h.promote("churn", 2, "staging", who="grace")
    churn_v2 = h.promote("churn", 2, "production", who="grace")
    h.revert(churn_v2)  # the demo's rollback of production
    h.add_model("housing")
    h.promote("housing", 1, "staging")
    h.unrelated("housing is in staging")
    housing_v1 = h.promote("housing", 1, "production", who="grace")
    housing_v2 = h.promote("housing", 2, "staging")
    rollback = h.revert(housing_v2, who="grace")
    h.revert(rollback)  # reverting the rollback brings v2 back
    h.promote("churn", 3, "staging")
    h.edit_by_hand("staging", "churn", "roc_auc: 0.83", "roc_auc: 0.9")
    h.unrelated("quiet week")
    h.revert(housing_v1)  # production's housing back to nothing
    return path
