"""Whether this branch's outputs of a model are the ones its inputs produce.

In a fresh checkout, or after a stage failed, the working tree still holds the committed
outputs (the base branch's, or an earlier run's): showing them as this branch's would mislead
the reviewer. `dvc status` of the model's gate stage and everything before it says which are
out of date.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.changed import covers, dvc_outs
from pipelines.errors import CommandError
from pipelines.gitops.git import show


def outdated(repo: Path, names: list[str], sources: dict[str, dict]) -> dict[str, str]:
    """Models whose outputs in the working tree are older than their inputs, with what
    changed (`dvc status` of each gate stage and every stage and data file before it)."""
    if not names or not (repo / "dvc.yaml").is_file():
        return {}
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", "--with-deps",
                           *(f"gate@{n}" for n in names)], cwd=repo, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise CommandError(f"dvc status failed: {(proc.stderr or proc.stdout).strip()}")
    found: dict[str, list[str]] = {}
    for key in json.loads(proc.stdout or "{}"):
        _, at, model = key.rpartition("@")
        if at and model in names:
            found.setdefault(model, []).append(key)
            continue
        # A .dvc file: the models whose source data it tracks.
        text = (repo / key).read_text() if (repo / key).is_file() else None
        outs = dvc_outs(key, text)
        for name in names:
            source = (sources.get(name) or {}).get("source")
            if source and covers(outs, source):
                found.setdefault(name, []).append(key)
    return {name: ", ".join(keys) for name, keys in found.items()
            if not (keys == [f"gate@{name}"] and _gate_ran(repo, name))}


def _gate_ran(repo: Path, name: str) -> bool:
    """Whether gate.json was written by a run after the last one DVC locked. A failed gate
    writes its verdicts but DVC does not lock the stage, so `dvc status` alone cannot tell a
    failed run from one that never happened; gate.json differing from the hash dvc.lock holds
    for it (or, with no such hash, from the committed file) can."""
    path = f"models/{name}/gate.json"
    file = repo / path
    if not file.is_file():
        return False
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").is_file() \
        else None
    outs = (((lock or {}).get("stages") or {}).get(f"gate@{name}") or {}).get("outs") or []
    locked = next((o for o in outs if o.get("path") == path and o.get("hash") == "md5"), None)
    if locked:
        return hashlib.md5(file.read_bytes()).hexdigest() != locked.get("md5")
    return file.read_text(encoding="utf-8") != show(repo, "HEAD", path)
