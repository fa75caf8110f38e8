"""Model declarations: reading, validating and finding them, and drafting new ones.

Each declared model has `models/<name>/model.yaml`, and an entry under `models:` in
params.yaml naming the data its ingest stage reads (dvc.yaml interpolates only from there).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipelines.declaration.spec import Declaration, check_name
from pipelines.errors import CommandError

MODELS_DIR = "models"
FILE = "model.yaml"
PARAMS = "params.yaml"

__all__ = ["Declaration", "DeclarationError", "check_name", "declared", "load", "load_named",
           "parse", "path_of", "sources", "sources_from_text"]


class DeclarationError(CommandError, ValueError):
    """A declaration that is missing, not YAML, or breaks a rule (names file, key, problem)."""


def path_of(repo: Path, name: str) -> Path:
    """Where model `name`'s declaration lives in `repo`."""
    return Path(repo) / MODELS_DIR / name / FILE


def explain(exc: ValidationError, source: str) -> str:
    """One line per problem: `<file>: <key.path>: <message>`."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def parse(text: str, source: str) -> Declaration:
    """Validate the YAML text of a declaration; DeclarationError naming file, key and problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeclarationError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DeclarationError(f"{source}: expected a mapping of keys, got "
                               f"{type(data).__name__}")
    try:
        return Declaration.model_validate(data)
    except ValidationError as exc:
        raise DeclarationError(explain(exc, source)) from None


def load(path: Path) -> Declaration:
    """Read and validate one declaration file; its `name` must be its folder's name."""
    path = Path(path)
    if not path.is_file():
        raise DeclarationError(f"{path}: no such declaration (mlops new-model drafts one)")
    declaration = parse(path.read_text(), str(path))
    if path.name == FILE and path.parent.name != declaration.name:
        raise DeclarationError(f"{path}: name: {declaration.name!r} differs from its folder "
                               f"{path.parent.name!r}")
    return declaration


def load_named(repo: Path, name: str) -> Declaration:
    """The declaration of model `name` in `repo`, naming the declared ones when it is absent."""
    path = path_of(repo, name)
    if not path.is_file():
        known = declared(repo)
        raise DeclarationError(f"no model {name!r} is declared ({path} does not exist); "
                               f"declared: {', '.join(known) or 'none'}")
    return load(path)


def declared(repo: Path) -> list[str]:
    """The names of every declared model in `repo`, sorted."""
    root = Path(repo) / MODELS_DIR
    return sorted(p.parent.name for p in root.glob(f"*/{FILE}"))


def sources(repo: Path) -> dict[str, dict[str, Any]]:
    """params.yaml's `models:` index: name -> what the pipeline reads for it."""
    path = Path(repo) / PARAMS
    return sources_from_text(path.read_text(), str(path)) if path.is_file() else {}


def sources_from_text(text: str, source: str = PARAMS) -> dict[str, dict[str, Any]]:
    """The `models:` index of params.yaml text."""
    data = yaml.safe_load(text) or {}
    index = data.get("models") or {}
    if not isinstance(index, dict):
        raise DeclarationError(f"{source}: models: must map each model name to its data")
    return index
