"""`mlops changed`: which declared models a change touches, against a base revision.

A model is touched when its declaration (models/<name>/model.yaml), its entry in params.yaml's
`models:` index, its source data file or the .dvc file that tracks that data changed. Every
model is touched when something all of them run through changed: dvc.yaml, pipelines/**,
contracts/**, pyproject.toml, or a params.yaml key outside `models:` (dvc.yaml may interpolate
it). A model added on the branch is touched (its declaration is new).

"The change" is everything between the merge base of BASE and HEAD and the working tree:
the branch's commits, uncommitted edits and new untracked files, as a pull request shows it.
Prints one name per line; in a GitHub Actions step it also writes `models=<names>` to
$GITHUB_OUTPUT for later steps.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from pipelines.declaration import FILE, MODELS_DIR, PARAMS, declared, sources_from_text
from pipelines.errors import CommandError
from pipelines.gitops.git import git, show, toplevel

# Files and folders every model's stages run through.
SHARED_FILES = frozenset({"dvc.yaml", "pyproject.toml"})
SHARED_DIRS = ("pipelines/", "contracts/")


def merge_base(repo: Path, base: str) -> str:
    """The commit where HEAD's history left `base`; CommandError naming `base` otherwise."""
    found = git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False)
    if not found.strip():
        raise CommandError(f"base revision {base!r} not found in {repo} (for a remote branch, "
                           f"`git fetch` it first; in a workflow, check out with fetch-depth: 0)")
    common = git(repo, "merge-base", base, "HEAD", check=False).strip()
    if not common:
        raise CommandError(f"HEAD shares no history with {base!r}: nothing to compare against")
    return common


def changed_paths(repo: Path, since: str) -> set[str]:
    """Paths that differ between commit `since` and the working tree, new untracked files
    included (renames count as a deletion plus an addition)."""
    diff = git(repo, "diff", "--name-only", "--no-renames", "-z", since, "--")
    new = git(repo, "ls-files", "--others", "--exclude-standard", "-z")
    return {p for p in (diff + new).split("\0") if p}


def _yaml(text: str | None, source: str) -> Any:
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError as exc:
        raise CommandError(f"{source} is not valid YAML: {exc}") from None


def dvc_outs(path: str, text: str | None) -> set[PurePosixPath]:
    """The data paths the .dvc file at `path` (with content `text`) tracks."""
    doc = _yaml(text, path) or {}
    return {PurePosixPath(path).parent / out["path"] for out in doc.get("outs") or []
            if isinstance(out, dict) and out.get("path")}


def covers(outs: set[PurePosixPath], source: str) -> bool:
    """Whether `source` is one of the tracked paths or inside one of them."""
    src = PurePosixPath(source)
    return any(src == out or out in src.parents for out in outs)


def touched(repo: Path, base: str) -> list[str]:
    """The declared models the change against `base` touches, sorted."""
    repo = toplevel(Path(repo))
    since = merge_base(repo, base)
    paths = changed_paths(repo, since)
    names = declared(repo)
    if paths & SHARED_FILES or any(p.startswith(SHARED_DIRS) for p in paths):
        return names
    now_params = (repo / PARAMS).read_text() if (repo / PARAMS).is_file() else ""
    old_params = show(repo, since, PARAMS) or ""
    now_index = sources_from_text(now_params) if now_params else {}
    old_index = sources_from_text(old_params) if old_params else {}
    if PARAMS in paths:
        now_doc, old_doc = _yaml(now_params, PARAMS) or {}, _yaml(old_params, PARAMS) or {}
        others = (set(now_doc) | set(old_doc)) - {"models"}
        if any(now_doc.get(k) != old_doc.get(k) for k in others):
            return names
    tracked: set[PurePosixPath] = set()
    for path in sorted(p for p in paths if p.endswith(".dvc")):
        now = (repo / path).read_text() if (repo / path).is_file() else None
        tracked |= dvc_outs(path, now) | dvc_outs(path, show(repo, since, path))
    hit = []
    for name in names:
        entries = [now_index.get(name) or {}, old_index.get(name) or {}]
        data = {e["source"] for e in entries if isinstance(e, dict) and e.get("source")}
        if (f"{MODELS_DIR}/{name}/{FILE}" in paths
                or now_index.get(name) != old_index.get(name)
                or data & paths
                or any(covers(tracked, source) for source in data)):
            hit.append(name)
    return hit


def publish(names: list[str]) -> None:
    """In a GitHub Actions step, hand the names to later steps (`steps.<id>.outputs.models`)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"models={' '.join(names)}\n")


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of `mlops changed` / `python -m pipelines.changed`."""
    parser.add_argument("--base", default="origin/main",
                        help="the revision the change is compared against (default origin/main)")
    parser.add_argument("--all", action="store_true",
                        help="every declared model, whatever changed (a full retraining)")
    parser.add_argument("--only", default="", metavar="NAME",
                        help="with --all: just this declared model (empty: all of them)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the project checkout")


def run(args: argparse.Namespace) -> int:
    """Print the touched models, one per line."""
    names = declared(toplevel(args.repo)) if args.all else touched(args.repo, args.base)
    if args.all and args.only:
        if args.only not in names:
            raise CommandError(f"no model {args.only!r} is declared; declared: "
                               f"{', '.join(names) or 'none'}")
        names = [args.only]
    if names:
        print("\n".join(names))
    else:
        print(f"no declared model is touched by the change against {args.base}", file=sys.stderr)
    publish(names)
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point of `python -m pipelines.changed`."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.changed",
                                     description=__doc__.splitlines()[0])
    configure(parser)
    try:
        return run(parser.parse_args(argv))
    except CommandError as exc:
        print(f"pipelines.changed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
