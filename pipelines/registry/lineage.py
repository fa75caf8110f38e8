"""Where a model came from: the git commit, and the data hashes DVC recorded in dvc.lock."""
from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pipelines.gitops.git import git


def git_commit(repo: Path) -> str:
    """HEAD's full sha, or 'unknown' outside a repository."""
    return git(repo, "rev-parse", "HEAD", check=False).strip() or "unknown"


def commit_time(repo: Path) -> datetime | None:
    """HEAD's commit time (what a reproducible bundle stamps itself with), or None."""
    text = git(repo, "log", "-1", "--format=%cI", check=False).strip()
    return datetime.fromisoformat(text) if text else None


def git_dirty(repo: Path) -> bool:
    """Whether tracked files differ from HEAD (the model may not match the commit)."""
    return bool(git(repo, "status", "--porcelain", "--untracked-files=no", check=False).strip())


def md5(path: Path) -> str:
    """The md5 DVC 3 records for a file: of its bytes."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_lock(repo: Path) -> dict[str, Any]:
    """dvc.lock as a mapping ({} when the pipeline has not run here)."""
    path = Path(repo) / "dvc.lock"
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def locked(lock: dict[str, Any], stage: str, kind: str, path: str) -> str | None:
    """The md5 dvc.lock recorded for `path` among a stage's deps or outs."""
    for entry in (lock.get("stages", {}).get(stage, {}) or {}).get(kind, []) or []:
        if entry.get("path") == path:
            return entry.get("md5")
    return None


def outputs(lock: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(stage, out entry) for every output dvc.lock records."""
    return [(name, entry) for name, stage in (lock.get("stages") or {}).items()
            for entry in (stage or {}).get("outs", []) or []]


def stage(name: str, model: str) -> str:
    """The dvc.lock key of stage `name` for `model` (dvc.yaml runs each stage per model)."""
    return f"{name}@{model}"


def data_hashes(lock: dict[str, Any], model: str,
                index: dict[str, Any] | None = None) -> dict[str, str]:
    """md5 of `model`'s source data, of its collected production rows and of both its splits,
    as dvc.lock has them (`index`: params.yaml's models.<model> entry, naming the files)."""
    ingest = (lock.get("stages") or {}).get(stage("ingest", model)) or {}
    deps = {d["path"]: d["md5"] for d in ingest.get("deps") or []
            if not d["path"].startswith(("pipelines/", "contracts/"))}
    index = index or {}
    out: dict[str, str] = {}
    source = index.get("source") if index.get("source") in deps else \
        next((p for p in deps if p != index.get("production")), None)
    if source is not None:
        out["data_hash"] = deps[source]
        out["data_path"] = source
    if index.get("production") in deps:
        out["production_data_hash"] = deps[index["production"]]
    for name, entry in outputs(lock):
        if name == stage("split", model):
            out[f"data_{Path(entry['path']).stem}_md5"] = entry["md5"]
    return out
