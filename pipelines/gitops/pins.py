"""Where each environment's pin lives, and reading pins from the work tree or from a commit."""
from __future__ import annotations

from pathlib import Path

from contracts.pin import Pin
from pipelines.errors import CommandError
from pipelines.gitops import git as gitops

# An environment only accepts a digest that the environment named here has pinned before.
PREREQUISITE = {"production": "staging"}


class InvalidPin(CommandError, ValueError):
    """A pin file that does not parse or validate (names the file and the problem)."""


def relpath(env: str) -> str:
    """The pin's path inside the repository."""
    return f"environments/{env}/model.yaml"


def environments(repo: Path) -> list[str]:
    """Every environment of the repository: the folders of environments/ holding a pin."""
    root = Path(repo) / "environments"
    names = sorted(p.parent.name for p in root.glob("*/model.yaml"))
    # Promotion order first (staging before production), the rest alphabetically.
    order = {env: i for i, env in enumerate(("staging", "production"))}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def require_environment(repo: Path, env: str) -> None:
    """Refuse an environment that has no pin in this repository."""
    known = environments(repo)
    if env not in known:
        raise CommandError(f"unknown environment {env!r}: this repository has "
                           f"{', '.join(known) or 'none'} (environments/<env>/model.yaml)")


def label(pin: Pin) -> str:
    """What a pin serves in a few words: `churn v2`, or `nothing`."""
    return "nothing" if pin.is_empty else f"{pin.model.name} v{pin.model.version}"


def read(repo: Path, env: str, rev: str | None = None) -> Pin:
    """The pin of `env` in the work tree, or at commit `rev`; an absent file reads as empty."""
    if rev is None:
        path = Path(repo) / relpath(env)
        text, source = (path.read_text() if path.exists() else None), relpath(env)
    else:
        text, source = gitops.show(repo, rev, relpath(env)), f"{relpath(env)} at {rev[:12]}"
    if text is None:
        return Pin(environment=env)
    try:
        pin = Pin.parse(text, source)
    except ValueError as exc:
        raise InvalidPin(f"{source} is not a valid pin: {exc}") from exc
    if pin.environment != env:
        raise InvalidPin(f"{source} says environment {pin.environment!r}, not {env!r}")
    return pin
