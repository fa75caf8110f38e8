"""`mlops history ENV [--model NAME] [--at TIME]`: every promotion and rollback of an
environment's models, newest first, or what each served at a moment, from git.

A promotion is a commit with the trailers `Environment:`/`Model:`/`Version:`/`Digest:` (one that
starts an A/B test or a shadow adds `Variant:` and `Control:`, see promote.commit_message); a
rollback is git's own revert of one ("This reverts commit X."), so a `git revert` typed by
hand is recognised the same way.

The whole history is one `git log` (messages, trailers, and the blob id each commit left the
pin at), however long it is. What a commit left pinned comes from the trailers of the promotion
that wrote that same blob; only a pin no promotion wrote (the first, empty one, a hand edit) is
read, all of them in one `git cat-file --batch`. A full pin is parsed only where it is shown
whole (`--at`) or where a check needs more than the trailers hold.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from contracts.pin import Pin
from pipelines.errors import CommandError
from pipelines.gitops import evidence, pins
from pipelines.gitops import git as gitops


class Served(NamedTuple):
    """What a pin names: a version and its digest, or nothing. For a pin that runs an A/B test
    (`role` "b") or a shadow (`role` "shadow") they are the challenger's, beside version
    `control` (variant a, the model answering), with the test's `split` ("90/10")."""

    version: int | None = None
    sha256: str | None = None
    role: str | None = None
    control: int | None = None
    split: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.version is None

    @property
    def answers(self) -> bool:
        """Whether users get this version's answers (a shadow's are only compared)."""
        return not self.is_empty and self.role != "shadow"

    def short(self) -> str:
        """`v2`, `v2/v3` (an A/B test of v2 against v3), `v2` (with a shadow), or `nothing`."""
        if self.is_empty:
            return "nothing"
        if self.role == "b":
            return f"v{self.control}/v{self.version}"
        return f"v{self.control}" if self.role == "shadow" else f"v{self.version}"

    def note(self) -> str:
        """What the short form leaves out: the A/B split, or the shadow."""
        if self.role == "b":
            return f"A/B test {self.split}"
        return f"shadow v{self.version}" if self.role == "shadow" else ""


def served_by(pin: Pin) -> Served:
    """What a whole pin names, as history records it."""
    if pin.is_empty:
        return NOTHING
    if pin.is_ab:
        b, split = pin.ab.b.model, pin.ab.split
        return Served(b.version, b.sha256, "b", pin.model.version, f"{split['a']}/{split['b']}")
    return Served(pin.model.version, pin.model.sha256)


NOTHING = Served()


@dataclass
class Event:
    """One commit that changed a model's pin in an environment."""

    commit: gitops.Commit
    env: str
    model: str
    kind: str  # "promotion" | "rollback" | "change"
    blob: str  # the pin file as this commit left it
    served: Served = NOTHING  # what the pin names after this commit
    reverts: str | None = None  # full sha of the commit this one reverts
    target: Event | None = None  # the event it reverts, when that is in the history read
    active: bool = True  # False once a later, itself active, commit reverted it

    @property
    def short(self) -> str:
        return self.commit.sha[:8]

    @property
    def label(self) -> str:
        """`fraud v2`, `fraud v2/v3` (an A/B test), or `nothing`."""
        if self.served.is_empty:
            return "nothing"
        note = f", {self.served.note()}" if self.served.note() else ""
        return f"{self.model} {self.served.short()}{note}"

    def pin(self, repo: Path) -> Pin:
        """The whole pin this commit left (read and parsed now)."""
        if self.blob == gitops.NO_BLOB:
            return Pin(environment=self.env)
        text = gitops.read_blobs(repo, {self.blob})[self.blob]
        return pins.parse(text, self.env, self.model,
                          f"{pins.relpath(self.env, self.model)} at {self.short}")


def _promoted(commit: gitops.Commit, env: str, model: str) -> Served | None:
    """What a promotion commit pins, from its trailers alone (None: not a promotion of it)."""
    t = commit.trailers
    if t.get("Environment") != env or t.get("Model") != model or "Version" not in t:
        return None
    try:
        version = int(t["Version"])
        control = int(t["Control"]) if "Control" in t else None
    except ValueError:
        return None
    role = t.get("Variant")
    if role not in ("b", "shadow") or control is None:
        return Served(version, t.get("Digest"))
    return Served(version, t.get("Digest"), role, control, t.get("Split"))


def _read_states(repo: Path, events: list[Event], known: dict[str, Served]) -> None:
    # The pins no promotion wrote, each read once, all in one process.
    wanted = {e.blob for e in events if e.blob not in known and e.blob != gitops.NO_BLOB}
    texts = gitops.read_blobs(repo, wanted)
    for e in events:
        if e.blob == gitops.NO_BLOB:
            e.served = NOTHING
        elif e.blob in known:
            e.served = known[e.blob]
        else:
            try:
                pin = pins.parse(texts[e.blob], e.env, e.model, e.short)
            except ValueError:
                pin = Pin(environment=e.env)  # a malformed pin commit is still shown, as a change
            known[e.blob] = e.served = served_by(pin)


def environment_events(repo: Path, env: str, model: str | None = None,
                       rev: str = "HEAD") -> list[Event]:
    """Every commit reachable from `rev` that changed the pin of `model` (None: of any model)
    in `env`, newest first: one `git log`, and one `git cat-file` for pins no promotion wrote."""
    spec = (pins.relpath(env, model) if model
            else f":(glob){pins.relpath(env, '*')}")
    events: list[Event] = []
    known: dict[str, Served] = {}
    for change in gitops.log_changes(repo, spec, rev):
        name = change.path.rsplit("/", 2)[-2]  # environments/<env>/<model>/model.yaml
        served = _promoted(change.commit, env, name)
        if served is not None and served.sha256:
            known.setdefault(change.blob, served)
        kind = ("promotion" if served is not None
                else "rollback" if change.commit.reverts else "change")
        events.append(Event(change.commit, env, name, kind, change.blob))
    _read_states(repo, events, known)
    by_model: dict[str, list[Event]] = {}
    for e in events:
        by_model.setdefault(e.model, []).append(e)
    for evs in by_model.values():
        by_sha = {e.commit.sha: e for e in evs}
        # Newest first: a commit is undone only by a later revert that is itself still in
        # effect (reverting a rollback brings the promotion back).
        undone: set[str] = set()
        for e in evs:
            if e.kind == "rollback":
                named = e.commit.reverts  # git writes the full sha; a hand-made one may not
                e.target = by_sha.get(named) or next(
                    (t for sha, t in by_sha.items() if sha.startswith(named)), None)
                e.reverts = e.target.commit.sha if e.target else named
            e.active = e.commit.sha not in undone
            if e.active and e.reverts:
                undone.add(e.reverts)
    return events


def events(repo: Path, env: str, model: str, rev: str = "HEAD") -> list[Event]:
    """Every commit reachable from `rev` that changed `model`'s pin in `env`, newest first."""
    return environment_events(repo, env, model, rev)


def newest_active_promotion(repo: Path, env: str, model: str, rev: str = "HEAD") -> Event | None:
    """The promotion of `model` now in effect in `env` (what `mlops rollback` reverts), if any."""
    return next((e for e in events(repo, env, model, rev)
                 if e.kind == "promotion" and e.active), None)


def digests_held(model_events: list[Event]) -> dict[str, str]:
    """sha256 -> first commit of `model_events` (one model's, newest first) that pinned it and
    was not reverted later: a promotion that was rolled back proves nothing (nor does a
    malformed pin, nor a shadow, whose answers no user got; variant b of an A/B test did
    answer)."""
    seen: dict[str, str] = {}
    for event in reversed(model_events):
        if event.active and event.served.answers and event.served.sha256:
            seen.setdefault(event.served.sha256, event.commit.sha)
    return seen


def _models_and_where(repo: Path, env: str, model: str | None) -> tuple[list[str], str]:
    if model:
        pins.require_model(repo, env, model)
        return [model], f"{model} in {env} ({pins.relpath(env, model)})"
    pins.require_environment(repo, env)
    return pins.models(repo, env), f"{env} ({pins.relpath(env, '<model>')})"


def history_lines(repo: Path, env: str, model: str | None = None, rev: str = "HEAD") -> str:
    """Printable history of `env` (of one model, or of all): when, commit, model, action, the
    version it pins after, digest, who."""
    models, where = _models_and_where(repo, env, model)
    evs = [e for e in environment_events(repo, env, model, rev) if e.model in models]
    width = max([len("MODEL")] + [len(m) for m in models])
    header = (f"{'WHEN':<25} {'COMMIT':<8} {'MODEL':<{width}} {'ACTION':<9} {'SERVES':<8} "
              f"{'DIGEST':<12} BY / NOTE")
    lines = [f"history of {where}, newest first", header]
    for e in evs:
        digest = "-" if e.served.is_empty else (e.served.sha256 or "?")[:12]
        serves = e.served.short()
        note = e.commit.author + (f"; {e.served.note()}" if e.served.note() else "")
        if e.kind == "rollback":
            target = e.target
            what = (f"{target.kind} {target.short} ({target.label})" if target
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


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time; one without a UTC offset is UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--at {text!r} is not an ISO 8601 time "
                           "(e.g. 2025-03-01T15:30:00Z or 2025-03-01)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def served_at(repo: Path, env: str, when: datetime, model: str | None = None,
              rev: str = "HEAD") -> list[tuple[str, Event | None]]:
    """For each model of `env` (or `model`): the commit whose pin was in effect at `when` on
    `rev`'s history, by commit time (None: no commit of that pin yet)."""
    models, _ = _models_and_where(repo, env, model)
    out: dict[str, Event | None] = dict.fromkeys(models)
    for e in environment_events(repo, env, model, rev):
        if e.model in out and out[e.model] is None and (
                datetime.fromisoformat(e.commit.committed) <= when):
            out[e.model] = e
    return list(out.items())


def served_at_lines(repo: Path, env: str, when: datetime, model: str | None = None,
                    rev: str = "HEAD") -> str:
    """Printable answer to "what did `env` serve at `when`": per model the commit, who promoted
    it, the version, the digest and its test metrics."""
    lines = []
    for name, event in served_at(repo, env, when, model, rev):
        if event is None:
            lines.append(f"{name} in {env} at {when.isoformat()}: nothing (no commit of "
                         f"{pins.relpath(env, name)} before then)")
            continue
        pin = event.pin(repo)
        lines.append(f"{name} in {env} at {when.isoformat()}: {pins.label(pin)}")
        lines.append(f"  commit    {event.commit.sha[:12]} ({event.kind}, committed "
                     f"{event.commit.committed} by {event.commit.author})")
        if pin.is_empty:
            continue
        metrics = " ".join(f"{k}={v:g}" for k, v in evidence.point_metrics(pin.metrics).items())
        lines += [f"  digest    {pin.model.sha256}",
                  f"  promoted  by {pin.promoted.by} at {pin.promoted.at.isoformat()}",
                  f"  metrics   {metrics or '-'}"]
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment, e.g. staging or production")
    parser.add_argument("--model", help="only this model (default: every model of ENV)")
    parser.add_argument("--at", metavar="TIME",
                        help="what served at TIME instead (ISO 8601; UTC unless it says)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")
    parser.add_argument("--rev", default="HEAD", help="history as of this revision")


def run(args: argparse.Namespace) -> int:
    repo = gitops.toplevel(args.repo)
    if args.at:
        print(served_at_lines(repo, args.env, parse_time(args.at), args.model or None, args.rev))
    else:
        print(history_lines(repo, args.env, args.model or None, args.rev))
    return 0
