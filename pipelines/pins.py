"""Where each environment's pin lives, and reading pins from the work tree or from history."""
from __future__ import annotations

from pathlib import Path

from contracts.pin import Pin
from pipelines import gitops
from pipelines.errors import CommandError

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


def digests_ever_pinned(repo: Path, env: str, rev: str = "HEAD") -> dict[str, str]:
    """sha256 -> first commit that pinned it in `env`, from the git history of its pin file."""
    seen: dict[str, str] = {}
    for commit in reversed(gitops.log(repo, relpath(env), rev)):
        try:
            pin = read(repo, env, commit.sha)
        except ValueError:
            continue  # a malformed pin in history proves nothing
        if not pin.is_empty:
            seen.setdefault(pin.model.sha256, commit.sha)
    return seen
