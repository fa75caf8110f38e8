"""What the report reads for one model, on this branch and on the base branch.

This branch is the working tree (where `dvc repro` just wrote its outputs). The base branch's
metrics, gate verdicts, plot data and ingest report are committed (DVC keeps them out of its
cache), so they are read from git at the base revision. The declaration and the params entry
are compared with the merge base, where the change began, as a pull request shows them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from pipelines.changed import merge_base
from pipelines.declaration import DeclarationError, parse, path_of, sources_from_text
from pipelines.errors import CommandError
from pipelines.gitops.git import git, show
from pipelines.report.freshness import outdated

METRICS = "models/{name}/metrics.json"
GATE = "models/{name}/gate.json"
PLOTS = "models/{name}/plots"
INGEST = "reports/{name}/ingest.json"
DECLARATION = "models/{name}/model.yaml"


class Tree:
    """Files as they are in the working tree."""

    def __init__(self, repo: Path) -> None:
        self.repo, self.label = Path(repo), "this branch"

    def read(self, path: str) -> str | None:
        file = self.repo / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    def names(self, folder: str) -> list[str]:
        return sorted(p.name for p in (self.repo / folder).glob("*.json"))


class Revision:
    """Files as they are committed at one revision."""

    def __init__(self, repo: Path, rev: str, label: str) -> None:
        self.repo, self.rev, self.label = Path(repo), rev, label

    def read(self, path: str) -> str | None:
        return show(self.repo, self.rev, path)

    def names(self, folder: str) -> list[str]:
        listed = git(self.repo, "ls-tree", "--name-only", self.rev, f"{folder}/", check=False)
        return sorted(PurePosixPath(p).name for p in listed.splitlines() if p.endswith(".json"))


def _json(files: Tree | Revision, path: str) -> Any:
    text = files.read(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} on {files.label} is not JSON ({exc.msg} at line "
                           f"{exc.lineno})") from None


@dataclass(frozen=True)
class Outputs:
    """One revision's pipeline outputs for one model; None or empty where absent."""

    metrics: dict | None = None
    gate: dict | None = None
    plots: dict[str, list[dict]] = field(default_factory=dict)
    ingest: dict | None = None


def outputs(files: Tree | Revision, name: str) -> Outputs:
    """Read a model's metrics, gate verdicts, plot data and ingest report."""
    folder = PLOTS.format(name=name)
    plots = {}
    for file in files.names(folder):
        data = _json(files, f"{folder}/{file}")
        stem = file.removesuffix(".json")
        if isinstance(data, dict) and isinstance(data.get(stem), list):
            plots[stem] = data[stem]
    return Outputs(_json(files, METRICS.format(name=name)), _json(files, GATE.format(name=name)),
                   plots, _json(files, INGEST.format(name=name)))


@dataclass(frozen=True)
class ModelView:
    """Everything one section of the report shows about one model."""

    name: str
    base: str
    new: Outputs
    old: Outputs
    declaration: dict | None = None
    old_declaration: dict | None = None
    source: dict | None = None
    old_source: dict | None = None
    # Why this branch's outputs are not shown: stale outputs or an invalid declaration.
    problem: str | None = None

    @property
    def task(self) -> str | None:
        """binary, multiclass or regression, from the outputs or else the declaration."""
        for doc in (self.new.metrics, self.declaration, self.old.metrics):
            if isinstance(doc, dict) and doc.get("task"):
                return str(doc["task"])
        return None


def _declaration(text: str | None, source: str) -> tuple[dict | None, str | None]:
    """The declaration as a mapping, and the validation problem, if any."""
    if text is None:
        return None, None
    try:
        parse(text, source)
    except DeclarationError as exc:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        return (data if isinstance(data, dict) else None), str(exc)
    return yaml.safe_load(text), None


def load(repo: Path, names: list[str], base: str, *, check_stale: bool = True
         ) -> list[ModelView]:
    """A view of each named model: this branch against `base`."""
    repo = Path(repo)
    for name in names:
        if not path_of(repo, name).is_file():
            raise CommandError(f"no model {name!r} is declared ({path_of(repo, name)} does "
                               "not exist)")
    since = merge_base(repo, base)
    tree, at_base, at_fork = Tree(repo), Revision(repo, base, base), Revision(repo, since, base)
    now_index = sources_from_text(tree.read("params.yaml") or "")
    old_index = sources_from_text(at_fork.read("params.yaml") or "")
    behind = outdated(repo, names, now_index) if check_stale else {}
    views = []
    for name in names:
        path = DECLARATION.format(name=name)
        declaration, invalid = _declaration(tree.read(path), path)
        old_declaration, _ = _declaration(at_fork.read(path), f"{path} on {base}")
        problem = invalid and f"its declaration is invalid:\n{invalid}"
        if not problem and name in behind:
            problem = (f"its outputs here are older than their inputs ({behind[name]}): the "
                       f"pipeline did not finish for this model, or `dvc repro gate@{name}` "
                       "has not run")
        views.append(ModelView(
            name, base, Outputs() if problem else outputs(tree, name), outputs(at_base, name),
            declaration, old_declaration, now_index.get(name), old_index.get(name), problem))
    return views
