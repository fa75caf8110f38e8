"""Where a model came from: the git commit, and the data hashes DVC recorded in dvc.lock."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stripped stdout ('' if git fails)."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def git_commit(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD") or "unknown"


def git_dirty(repo: Path) -> bool:
    return bool(git(repo, "status", "--porcelain", "--untracked-files=no"))


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


def data_hashes(lock: dict[str, Any]) -> dict[str, str]:
    """md5 of the source data and of both splits, as dvc.lock has them."""
    stages = lock.get("stages", {})
    out: dict[str, str] = {}
    ingest_deps = (stages.get("ingest", {}) or {}).get("deps", []) or []
    source = next((d for d in ingest_deps if not d["path"].startswith("pipelines/")), None)
    if source:
        out["data_hash"] = source["md5"]
        out["data_path"] = source["path"]
    for entry in (stages.get("split", {}) or {}).get("outs", []) or []:
        out[f"data_{Path(entry['path']).stem}_md5"] = entry["md5"]
    return out
