"""`mlops rollback ENV [--model NAME]`: `git revert` of the promotion of one model now in effect
in an environment (`--model` may be left out when the environment holds one model).

The promotion is found from the commit trailers (see pipelines/gitops/history.py); the revert is
git's own `git revert --no-edit`, so typing `git revert <sha>` by hand gives the same change
and the same message. Because a promotion changes only its pin file, the revert restores the
previous pin byte for byte, and every other model of the environment is left as it was. Same
branch / --here / --push / pull-request behaviour as promote, auto-merge included where the
environment has continuous deployment (so the rollback bot's pull request goes out unattended
there too). Reverting the start of an A/B test ends it; reverting its conclusion resumes it.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from contracts.pin import Pin
from pipelines.errors import CommandError
from pipelines.gitops import evidence, github, history, pins
from pipelines.gitops import git as gitops


@dataclass
class RollbackResult:
    """What a rollback did."""

    environment: str
    model: str
    reverted: str  # sha of the promotion commit undone
    commit: str
    branch: str
    previous: Pin  # what was pinned before the rollback
    pin: Pin  # what is pinned now
    pushed: bool = False
    pull_request: str | None = None
    body: str = ""
    auto_merge: bool = False

    def summary(self) -> str:
        """Human-readable outcome."""
        lines = [f"rolled back {self.environment}: {pins.label(self.previous)} -> "
                 f"{pins.label(self.pin)}",
                 f"  commit {self.commit[:12]} on {self.branch} reverts {self.reverted[:12]}"]
        lines += github.delivery_lines(self.branch, self.pushed, self.pull_request,
                                       self.auto_merge)
        return "\n".join(lines)


def branch_name(env: str, promotion: history.Event) -> str:
    """The branch a rollback is committed on unless --here."""
    return (f"rollback/{env}/{promotion.model}-v{promotion.served.version}-"
            f"{promotion.commit.sha[:8]}")


def rollback(repo: Path, env: str, model: str | None = None, *, here: bool = False,
             push: bool = False, remote: str = "origin", open_pr: bool = True,
             reason: str | None = None) -> RollbackResult:
    """Revert the newest promotion of `model` still in effect in `env` (`model` None: the
    environment's only model); push / open a PR when asked.

    `reason` (e.g. the alert that fired) goes into the pull request, not the commit, so the
    commit stays exactly what a hand-typed `git revert` makes."""
    repo = gitops.toplevel(Path(repo))
    model = pins.resolve_model(repo, env, model)
    base = gitops.change_base(repo, needs_branch=here or push, to="roll back on")
    path = pins.relpath(env, model)
    target = history.newest_active_promotion(repo, env, model)
    if target is None:
        raise CommandError(f"nothing to roll back in {env}: no promotion of {model} in effect "
                           f"in its history ({path})")
    try:
        current = pins.read(repo, env, model, "HEAD")
    except ValueError as exc:
        raise CommandError(f"the {env} pin at HEAD is not a valid pin, so it was not written by "
                           f"a promotion; revert the commit that broke it: {exc}") from exc
    branch = base if here else branch_name(env, target)
    sha = gitops.commit_on(repo, branch=None if here else branch,
                           make_commit=lambda work: gitops.revert(work, target.commit.sha))
    changed = gitops.git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()
    if changed != [path]:
        # Cannot happen for a promotion made by `mlops promote`; says so if history was edited.
        raise CommandError(f"revert {sha[:12]} changed {changed}, not only {path}")
    result = RollbackResult(env, model, target.commit.sha, sha, branch or "HEAD", current,
                            pins.read(repo, env, model, sha))
    result.body = evidence.rollback_body(env=env, model=model, reverted=target.commit.sha,
                                         current=current, restored=result.pin, commit=sha,
                                         reason=reason)
    if push:
        from pipelines.release import strategy

        subject = gitops.git(repo, "log", "-1", "--format=%s", sha).strip()
        result.auto_merge = (strategy.settings(repo, env).continuousDeployment
                             and open_pr and not here)
        result.pull_request = github.publish(
            repo, remote=remote, branch=result.branch, base=base, open_pr=open_pr and not here,
            title=subject, body=result.body, auto_merge=result.auto_merge)
        result.pushed = True
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment to roll back, e.g. production")
    parser.add_argument("--model", help="the model to roll back (may be left out when ENV "
                                        "holds one model)")
    parser.add_argument("--reason", help="why (e.g. the alert); shown in the pull request")
    gitops.add_branch_options(parser, "rollback")


def run(args: argparse.Namespace) -> int:
    result = rollback(args.repo, args.env, args.model or None, here=args.here, push=args.push,
                      remote=args.remote, open_pr=not args.no_pr, reason=args.reason)
    print(result.summary())
    return 0
