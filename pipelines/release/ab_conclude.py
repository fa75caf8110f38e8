"""`mlops ab-conclude ENV --model NAME`: the A/B test's verdict becomes a promotion: the winner
is pinned alone, in one commit that changes only the pin, so `git revert` of it (or
`mlops rollback`) restores the A/B pin byte for byte and the test goes on.

Without a verdict it refuses, unless `--force --keep a|b --reason TEXT`: the reason is recorded
in the commit (its body and the `Verdict:` trailer), so history says who stopped a test early
and why. The commit carries the promotion trailers of the version kept (Model, Version, Digest,
Environment), so history, rollback and the order of environments read it like any promotion,
and `Concludes:` naming the test. Same branch / --here / --push / pull-request behaviour as
promote, auto-merge included where the environment has continuous deployment.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from contracts.pin import Pin, Promotion
from pipelines.errors import CommandError
from pipelines.gitops import evidence, github, pins
from pipelines.gitops import git as gitops
from pipelines.release import ab_report, strategy


@dataclass
class Conclusion:
    """What `mlops ab-conclude` did."""

    environment: str
    model: str
    kept: str  # variant kept: "a" or "b"
    forced: bool
    commit: str
    branch: str
    previous: Pin
    pin: Pin
    report: ab_report.ABReport
    body: str = ""
    pushed: bool = False
    pull_request: str | None = None
    auto_merge: bool = False

    def summary(self) -> str:
        """Human-readable outcome."""
        how = "forced, without a verdict" if self.forced and not self.report.winner else (
            "forced, against the verdict" if self.forced and self.report.winner != self.kept
            else "the verdict")
        lines = [f"concluded the A/B test of {self.model} in {self.environment}: "
                 f"{pins.label(self.previous)} -> {pins.label(self.pin)} ({how})",
                 f"  commit {self.commit[:12]} on {self.branch}",
                 f"  undo (the test goes on): git revert {self.commit}"]
        lines += github.delivery_lines(self.branch, self.pushed, self.pull_request,
                                       self.auto_merge)
        return "\n".join(lines)


def winner_pin(pin: Pin, keep: str, by: str, now: datetime) -> Pin:
    """The variant `keep` of the A/B `pin`, pinned alone (who concluded, and when)."""
    promoted = Promotion(by=by, at=now.replace(microsecond=0))
    if keep == "a":
        return Pin(environment=pin.environment, model=pin.model, lineage=pin.lineage,
                   metrics=pin.metrics, promoted=promoted)
    b = pin.ab.b
    return Pin(environment=pin.environment, model=b.model, lineage=b.lineage,
               metrics=b.metrics, promoted=promoted)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def commit_message(pin: Pin, new: Pin, keep: str, r: ab_report.ABReport,
                   reason: str | None) -> str:
    """Subject, the figures, and the trailers: the kept version's promotion trailers,
    `Concludes:` and `Verdict:`."""
    m, split = new.model, pin.ab.split
    test = (f"v{pin.model.version} {split['a']}% / v{pin.ab.b.model.version} {split['b']}%")
    if reason is None:
        subject = f"Conclude A/B test of {m.name} in {pin.environment}: v{m.version} ({keep}) wins"
        verdict = _one_line(r.outcome())
    else:
        subject = (f"Conclude A/B test of {m.name} in {pin.environment}: keep v{m.version} "
                   f"({keep}), forced")
        verdict = _one_line(f"forced ({r.outcome()}): {reason}")
    figures = "\n".join(
        f"{f.name} v{f.version}: {f.labels} labels, {r.metric} "
        f"{'-' if f.value is None else f'{f.value:.4f}'}" for f in (r.a, r.b))
    return (f"{subject}\n\nEnds the A/B test {test} since {r.since:%Y-%m-%d %H:%M} UTC; "
            f"pins {m.uri} alone.\n{figures}\n"
            + (f"Stopped early by decision: {_one_line(reason)}\n" if reason else "")
            + f"\nModel: {m.name}\nVersion: {m.version}\nDigest: {m.sha256}\n"
            f"Environment: {pin.environment}\nConcludes: {test}\nVerdict: {verdict}\n")


def body(c: Conclusion, reason: str | None) -> str:
    """The pull request: the report, what the pin becomes, how to undo."""
    env, model = c.environment, c.model
    why = f"**Forced:** {reason}\n\n" if reason else ""
    return (f"## Conclude the A/B test of `{model}` in **{env}**: keep v{c.pin.model.version} "
            f"({c.kept})\n\n{why}"
            f"This pull request changes one file, `{pins.relpath(env, model)}`, from "
            f"{pins.label(c.previous)} to "
            f"{pins.label(c.pin)} alone. Every unit gets v{c.pin.model.version} once it is "
            f"merged.\n\n### The test\n\n{ab_report.markdown(c.report)}\n\n"
            f"### Lineage of v{c.pin.model.version}\n\n{evidence.lineage_list(c.pin)}\n\n"
            f"### Undoing it\n\nReverting this commit restores the A/B pin byte for byte, and "
            f"the test goes on:\n\n```\ngit revert {c.commit}\n```\n")


def conclude(repo: Path, env: str, model: str | None = None, *, force: bool = False,
             keep: str | None = None, reason: str | None = None, here: bool = False,
             push: bool = False, remote: str = "origin", open_pr: bool = True,
             database: str | None = None, now: datetime | None = None,
             by: str | None = None, alpha: float = ab_report.ALPHA,
             tau: float | None = None) -> Conclusion:
    """Pin the winner of `model`'s A/B test in `env` alone (or, with `force`, the variant
    `keep`, for `reason`); push / open a PR when asked."""
    repo = gitops.toplevel(Path(repo))
    model = pins.resolve_model(repo, env, model)
    base = gitops.change_base(repo, needs_branch=here or push, to="conclude on")
    if keep is not None and keep not in ("a", "b"):
        raise CommandError(f"--keep must be a or b, got {keep!r}")
    if force and not (reason and reason.strip()):
        raise CommandError("--force needs --reason: why the test stops without its verdict "
                           "(it is recorded in the commit)")
    if reason and not force:
        raise CommandError("--reason goes with --force; a verdict needs no reason")
    pin = pins.read(repo, env, model, "HEAD")
    r = ab_report.report(repo, env, model, database=database, now=now, alpha=alpha, tau=tau)
    winner = r.winner
    if not force:
        if winner is None:
            raise CommandError(
                f"no verdict yet for the A/B test of {model} in {env}: {r.outcome()}. Wait for "
                f"it (`mlops ab-report {env} --model {model}`), or stop the test anyway with "
                "--force --keep a|b --reason '...'")
        if keep is not None and keep != winner:
            raise CommandError(f"the verdict is {winner}, not {keep}: keeping the loser needs "
                               "--force and a --reason")
        keep = winner
    elif keep is None:
        raise CommandError("--force needs --keep a|b: which variant stays")
    new = winner_pin(pin, keep, by or gitops.identity(repo),
                     (now or datetime.now(UTC)))
    forced_reason = reason.strip() if force else None
    message = commit_message(pin, new, keep, r, forced_reason)
    path = pins.relpath(env, model)

    def write_and_commit(work: Path) -> None:
        new.write(work / path)
        gitops.commit_file(work, path, message)

    branch = base if here else (f"conclude/{env}/{model}-v{pin.model.version}-"
                                f"v{pin.ab.b.model.version}")
    sha = gitops.commit_on(repo, branch=None if here else branch, make_commit=write_and_commit)
    result = Conclusion(env, model, keep, force, sha, branch or "HEAD", pin, new, r)
    result.body = body(result, forced_reason)
    if push:
        result.auto_merge = (strategy.settings(repo, env).continuousDeployment
                             and open_pr and not here)
        result.pull_request = github.publish(
            repo, remote=remote, branch=result.branch, base=base, open_pr=open_pr and not here,
            title=message.splitlines()[0], body=result.body, auto_merge=result.auto_merge)
        result.pushed = True
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment whose A/B test to conclude, e.g. production")
    parser.add_argument("--model", help="the model (may be left out when ENV holds one)")
    parser.add_argument("--force", action="store_true",
                        help="conclude without (or against) the verdict; needs --keep and "
                             "--reason")
    parser.add_argument("--keep", choices=("a", "b"), help="with --force: the variant that stays")
    parser.add_argument("--reason", help="with --force: why, recorded in the commit")
    parser.add_argument("--alpha", type=float, default=ab_report.ALPHA,
                        help=f"the verdict's false-positive rate (default {ab_report.ALPHA})")
    parser.add_argument("--tau", type=float, help="see mlops ab-report --tau")
    gitops.add_branch_options(parser, "conclude")


def run(args: argparse.Namespace) -> int:
    result = conclude(args.repo, args.env, args.model or None, force=args.force,
                      keep=args.keep, reason=args.reason, here=args.here, push=args.push,
                      remote=args.remote, open_pr=not args.no_pr, alpha=args.alpha,
                      tau=args.tau)
    print(result.summary())
    return 0
