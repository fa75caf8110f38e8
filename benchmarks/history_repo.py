"""Build a repository with a long synthetic promotion history, for benchmarks/history.sh.

`python benchmarks/history_repo.py DEST N` makes DEST a git repository holding this project's
environments/ with two models (churn, housing), then N production promotions, each preceded by a
staging promotion of the same version, with an unrelated commit after every promotion: 4N + 3
commits. Every promotion is what `mlops promote` commits: the same pin file, message and
trailers (Model, Version, Digest, Environment). The history is written with one
`git fast-import`, with fixed identities and a clock that moves a minute per commit, then
`git gc` packs it and writes the commit-graph, as gc does over the life of a real repository.

With --registry, the repository's embedded MLflow store (DEST/.mlflow) gets two real, gated
versions of churn, and the oldest promotion of the history pins churn v2 in staging, so
`mlops promote churn 2 --to production` passes its registry checks and finds its staging
proof as far back as the history goes. Prints what the timings need, as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.pin import Lineage, ModelRef, Pin, Promotion  # noqa: E402
from pipelines.gitops import environments, pins  # noqa: E402
from pipelines.gitops.promote import commit_message  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC)
MODELS = ("churn", "housing")
WHO = ("Ada Lovelace", "ada@example.com")


def _git(repo: Path, *args: str, input: bytes | None = None, when: datetime = START) -> str:
    env = {**os.environ, "LC_ALL": "C", "GIT_AUTHOR_NAME": WHO[0], "GIT_AUTHOR_EMAIL": WHO[1],
           "GIT_COMMITTER_NAME": WHO[0], "GIT_COMMITTER_EMAIL": WHO[1],
           "GIT_AUTHOR_DATE": when.isoformat(), "GIT_COMMITTER_DATE": when.isoformat()}
    proc = subprocess.run(["git", *args], cwd=repo, env=env, input=input, check=True,
                          capture_output=True)
    return proc.stdout.decode()


def register_two_versions(repo: Path) -> dict[int, str]:
    """Register churn v1 and v2 (tiny gated bundles) in `repo`'s embedded store; their digests."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from pipelines.registry import store as registry

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    client = registry.client(repo)
    experiment = registry.experiment_id("churn", repo)
    x = np.random.default_rng(0).normal(size=(40, 2))
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for version in (1, 2):
            bundle = Path(tmp) / f"v{version}"
            mlflow.sklearn.save_model(LogisticRegression(C=version).fit(x, x[:, 0] > 0),
                                      str(bundle), serialization_format="skops")
            (bundle / "metrics.json").write_text(json.dumps({"roc_auc": {"value": 0.8}}))
            (bundle / "gate.json").write_text(json.dumps({"passed": True, "rules": []}))
            run_id = client.create_run(experiment).info.run_id
            client.log_metric(run_id, "roc_auc", 0.8)
            info = registry.register_bundle(bundle, "churn", run_id=run_id, repo=repo, tags={
                "gate": "passed", "run_id": run_id, "git_commit": "0" * 40, "data_hash": "0" * 32})
            client.set_terminated(run_id)
            digests[info.version] = info.sha256
    return digests


class Stream:
    """A git fast-import stream of commits on main, one minute apart."""

    def __init__(self, repo: Path, base: str, clock: datetime) -> None:
        self.repo, self.parts, self.clock, self.count = repo, [], clock, 0
        self.parent = base
        self.pinned: dict[tuple[str, str], Pin] = {}

    def commit(self, message: str, path: str, content: str) -> None:
        self.clock += timedelta(minutes=1)
        self.count += 1
        stamp = f"{int(self.clock.timestamp())} +0000"
        msg, data = message.encode(), content.encode()
        head = (f"commit refs/heads/main\nmark :{self.count}\n"
                f"author {WHO[0]} <{WHO[1]}> {stamp}\ncommitter {WHO[0]} <{WHO[1]}> {stamp}\n"
                f"data {len(msg)}\n").encode()
        parent = (f"from {self.parent}\n" if self.count == 1 else "").encode()
        self.parts += [head, msg, b"\n", parent,
                       f"M 100644 inline {path}\ndata {len(data)}\n".encode(), data, b"\n"]

    def promote(self, env: str, model: str, version: int, digest: str | None = None) -> None:
        digest = digest or sha256(f"{model}-{version}".encode()).hexdigest()
        current = self.pinned.get((env, model)) or Pin(environment=env)
        new = Pin(
            environment=env,
            model=ModelRef(name=model, version=version, uri=f"models:/{model}/{version}",
                           sha256=digest),
            lineage=Lineage(run_id=digest[:32], git_commit=digest[-40:], data_hash=digest[8:40],
                            params={"train.estimator": "logistic_regression"}),
            metrics={"roc_auc": 0.8},
            promoted=Promotion(by=f"{WHO[0]} <{WHO[1]}>", at=self.clock + timedelta(minutes=1)),
        )
        self.pinned[(env, model)] = new
        self.commit(commit_message(new, current), pins.relpath(env, model), new.to_yaml())

    def unrelated(self, i: int) -> None:
        self.commit(f"Notes, entry {i}", "NOTES.md", f"note {i}\n")

    def run(self) -> None:
        _git(self.repo, "fast-import", "--quiet", "--done",
             input=b"".join(self.parts) + b"done\n")


def build(dest: Path, productions: int, registry: bool = False, gc: bool = True) -> dict:
    """Build the repository in `dest` (a new folder); return what the timings need."""
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "config", "commit.gpgsign", "false")
    shutil.copytree(ROOT / "environments", dest / "environments")
    for model in MODELS:
        if model not in pins.models(dest, "staging"):
            environments.add_model(dest, model)
    (dest / "README.md").write_text("synthetic promotion history\n")
    (dest / ".gitignore").write_text("/.mlflow/\n")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "Environments")
    real = register_two_versions(dest) if registry else {}

    stream = Stream(dest, _git(dest, "rev-parse", "HEAD").strip(), START)
    if real:
        stream.promote("staging", "churn", 2, real[2])
        stream.unrelated(0)
    middle = None
    for i in range(productions):
        model = MODELS[i % len(MODELS)]
        version = 3 + i // len(MODELS)
        for env in ("staging", "production"):
            stream.promote(env, model, version)
            stream.unrelated(i + 1)
        if i == productions // 2:
            middle = stream.clock
    stream.run()
    _git(dest, "reset", "-q", "--hard", "main")
    # What `git gc --auto` has long since done in a repository with this much history (packs and
    # a commit-graph file, as gc.writeCommitGraph does by default); --no-gc skips it.
    if gc:
        _git(dest, "gc", "--quiet")
    return {"repo": str(dest), "productions": productions, "commits": stream.count + 1,
            "at": (middle or stream.clock).isoformat(), "promote": {"model": "churn",
                                                                   "version": 2} if real else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="a folder that does not exist yet")
    parser.add_argument("productions", type=int, help="number of production promotions")
    parser.add_argument("--registry", action="store_true",
                        help="register churn v1 and v2 in DEST/.mlflow and stage v2 first")
    parser.add_argument("--no-gc", action="store_true",
                        help="leave the history as fast-import wrote it (no commit-graph)")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.dest, args.productions, args.registry, gc=not args.no_gc)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
