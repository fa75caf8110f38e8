"""`mlops strategy ENV [--model NAME] [--set STRATEGY | --inherit]`: how new versions reach an
environment's users, read from git, and changed by a one-file commit (a pull request).

The strategy is the Kustomize component a model's overlay applies, so what Kustomize renders
and what `mlops` reads can never disagree:

- `environments/shared/<env>/release/kustomization.yaml` names the environment's strategy
  (`../../../base/<strategy>`);
- a model's overlay, `environments/<env>/<model>/kustomization.yaml`, applies that component
  (`../../shared/<env>/release`) or names its own (`../../base/<strategy>`): the per-model
  override.

The strategies: `rolling` (the Deployment's rolling update), `canary` and `blue-green` (Argo
Rollouts, judged by analysis), `shadow` (a promotion first runs the new version as the pin's
shadow) and `ab` (a promotion starts an A/B test against the current version). The environment's
other release settings, continuous deployment and the A/B defaults, are in
`environments/shared/<env>/release/settings.yaml` (see `Settings`).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.files import atomic_write_text
from contracts.pin import Split, Unit
from pipelines.errors import CommandError
from pipelines.gitops import git as gitops
from pipelines.gitops import github, pins

STRATEGIES = ("rolling", "canary", "blue-green", "shadow", "ab")
RELEASE = "release"
SETTINGS = "settings.yaml"
KUSTOMIZATION = "kustomization.yaml"
# Where a strategy's component lives, seen from an environment's release component and from a
# model's overlay.
FROM_RELEASE = "../../../base/{}"
FROM_OVERLAY = "../../base/{}"
# Strategies whose analysis guards users without a person watching: the only ones continuous
# deployment may use in an environment that has a prerequisite (production).
GUARDED = ("canary", "blue-green")

RELEASE_COMPONENT = """\
# How new versions of {env}'s models reach their users, unless a model's overlay names its own
# strategy: the one component below, ../../../base/<strategy>, where <strategy> is one of
# {strategies}. Changing it is a pull request (`mlops strategy {env} --set STRATEGY`);
# `mlops strategy {env}` shows what each model uses. Continuous deployment and the A/B test
# defaults are in settings.yaml beside this file.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component

components:
  - ../../../base/{strategy}
"""


def release_dir(repo: Path, env: str) -> Path:
    """`environments/shared/<env>/release/` in `repo`."""
    return Path(repo) / pins.ROOT / pins.SHARED / env / RELEASE


def release_component_text(env: str, strategy: str) -> str:
    """The kustomization.yaml of `env`'s release component choosing `strategy`."""
    check_strategy(strategy)
    return RELEASE_COMPONENT.format(env=env, strategy=strategy,
                                    strategies=", ".join(STRATEGIES))


def check_strategy(name: str) -> str:
    """`name` if it is a strategy; CommandError listing them otherwise."""
    if name not in STRATEGIES:
        raise CommandError(f"unknown strategy {name!r}: one of {', '.join(STRATEGIES)}")
    return name


def _components(path: Path) -> list[str]:
    if not path.is_file():
        raise CommandError(f"{path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CommandError(f"{path} is not valid YAML: {exc}") from None
    entries = data.get("components") or []
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise CommandError(f"{path}: components must be a list of paths")
    return entries


def _named(entries: list[str], pattern: str) -> list[str]:
    return [s for s in STRATEGIES if pattern.format(s) in entries]


def environment_strategy(repo: Path, env: str) -> str:
    """The strategy `env`'s release component applies."""
    path = release_dir(repo, env) / KUSTOMIZATION
    found = _named(_components(path), FROM_RELEASE)
    if len(found) != 1:
        choices = ", ".join(FROM_RELEASE.format(s) for s in STRATEGIES)
        raise CommandError(f"{path} must apply exactly one of {choices}; "
                           f"it applies {found or 'none'}")
    return found[0]


def model_override(repo: Path, env: str, model: str) -> str | None:
    """The strategy `model`'s overlay in `env` names itself, or None when it applies the
    environment's."""
    path = Path(repo) / pins.ROOT / env / model / KUSTOMIZATION
    entries = _components(path)
    inherited = f"../../{pins.SHARED}/{env}/{RELEASE}" in entries
    own = _named(entries, FROM_OVERLAY)
    if inherited + len(own) != 1:
        raise CommandError(f"{path} must apply either ../../{pins.SHARED}/{env}/{RELEASE} or one "
                           f"../../base/<strategy>; it applies "
                           f"{'the environment release and ' if inherited else ''}{own or 'no strategy'}")
    return own[0] if own else None


@dataclass(frozen=True)
class Choice:
    """The strategy a model uses in an environment, and whose choice it is."""

    strategy: str
    overridden: bool  # the model's overlay names it (else the environment's release component)
    source: str  # the file that says so, relative to the repository

    def describe(self) -> str:
        """`canary (environments/shared/production/release)`-style text."""
        return f"{self.strategy} ({self.source})"


def effective(repo: Path, env: str, model: str) -> Choice:
    """The strategy `model` uses in `env`: its overlay's own, or the environment's."""
    own = model_override(repo, env, model)
    if own is not None:
        return Choice(own, True, f"{pins.ROOT}/{env}/{model}/{KUSTOMIZATION}")
    return Choice(environment_strategy(repo, env), False,
                  f"{pins.ROOT}/{pins.SHARED}/{env}/{RELEASE}/{KUSTOMIZATION}")


# --- settings ------------------------------------------------------------------------------

class ABDefaults(Split):
    """What an A/B test started in the environment uses unless the command line says otherwise
    (held to the rules of an A/B pin's split and unit)."""

    split: dict[str, int] = Field(default_factory=lambda: {"a": 90, "b": 10})
    unit: Unit = Field(default_factory=lambda: Unit(header="X-Unit-Id"))


class Settings(BaseModel):
    """`environments/shared/<env>/release/settings.yaml`."""

    model_config = ConfigDict(extra="forbid")

    continuousDeployment: bool = False
    abTest: ABDefaults = Field(default_factory=ABDefaults)

    def split(self, text: str | None) -> dict[str, int]:
        """The split `A/B` given on the command line (e.g. `90/10`), or the default."""
        if text is None:
            return dict(self.abTest.split)
        a, sep, b = text.partition("/")
        try:
            split = {"a": int(a), "b": int(b)}
        except ValueError:
            split = None
        if not sep or split is None:
            raise CommandError(f"--split {text!r} is not A/B in whole percents, e.g. 90/10")
        return split


def settings(repo: Path, env: str) -> Settings:
    """`env`'s release settings (every setting at its default when the file is absent)."""
    path = release_dir(repo, env) / SETTINGS
    if not path.is_file():
        return Settings()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        found = Settings.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise CommandError(f"{path.relative_to(repo)} is not valid release settings: {exc}") \
            from None
    return found


def check(repo: Path) -> list[str]:
    """Every environment and model's strategy is readable and agrees with its pin and settings:
    an A/B pin only where the strategy is `ab`; continuous deployment in an environment with a
    prerequisite (production) only for models guarded by analysis (canary, blue-green). One
    line each; CommandError naming every disagreement."""
    lines, problems = [], []
    for env in pins.environments(repo):
        cd = settings(repo, env).continuousDeployment
        for model in pins.models(repo, env):
            choice = effective(repo, env, model)
            pin = pins.read(repo, env, model)
            if pin.is_ab and choice.strategy != "ab":
                problems.append(f"{pins.relpath(env, model)} runs an A/B test, but {model}'s "
                                f"strategy in {env} is {choice.describe()}")
            if cd and env in pins.PREREQUISITE and choice.strategy not in GUARDED:
                problems.append(f"continuous deployment is on for {env}, where {model} is "
                                f"released by {choice.describe()}: without canary or blue-green "
                                "analysis nothing guards its users (README: continuous deployment)")
            lines.append(f"ok  {env}/{model}: {choice.describe()}"
                         f"{', continuous deployment' if cd else ''}")
    if problems:
        raise CommandError("release strategies disagree with the pins or settings:\n"
                           + "\n".join(problems))
    return lines


# --- changing it -----------------------------------------------------------------------------

def strategy_table(repo: Path, env: str) -> str:
    """Printable: the environment's strategy and settings, and each model's strategy."""
    pins.require_environment(repo, env)
    s = settings(repo, env)
    lines = [f"{env}: strategy {environment_strategy(repo, env)} "
             f"({pins.ROOT}/{pins.SHARED}/{env}/{RELEASE}); continuous deployment "
             f"{'on' if s.continuousDeployment else 'off'}; A/B defaults "
             f"{s.abTest.split['a']}/{s.abTest.split['b']}, unit "
             f"{_unit_text(s.abTest.unit)}"]
    for model in pins.models(repo, env):
        choice = effective(repo, env, model)
        lines.append(f"  {model}: {choice.strategy}"
                     f"{' (its own, ' + choice.source + ')' if choice.overridden else ''}")
    return "\n".join(lines)


def _unit_text(unit: Unit) -> str:
    return " or ".join(filter(None, [unit.header and f"header {unit.header}",
                                     unit.field and f"field {unit.field}"]))


def write(repo: Path, env: str, model: str | None, strategy: str | None) -> str:
    """Write the change into `repo`'s work tree; return the one file changed (relative).
    `model` None: the environment's strategy; `strategy` None: the model applies its
    environment's again."""
    from pipelines.gitops import environments

    if model is None:
        if strategy is None:
            raise CommandError("an environment always has a strategy: give --set STRATEGY")
        path = release_dir(repo, env) / KUSTOMIZATION
        atomic_write_text(path, release_component_text(env, strategy))
    else:
        if strategy is not None:
            check_strategy(strategy)
        path = environments.overlay_dir(repo, env, model) / KUSTOMIZATION
        atomic_write_text(path, environments.overlay_text(env, model, strategy))
    return path.relative_to(repo).as_posix()


@dataclass
class StrategyChange:
    """What `mlops strategy --set/--inherit` did."""

    environment: str
    model: str | None
    before: str
    after: str
    commit: str
    branch: str
    path: str
    pull_request: str | None = None
    pushed: bool = False

    def summary(self) -> str:
        """Human-readable outcome."""
        who = f"{self.model} in {self.environment}" if self.model else self.environment
        lines = [f"strategy of {who}: {self.before} -> {self.after}",
                 f"  commit {self.commit[:12]} on {self.branch} changes {self.path}"]
        if self.pull_request:
            lines.append(f"  pull request: {self.pull_request}")
        elif self.pushed:
            lines.append(f"  pushed {self.branch}")
        return "\n".join(lines)


def change(repo: Path, env: str, model: str | None, strategy: str | None, *,
           here: bool = False, push: bool = False, remote: str = "origin",
           open_pr: bool = True) -> StrategyChange:
    """Commit a change of strategy (one file) on a new branch or here; push / open a PR."""
    repo = gitops.toplevel(Path(repo))
    if model:
        pins.require_model(repo, env, model)
    else:
        pins.require_environment(repo, env)
    base = gitops.change_base(repo, needs_branch=here or push, to="change")
    env_strategy = environment_strategy(repo, env)
    own = model_override(repo, env, model) if model else None
    if model and strategy is None and own is None:
        raise CommandError(f"{model} in {env} already uses {env}'s strategy ({env_strategy})")
    if strategy is not None and strategy == (own if model else env_strategy):
        raise CommandError(f"{model} in {env} already uses {strategy}" if model
                           else f"{env} already uses {strategy}")
    before = (own or env_strategy) if model else env_strategy
    after = strategy or env_strategy
    # The models whose strategy moves: this one, or every model following the environment's.
    moving = [model] if model else [m for m in pins.models(repo, env)
                                    if model_override(repo, env, m) is None]
    for name in moving:
        if after != "ab" and pins.read(repo, env, name, "HEAD").is_ab:
            raise CommandError(f"{name} runs an A/B test in {env}: conclude it "
                               f"(`mlops ab-conclude {env} --model {name}`) or roll it back "
                               "before it leaves strategy ab")
    who = f"{model} in {env}" if model else env
    subject = (f"Release {who} by {after}" if strategy is not None
               else f"Release {who} by {env}'s strategy ({after})")
    message = (f"{subject}\n\nStrategy of {who}: {before} -> {after}. The pods keep serving the "
               f"version they serve; the next change of the pin is delivered the new way.\n")
    path_holder: list[str] = []

    def write_and_commit(work: Path) -> None:
        path_holder.append(write(work, env, model, strategy))
        gitops.commit_file(work, path_holder[0], message)

    branch = base if here else f"strategy/{env}{'/' + model if model else ''}-{after}"
    sha = gitops.commit_on(repo, branch=None if here else branch, make_commit=write_and_commit)
    result = StrategyChange(env, model, before, after, sha, branch or "HEAD", path_holder[0])
    if push:
        body = (f"## {subject}\n\nThis pull request changes one file, `{result.path}`: new "
                f"versions of {who} will reach users by **{after}** instead of {before}. "
                "The manifests check renders and validates the result. The pods keep serving "
                "the version they serve; the next promotion is delivered the new way.\n\n"
                f"Undo: `git revert {sha}`.\n")
        result.pull_request = github.publish(repo, remote=remote, branch=result.branch,
                                             base=base, open_pr=open_pr and not here,
                                             title=subject, body=body)
        result.pushed = True
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment, e.g. production")
    parser.add_argument("--model", help="one model's own strategy (default: the environment's)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--set", dest="strategy", choices=STRATEGIES,
                      help="change the strategy (one commit, a pull request with --push)")
    what.add_argument("--inherit", action="store_true",
                      help="the model goes back to its environment's strategy")
    gitops.add_branch_options(parser, "strategy")


def run(args: argparse.Namespace) -> int:
    repo = gitops.toplevel(args.repo)
    if not args.strategy and not args.inherit:
        print(strategy_table(repo, args.env))
        return 0
    if args.inherit and not args.model:
        raise CommandError("--inherit needs --model: an environment always has a strategy")
    result = change(repo, args.env, args.model or None, args.strategy, here=args.here,
                    push=args.push, remote=args.remote, open_pr=not args.no_pr)
    print(result.summary())
    return 0
