"""`mlops history ENV`: every promotion and rollback of an environment, newest first, from git.

A promotion is a commit with the trailers `Environment:`/`Model:`/`Version:`/`Digest:`; a
rollback is git's own revert of one ("This reverts commit X."), so a `git revert` typed by
hand is recognised the same way. What each commit left pinned is read from the commit itself.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from contracts.pin import Pin
from pipelines.gitops import git as gitops
from pipelines.gitops import pins


@dataclass
class Event:
    """One commit that changed an environment's pin."""

    commit: gitops.Commit
    kind: str  # "promotion" | "rollback" | "change"
    pin: Pin  # what the environment pins after this commit
    reverts: str | None = None  # full sha of the commit this one reverts
    active: bool = True  # False once a later, itself active, commit reverted it

    @property
    def short(self) -> str:
        return self.commit.sha[:8]


def _full(prefix: str, shas: list[str]) -> str:
    return next((s for s in shas if s.startswith(prefix)), prefix)


def events(repo: Path, env: str, rev: str = "HEAD") -> list[Event]:
    """Every commit reachable from `rev` that changed `env`'s pin, newest first."""
    commits = gitops.log(repo, pins.relpath(env), rev)
    shas = [c.sha for c in commits]
    out = []
    for c in commits:
        try:
            pin = pins.read(repo, env, c.sha)
        except ValueError:
            pin = Pin(environment=env)  # a malformed pin commit is still shown, as a change
        if c.trailers.get("Environment") == env and "Version" in c.trailers:
            kind, target = "promotion", None
        elif c.reverts:
            kind, target = "rollback", _full(c.reverts, shas)
        else:
            kind, target = "change", None
        out.append(Event(c, kind, pin, target))
    # Newest first: a commit is undone only by a later revert that is itself still in effect
    # (reverting a rollback brings the promotion back).
    undone: set[str] = set()
    for event in out:
        event.active = event.commit.sha not in undone
        if event.active and event.reverts:
            undone.add(event.reverts)
    return out


def newest_active_promotion(repo: Path, env: str, rev: str = "HEAD") -> Event | None:
    """The promotion now in effect in `env` (what `mlops rollback` reverts), if any."""
    return next((e for e in events(repo, env, rev) if e.kind == "promotion" and e.active), None)


def digests_ever_pinned(repo: Path, env: str, rev: str = "HEAD") -> dict[str, str]:
    """sha256 -> first commit that pinned it in `env` (a malformed pin in history proves nothing)."""
    seen: dict[str, str] = {}
    for event in reversed(events(repo, env, rev)):
        if not event.pin.is_empty:
            seen.setdefault(event.pin.model.sha256, event.commit.sha)
    return seen


def history_lines(repo: Path, env: str, rev: str = "HEAD") -> str:
    """Printable history of `env`: when, commit, action, what it pins after, digest, who."""
    pins.require_environment(repo, env)
    evs = events(repo, env, rev)
    by_sha = {e.commit.sha: e for e in evs}
    header = f"{'WHEN':<25} {'COMMIT':<8} {'ACTION':<9} {'SERVES':<12} {'DIGEST':<12} BY / NOTE"
    lines = [f"history of {env} ({pins.relpath(env)}), newest first", header]
    for e in evs:
        digest = "-" if e.pin.is_empty else e.pin.model.sha256[:12]
        note = e.commit.author
        if e.kind == "rollback":
            target = by_sha.get(e.reverts or "")
            what = (f"{target.kind} {target.short} ({pins.label(target.pin)})" if target
                    else (e.reverts or "?")[:8])
            note += f"; reverts {what}"
        elif e.kind == "change":
            note += f"; {e.commit.subject}"
        if not e.active:
            note += "; reverted later"
        lines.append(f"{e.commit.date:<25} {e.short:<8} {e.kind:<9} {pins.label(e.pin):<12} "
                     f"{digest:<12} {note}")
    if not evs:
        lines.append("(no commits touch this pin)")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment, e.g. staging or production")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")
    parser.add_argument("--rev", default="HEAD", help="history as of this revision")


def run(args: argparse.Namespace) -> int:
    print(history_lines(gitops.toplevel(args.repo), args.env, args.rev))
    return 0
