"""Where each model's pin lives in each environment, and reading pins from the work tree or a commit.

A pin is `environments/<env>/<model>/model.yaml`: one file per environment and model, so a
promotion or rollback of one model is a commit changing that one file.
"""
from __future__ import annotations

from pathlib import Path

from contracts.pin import Pin
from pipelines.errors import CommandError
from pipelines.gitops import git as gitops

# An environment only accepts a digest that the environment named here holds or held (per model).
PREREQUISITE = {"production": "staging"}
ROOT = "environments"
FILE = "model.yaml"
# What each environment's models share (namespace, image, replicas, delivery): one Kustomize
# component per environment, environments/shared/<env>/.
SHARED = "shared"
_ORDER = ("staging", "production")


class InvalidPin(CommandError, ValueError):
    """A pin file that does not parse or validate (names the file and the problem)."""


def relpath(env: str, model: str) -> str:
    """The pin's path inside the repository."""
    return f"{ROOT}/{env}/{model}/{FILE}"


def folder(env: str) -> str:
    """The environment's folder inside the repository (one sub-folder per model)."""
    return f"{ROOT}/{env}"


def environments(repo: Path) -> list[str]:
    """Every environment: a folder of environments/ holding a model's pin, or one that has its
    shared component (environments/shared/<env>/) and no model yet."""
    root = Path(repo) / ROOT
    names = {p.parent.parent.name for p in root.glob(f"*/*/{FILE}")}
    names |= {p.parent.name for p in (root / SHARED).glob("*/kustomization.yaml")}
    names.discard(SHARED)
    # Promotion order first (staging before production), the rest alphabetically.
    order = {env: i for i, env in enumerate(_ORDER)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def models(repo: Path, env: str) -> list[str]:
    """The models pinned in `env` (its sub-folders holding a model.yaml), sorted."""
    return sorted(p.parent.name for p in (Path(repo) / ROOT / env).glob(f"*/{FILE}"))


def require_environment(repo: Path, env: str) -> None:
    """Refuse an environment that this repository does not have."""
    known = environments(repo)
    if env not in known:
        raise CommandError(f"unknown environment {env!r}: this repository has "
                           f"{', '.join(known) or 'none'} (environments/<env>/<model>/model.yaml)")


def require_model(repo: Path, env: str, model: str) -> None:
    """Refuse a model that has no pin in `env` (names the ones it has)."""
    require_environment(repo, env)
    known = models(repo, env)
    if model not in known:
        raise CommandError(f"no model {model!r} in {env} ({relpath(env, model)} does not exist); "
                           f"{env} has {', '.join(known) or 'no model'}")


def resolve_model(repo: Path, env: str, model: str | None) -> str:
    """`model` checked to be pinned in `env`; when None, the environment's only model."""
    if model:
        require_model(repo, env, model)
        return model
    require_environment(repo, env)
    known = models(repo, env)
    if len(known) == 1:
        return known[0]
    if not known:
        raise CommandError(f"{env} has no model (no environments/{env}/<model>/model.yaml)")
    raise CommandError(f"{env} holds {len(known)} models ({', '.join(known)}): "
                       f"say which with --model NAME")


def label(pin: Pin) -> str:
    """What a pin serves in a few words: `fraud v2`, `fraud v2 (shadow v3)`,
    `fraud v2 90% / v3 10%` (an A/B test), or `nothing`."""
    if pin.is_empty:
        return "nothing"
    text = f"{pin.model.name} v{pin.model.version}"
    if pin.is_ab:
        split = pin.ab.split
        return f"{text} {split['a']}% / v{pin.ab.b.model.version} {split['b']}%"
    if pin.shadow is not None:
        return f"{text} (shadow v{pin.shadow.version})"
    return text


def parse(text: str, env: str, model: str, source: str) -> Pin:
    """Validate a pin's text: its schema, its environment and its model's name (the folder's)."""
    try:
        pin = Pin.parse(text, source)
    except ValueError as exc:
        raise InvalidPin(f"{source} is not a valid pin: {exc}") from exc
    if pin.environment != env:
        raise InvalidPin(f"{source} says environment {pin.environment!r}, not {env!r}")
    if not pin.is_empty and pin.model.name != model:
        raise InvalidPin(f"{source} pins model {pin.model.name!r}, but its folder is {model!r}")
    return pin


def read(repo: Path, env: str, model: str, rev: str | None = None) -> Pin:
    """The pin of `model` in `env` in the work tree, or at commit `rev`; an absent file reads
    as empty."""
    path = relpath(env, model)
    text, source = gitops.text_at(repo, path, rev)
    if text is None:
        return Pin(environment=env)
    return parse(text, env, model, source)
