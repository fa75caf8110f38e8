"""`mlops history ENV [--model NAME]`: every promotion and rollback of an environment's models,
newest first, from git.

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
    """One commit that changed a model's pin in an environment."""

    commit: gitops.Commit
    model: str
    kind: str  # "promotion" | "rollback" | "change"
    pin: Pin  # what the model's pin holds after this commit
    reverts: str | None = None  # full sha of the commit this one reverts
    active: bool = True  # False once a later, itself active, commit reverted it

    @property
    def short(self) -> str:
        return self.commit.sha[:8]


def _full(prefix: str, shas: list[str]) -> str:
    return next((s for s in shas if s.startswith(prefix)), prefix)


def events(repo: Path, env: str, model: str, rev: str = "HEAD") -> list[Event]:
    """Every commit reachable from `rev` that changed `model`'s pin in `env`, newest first."""
    commits = gitops.log(repo, pins.relpath(env, model), rev)
    shas = [c.sha for c in commits]
    out = []
    for c in commits:
        try:
            pin = pins.read(repo, env, model, c.sha)
        except ValueError:
            pin = Pin(environment=env)  # a malformed pin commit is still shown, as a change
        if (c.trailers.get("Environment") == env and c.trailers.get("Model") == model
                and "Version" in c.trailers):
            kind, target = "promotion", None
        elif c.reverts:
            kind, target = "rollback", _full(c.reverts, shas)
        else:
            kind, target = "change", None
        out.append(Event(c, model, kind, pin, target))
    # Newest first: a commit is undone only by a later revert that is itself still in effect
    # (reverting a rollback brings the promotion back).
    undone: set[str] = set()
    for event in out:
        event.active = event.commit.sha not in undone
        if event.active and event.reverts:
            undone.add(event.reverts)
    return out


def newest_active_promotion(repo: Path, env: str, model: str, rev: str = "HEAD") -> Event | None:
    """The promotion of `model` now in effect in `env` (what `mlops rollback` reverts), if any."""
    return next((e for e in events(repo, env, model, rev)
                 if e.kind == "promotion" and e.active), None)


def digests_held(repo: Path, env: str, model: str, rev: str = "HEAD") -> dict[str, str]:
    """sha256 -> first commit that pinned it for `model` in `env` (a malformed pin in history
    proves nothing)."""
    seen: dict[str, str] = {}
    for event in reversed(events(repo, env, model, rev)):
        if not event.pin.is_empty:
            seen.setdefault(event.pin.model.sha256, event.commit.sha)
    return seen


def _environment_events(repo: Path, env: str, models: list[str], rev: str) -> list[Event]:
    # Interleave the models' events in the order `git log` lists the environment's commits.
    order = {c.sha: i for i, c in enumerate(gitops.log(repo, pins.folder(env), rev))}
    evs = [e for model in models for e in events(repo, env, model, rev)]
    return sorted(evs, key=lambda e: (order.get(e.commit.sha, len(order)), e.model))


def history_lines(repo: Path, env: str, model: str | None = None, rev: str = "HEAD") -> str:
    """Printable history of `env` (of one model, or of all): when, commit, model, action, the
    version it pins after, digest, who."""
    if model:
        pins.require_model(repo, env, model)
        models, where = [model], f"{model} in {env} ({pins.relpath(env, model)})"
    else:
        pins.require_environment(repo, env)
        models, where = pins.models(repo, env), f"{env} ({pins.relpath(env, '<model>')})"
    evs = _environment_events(repo, env, models, rev)
    by_sha = {(e.commit.sha, e.model): e for e in evs}
    width = max([len("MODEL")] + [len(m) for m in models])
    header = (f"{'WHEN':<25} {'COMMIT':<8} {'MODEL':<{width}} {'ACTION':<9} {'SERVES':<8} "
              f"{'DIGEST':<12} BY / NOTE")
    lines = [f"history of {where}, newest first", header]
    for e in evs:
        digest = "-" if e.pin.is_empty else e.pin.model.sha256[:12]
        serves = "nothing" if e.pin.is_empty else f"v{e.pin.model.version}"
        note = e.commit.author
        if e.kind == "rollback":
            target = by_sha.get((e.reverts or "", e.model))
            what = (f"{target.kind} {target.short} ({pins.label(target.pin)})" if target
                    else (e.reverts or "?")[:8])
            note += f"; reverts {what}"
        elif e.kind == "change":
            note += f"; {e.commit.subject}"
        if not e.active:
            note += "; reverted later"
        lines.append(f"{e.commit.date:<25} {e.short:<8} {e.model:<{width}} {e.kind:<9} "
                     f"{serves:<8} {digest:<12} {note}")
    if not evs:
        lines.append("(no commits touch these pins)")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment, e.g. staging or production")
    parser.add_argument("--model", help="only this model (default: every model of ENV)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")
    parser.add_argument("--rev", default="HEAD", help="history as of this revision")


def run(args: argparse.Namespace) -> int:
    print(history_lines(gitops.toplevel(args.repo), args.env, args.model, args.rev))
    return 0
