"""`mlops promote MODEL VERSION --to ENV`: pin a registered version in an environment.

A promotion is one commit that changes only that model's pin,
`environments/<env>/<model>/model.yaml`, carrying the trailers Model/Version/Digest/Environment,
by default on a new branch `promote/<env>/<model>-v<version>` (`--here`: on the current
branch). `--push` pushes it, and with GITHUB_TOKEN and GITHUB_REPOSITORY set the pushed branch
becomes a pull request whose body is the evidence (with auto-merge on where the environment has
continuous deployment). Before writing anything it checks the version exists, its artifact
still hashes to the registered digest, the gate.json inside that verified artifact says it
passed (the registry's `gate` tag alone never suffices: anyone with MLflow write access can set
it), and (for production) that staging has pinned that exact digest of that model before.

What the pin becomes follows the model's release strategy in the environment
(pipelines/release/strategy.py): under `ab` the version starts an A/B test as variant b beside
the version in service (variant a); under `shadow` it first runs as the pin's shadow, and a
second promotion of it makes it the model; under the others it replaces the model. While an A/B
test runs, the model takes no other promotion: `mlops ab-conclude` (or a rollback) ends it.
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

from contracts.pin import ABTest, Challenger, Lineage, ModelRef, Pin, Promotion, Split
from pipelines.errors import CommandError
from pipelines.gitops import evidence, github, history, pins
from pipelines.gitops import git as gitops
from pipelines.release import strategy as strategies


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
    kind: str = "replace"  # replace | ab | shadow | from-shadow (see next_pin)
    auto_merge: bool = False

    @property
    def environment(self) -> str:
        return self.pin.environment

    @property
    def promoted(self) -> ModelRef:
        """The version this promotion brought in (variant b, the shadow, or the model)."""
        return (self.pin.ab.b.model if self.kind == "ab"
                else self.pin.shadow if self.kind == "shadow" else self.pin.model)

    @property
    def model(self) -> str:
        return self.pin.model.name

    @property
    def version(self) -> int:
        return self.promoted.version

    @property
    def sha256(self) -> str:
        return self.promoted.sha256

    def summary(self) -> str:
        """Human-readable outcome with the next step."""
        did = {"ab": "started an A/B test of", "shadow": "runs in shadow:"}.get(
            self.kind, "promoted")
        lines = [f"{did} {self.model} v{self.version} in {self.environment}: now "
                 f"{pins.label(self.pin)} (was {pins.label(self.previous)})"
                 if self.kind in ("ab", "shadow") else
                 f"promoted {self.model} v{self.version} to {self.environment} "
                 f"(was {pins.label(self.previous)})",
                 f"  commit {self.commit[:12]} on {self.branch}, sha256 {self.sha256[:12]}"]
        lines += github.delivery_lines(self.branch, self.pushed, self.pull_request,
                                       self.auto_merge)
        if not (self.pull_request or self.pushed) and self.branch.startswith("promote/"):
            lines.append(f"  next: git push origin {self.branch}  (or mlops promote ... --push)")
        lines.append(f"  undo: git revert {self.commit}")
        return "\n".join(lines)


def branch_name(env: str, model: str, version: int) -> str:
    """The branch a promotion is committed on unless --here."""
    return f"promote/{env}/{model}-v{version}"


def commit_message(new: Pin, current: Pin, kind: str = "replace",
                   lineage: Lineage | None = None) -> str:
    """Subject, a short body, and the trailers history is queried by: Model, Version and Digest
    name the version brought in; an A/B start adds `Variant: b`, `Split` and `Control` (variant
    a's version), a shadow `Variant: shadow` and `Control`."""
    env, a = new.environment, new.model
    lin = lineage or new.lineage
    extra = ""
    if kind == "ab":
        m, split = new.ab.b.model, new.ab.split
        subject = (f"Start A/B test of {a.name} in {env}: v{a.version} {split['a']}% / "
                   f"v{m.version} {split['b']}%")
        what = f"Pins {m.uri} as variant b beside v{a.version} (variant a)"
        extra = f"Variant: b\nSplit: {split['a']}/{split['b']}\nControl: {a.version}\n"
    elif kind == "shadow":
        m = new.shadow
        subject = f"Shadow {a.name} v{m.version} beside v{a.version} in {env}"
        what = f"Runs {m.uri} in shadow beside v{a.version}"
        extra = f"Variant: shadow\nControl: {a.version}\n"
    else:
        m = a
        subject = f"Promote {m.name} v{m.version} to {env}"
        what = f"Pins {m.uri}"
    return (
        f"{subject}\n\n"
        f"{what} (was {pins.label(current)}); gate passed.\n"
        f"Run {lin.run_id}, training commit {lin.git_commit}, data {lin.data_hash}.\n\n"
        f"Model: {m.name}\nVersion: {m.version}\nDigest: {m.sha256}\n"
        f"Environment: {env}\n{extra}"
    )


def next_pin(current: Pin, how: str, single: Pin, ab: Split | None = None) -> tuple[Pin, str]:
    """The pin a promotion writes under strategy `how`, and its kind: `single` (the version
    pinned alone) as variant b of an A/B test against the version in service (`ab`: its split
    and unit; kind `ab`), as the shadow of the version in service (`shadow`), as the model once
    it ran in shadow (`from-shadow`), or replacing the model (`replace`, keeping a shadow: that
    is its own decision). With nothing in service there is nothing to test against: `replace`."""
    if current.is_empty:
        return single, "replace"
    if how == "ab":
        b = Challenger(model=single.model, lineage=single.lineage, metrics=single.metrics,
                       promoted=single.promoted)
        # The test starts from the version in service, as it is pinned; a shadow gives way.
        test = ABTest(split=ab.split, unit=ab.unit, b=b)
        return current.model_copy(update={"shadow": None, "ab": test}), "ab"
    if how == "shadow":
        if current.shadow is not None and current.shadow.sha256 == single.model.sha256:
            return single, "from-shadow"
        return current.model_copy(update={"shadow": single.model}), "shadow"
    return single.model_copy(update={"shadow": current.shadow}), "replace"


def _registry():
    # Imported on use: what imports this module for its helpers (benchmarks/history_repo.py)
    # needs no registry.
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


def _ab_test(repo: Path, env: str, how: str, split: str | None, unit_header: str | None,
             unit_field: str | None, model: str) -> Split | None:
    """The split and unit of an A/B test started here: the command line's, else the
    environment's defaults; None (and a refusal if any was given) under another strategy."""
    given = split is not None or unit_header is not None or unit_field is not None
    if how != "ab":
        if given:
            raise CommandError(f"--split/--unit-header/--unit-field start an A/B test, but "
                               f"{model}'s strategy in {env} is {how}; change it first "
                               f"(`mlops strategy {env} --model {model} --set ab`)")
        return None
    settings = strategies.settings(repo, env)
    unit = settings.abTest.unit
    if unit_header is not None or unit_field is not None:
        unit = {"header": unit_header, "field": unit_field}
    try:  # checked before anything is downloaded
        return Split.model_validate({"split": settings.split(split), "unit": unit})
    except ValueError as exc:
        raise CommandError(f"not a valid A/B test: {exc}") from None


def promote(repo: Path, model: str, version: int, env: str, *, here: bool = False,
            push: bool = False, remote: str = "origin", open_pr: bool = True,
            by: str | None = None, now: datetime | None = None,
            registry_repo: Path | None = None, split: str | None = None,
            unit_header: str | None = None, unit_field: str | None = None) -> PromotionResult:
    """Check, pin and commit `model` v`version` in `env` as its release strategy says; push /
    open a PR when asked.

    `registry_repo` is where the embedded registry lives when MLFLOW_TRACKING_URI is unset
    (default: `repo` itself; a throwaway clone passes the checkout it was cloned from).
    `split` ("90/10"), `unit_header` and `unit_field` set an A/B test's split and unit (default:
    the environment's release settings)."""
    repo = gitops.toplevel(Path(repo))
    store = Path(registry_repo) if registry_repo else repo
    pins.require_model(repo, env, model)
    base = gitops.change_base(repo, needs_branch=here or push, to="promote on")
    current = pins.read(repo, env, model, "HEAD")
    if current.is_ab:
        raise CommandError(
            f"an A/B test runs in {env}: {pins.label(current)}. Conclude it "
            f"(`mlops ab-conclude {env} --model {model}`) or roll it back "
            f"(`mlops rollback {env} --model {model}`) before promoting another version")
    choice = strategies.effective(repo, env, model)
    ab = _ab_test(repo, env, choice.strategy, split, unit_header, unit_field, model)

    before = pins.PREREQUISITE.get(env)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The prerequisite's history is one `git log` in another process: read it while the
        # registry answers here (behind a tracking server, MLflow's client takes seconds to load).
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

    single = Pin(
        environment=env,
        model=ModelRef(name=model, version=version, uri=f"models:/{model}/{version}",
                       sha256=info.sha256),
        lineage=Lineage(run_id=info.run_id, git_commit=info.git_commit,
                        data_hash=info.data_hash, params=dict(sorted(info.params.items()))),
        metrics=evidence.point_metrics(info.metrics),
        promoted=Promotion(by=by or gitops.identity(repo),
                           at=(now or datetime.now(UTC)).replace(microsecond=0)),
    )
    new, kind = next_pin(current, choice.strategy, single, ab)
    path = pins.relpath(env, model)
    message = commit_message(new, current, kind, single.lineage)
    auto_merge = strategies.settings(repo, env).continuousDeployment

    def write_and_commit(work: Path) -> None:
        new.write(work / path)
        gitops.commit_file(work, path, message)

    branch = base if here else branch_name(env, model, version)
    sha = gitops.commit_on(repo, branch=None if here else branch, make_commit=write_and_commit)
    result = PromotionResult(sha, branch or "HEAD", current, new, kind=kind)
    result.body = evidence.promotion_body(
        new=new, current=current, challenger_metrics=info.metrics,
        champion_metrics=_champion_metrics(store, current), gate=gate, commit=sha,
        staged_in=staged_in, kind=kind, promoted=single,
        delivery=delivery_note(choice, auto_merge))
    if push:
        result.auto_merge = auto_merge and open_pr and not here
        result.pull_request = github.publish(
            repo, remote=remote, branch=result.branch, base=base, open_pr=open_pr and not here,
            title=message.splitlines()[0], body=result.body, auto_merge=result.auto_merge)
        result.pushed = True
    return result


DELIVERY = {
    "rolling": "the Deployment replaces its pods a few at a time",
    "canary": "an Argo Rollouts canary, 10% -> 30% -> 60% of the pods under analysis",
    "blue-green": ("Argo Rollouts blue-green: the new pods behind the preview Service, checked, "
                   "then a person promotes; the old pods stay up an hour"),
    "shadow": "the Deployment's rolling update; a new version first runs in shadow",
    "ab": "the Deployment's rolling update; a new version starts an A/B test",
}


def delivery_note(choice: strategies.Choice, auto_merge: bool) -> str:
    """A paragraph for the pull request: the strategy that delivers it, and who merges."""
    merge = ("Continuous deployment is on here: GitHub merges this pull request once its "
             "required checks pass." if auto_merge else "A person merges this pull request.")
    return (f"**Delivery:** {choice.strategy} ({DELIVERY[choice.strategy]}), as "
            f"`{choice.source}` says. {merge}\n\n")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (its folder environments/<env>/<model>/)")
    parser.add_argument("version", type=int, help="registered version number")
    parser.add_argument("--to", dest="env", required=True, help="environment, e.g. staging")
    parser.add_argument("--split", metavar="A/B",
                        help="strategy ab: percent of units for the version in service and the "
                             "new one, e.g. 90/10 (default: the environment's release settings)")
    parser.add_argument("--unit-header", help="strategy ab: the HTTP header naming the unit")
    parser.add_argument("--unit-field", help="strategy ab: the record field naming the unit")
    gitops.add_branch_options(parser, "promote")


def run(args: argparse.Namespace) -> int:
    result = promote(args.repo, args.model, args.version, args.env, here=args.here,
                     push=args.push, remote=args.remote, open_pr=not args.no_pr,
                     split=args.split, unit_header=args.unit_header,
                     unit_field=args.unit_field)
    print(result.summary())
    return 0
