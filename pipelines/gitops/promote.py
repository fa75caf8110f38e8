"""`mlops promote MODEL VERSION --to ENV`: pin a registered version in an environment.

A promotion is one commit that changes only that model's pin,
`environments/<env>/<model>/model.yaml`, carrying the trailers Model/Version/Digest/Environment,
by default on a new branch `promote/<env>/<model>-v<version>` (`--here`: on the current
branch). `--push` pushes it, and with GITHUB_TOKEN and GITHUB_REPOSITORY set the pushed branch
becomes a pull request whose body is the evidence. Before writing anything it checks the
version exists, its artifact still hashes to the registered digest, the gate.json inside that
verified artifact says it passed (the registry's `gate` tag alone never suffices: anyone with
MLflow write access can set it), and (for production) that staging has pinned that exact digest
of that model before.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.pin import Lineage, ModelRef, Pin, Promotion
from pipelines.errors import CommandError
from pipelines.gitops import evidence, github, history, pins
from pipelines.gitops import git as gitops


@dataclass
class PromotionResult:
    """What a promotion did."""

    commit: str
    branch: str
    previous: Pin
    pin: Pin
    pushed: bool = False
    pull_request: str | None = None
    body: str = ""

    @property
    def environment(self) -> str:
        return self.pin.environment

    @property
    def model(self) -> str:
        return self.pin.model.name

    @property
    def version(self) -> int:
        return self.pin.model.version

    @property
    def sha256(self) -> str:
        return self.pin.model.sha256

    def summary(self) -> str:
        """Human-readable outcome with the next step."""
        lines = [f"promoted {self.model} v{self.version} to {self.environment} "
                 f"(was {pins.label(self.previous)})",
                 f"  commit {self.commit[:12]} on {self.branch}, sha256 {self.sha256[:12]}"]
        if self.pull_request:
            lines.append(f"  pull request: {self.pull_request}")
        elif self.pushed:
            lines.append(f"  pushed {self.branch}")
        elif self.branch.startswith("promote/"):
            lines.append(f"  next: git push origin {self.branch}  (or mlops promote ... --push)")
        lines.append(f"  undo: git revert {self.commit}")
        return "\n".join(lines)


def branch_name(env: str, model: str, version: int) -> str:
    """The branch a promotion is committed on unless --here."""
    return f"promote/{env}/{model}-v{version}"


def commit_message(new: Pin, current: Pin) -> str:
    """Subject, a short body, and the trailers history is queried by."""
    m, lin = new.model, new.lineage
    return (
        f"Promote {m.name} v{m.version} to {new.environment}\n\n"
        f"Pins {m.uri} (was {pins.label(current)}); gate passed.\n"
        f"Run {lin.run_id}, training commit {lin.git_commit}, data {lin.data_hash}.\n\n"
        f"Model: {m.name}\nVersion: {m.version}\nDigest: {m.sha256}\n"
        f"Environment: {new.environment}\n"
    )


def _registry():
    # Imported on use: MLflow takes seconds to import and history/status need none of it.
    from pipelines.registry import store as registry

    return registry


def _version(repo: Path, model: str, version: int):
    registry = _registry()
    try:
        return registry.get_version(model, version, repo)
    except registry.RegistryError as exc:
        raise CommandError(f"unknown version: {exc}") from exc


def _verified_bundle(info, work: Path) -> tuple[dict | None, dict | None]:
    """Download the version, recompute its digest, return (gate.json, metrics.json)."""
    bundle = _registry().verified_download(info, work)

    def _json(name: str) -> dict | None:
        path = bundle / name
        return json.loads(path.read_text()) if path.is_file() else None

    return _json("gate.json"), _json("metrics.json")


def require_passed_gate(gate: dict | None, model: str, version: int) -> None:
    """Refuse unless the verified bundle's own gate.json says this model passed every rule."""
    where = f"{model} v{version}"
    if gate is None:
        raise CommandError(
            f"failed gate: the artifact of {where} holds no gate.json, so nothing in it shows "
            f"that it passed its gates (the registry's gate tag does not count); register it "
            f"again from `dvc repro`")
    named = gate.get("model")
    if named is not None and named != model:
        raise CommandError(f"failed gate: the gate.json in the artifact of {where} judged "
                           f"model {named!r}, not {model!r}")
    rules = gate.get("rules") or []
    broken = [str(r.get("rule", "?")) for r in rules
              if not isinstance(r, dict) or r.get("passed") is not True]
    if gate.get("passed") is not True or broken:
        detail = f" (failed: {', '.join(broken)})" if broken else ""
        raise CommandError(
            f"failed gate: the gate.json in the artifact of {where} says it did not pass its "
            f"gates{detail}, whatever the registry's gate tag says; only gated versions can be "
            f"promoted")


def _champion_metrics(repo: Path, current: Pin) -> dict[str, Any] | None:
    if current.is_empty:
        return None
    registry = _registry()
    try:
        return registry.get_version(current.model.name, current.model.version, repo).metrics
    except registry.RegistryError:
        return dict(current.metrics)  # the pin's own copy, without intervals


def promote(repo: Path, model: str, version: int, env: str, *, here: bool = False,
            push: bool = False, remote: str = "origin", open_pr: bool = True,
            by: str | None = None, now: datetime | None = None,
            registry_repo: Path | None = None) -> PromotionResult:
    """Check, pin and commit `model` v`version` in `env`; push / open a PR when asked.

    `registry_repo` is where the embedded registry lives when MLFLOW_TRACKING_URI is unset
    (default: `repo` itself; a throwaway clone passes the checkout it was cloned from)."""
    repo = gitops.toplevel(Path(repo))
    store = Path(registry_repo) if registry_repo else repo
    pins.require_model(repo, env, model)
    gitops.require_clean(repo)
    base = gitops.current_branch(repo)
    if base is None and (here or push):
        raise CommandError("HEAD is detached: check out the branch to promote on")
    current = pins.read(repo, env, model, "HEAD")

    before = pins.PREREQUISITE.get(env)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The prerequisite's history is one `git log` in another process: read it while MLflow,
        # the slowest part of a promotion, loads here.
        reading = pool.submit(history.events, repo, before, model) if before else None
        info = _version(store, model, version)
        held = reading.result() if reading else []
    if info.gate != "passed":
        # A quick refusal before any download; a "passed" tag proves nothing (see below).
        raise CommandError(
            f"failed gate: {model} v{version} did not pass its gates (gate tag "
            f"{info.gate or 'missing'!r}); only gated versions can be promoted")
    if not current.is_empty and (current.model.name, current.model.version) == (model, version):
        raise CommandError(f"{env} already pins {model} v{version}; nothing to promote")
    staged_in = None
    if before:
        staged_in = history.digests_held(held).get(info.sha256)
        if staged_in is None:
            undone = next((e for e in reversed(held) if not e.active
                           and e.served.sha256 == info.sha256), None)
            why = (f"was pinned there by {undone.short} but that was reverted" if undone
                   else f"never was in the history of {pins.relpath(before, model)}")
            raise CommandError(
                f"skipping {before}: {env} only accepts a digest that {before} has pinned "
                f"before, and {model} v{version} (sha256 {info.sha256[:12]}) {why}. Run "
                f"`mlops promote {model} {version} --to {before}` and merge it first")
    with tempfile.TemporaryDirectory(prefix="mlops-promote-") as tmp:
        gate, _ = _verified_bundle(info, Path(tmp))
    require_passed_gate(gate, model, version)

    new = Pin(
        environment=env,
        model=ModelRef(name=model, version=version, uri=f"models:/{model}/{version}",
                       sha256=info.sha256),
        lineage=Lineage(run_id=info.run_id, git_commit=info.git_commit,
                        data_hash=info.data_hash, params=dict(sorted(info.params.items()))),
        metrics=evidence.point_metrics(info.metrics),
        promoted=Promotion(by=by or gitops.identity(repo),
                           at=(now or datetime.now(UTC)).replace(microsecond=0)),
        shadow=current.shadow,  # a shadow model is its own decision; a promotion keeps it
    )
    path = pins.relpath(env, model)
    message = commit_message(new, current)

    def write_and_commit(work: Path) -> None:
        new.write(work / path)
        gitops.commit_file(work, path, message)

    branch = base if here else branch_name(env, model, version)
    sha = gitops.commit_on(repo, branch=None if here else branch, make_commit=write_and_commit)
    result = PromotionResult(sha, branch or "HEAD", current, new)
    result.body = evidence.promotion_body(
        new=new, current=current, challenger_metrics=info.metrics,
        champion_metrics=_champion_metrics(store, current), gate=gate, commit=sha,
        staged_in=staged_in)
    if push:
        result.pull_request = github.publish(
            repo, remote=remote, branch=result.branch, base=base, open_pr=open_pr and not here,
            title=message.splitlines()[0], body=result.body)
        result.pushed = True
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (its folder environments/<env>/<model>/)")
    parser.add_argument("version", type=int, help="registered version number")
    parser.add_argument("--to", dest="env", required=True, help="environment, e.g. staging")
    gitops.add_branch_options(parser, "promote")


def run(args: argparse.Namespace) -> int:
    result = promote(args.repo, args.model, args.version, args.env, here=args.here,
                     push=args.push, remote=args.remote, open_pr=not args.no_pr)
    print(result.summary())
    return 0
