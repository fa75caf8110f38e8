"""Check custom resources (Argo CD, Argo Rollouts, Argo Workflows, Prometheus Operator) offline.

The CRD schemas come from the `@kubernetes-models` npm packages pinned in
`tools/crd-validate/package-lock.json`; `tools/crd-validate/validate.mjs` picks the schema by
apiVersion and kind. `install()` runs `npm ci` once per content of that folder into
`build/node/` (git-ignored), so no node_modules ever lands in git. Needs node and npm.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipelines.errors import CommandError

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tools" / "crd-validate"
FILES = ("package.json", "package-lock.json", "validate.mjs")
PACKAGES = ("argo-cd", "argo-rollouts", "argo-workflows", "prometheus-operator")
# The API groups validate.mjs has schemas for; any other group is core Kubernetes (or unknown).
GROUPS = ("argoproj.io", "monitoring.coreos.com")
PREFIX = "crd-validate-"


def _installed(folder: Path) -> bool:
    models = folder / "node_modules" / "@kubernetes-models"
    return all((models / name / "package.json").is_file() for name in PACKAGES)


def install(build: Path = ROOT / "build" / "node") -> Path:
    """Install the pinned schema packages (npm ci, once per lock file); return their folder."""
    digest = hashlib.sha256(b"".join((SOURCE / name).read_bytes() for name in FILES))
    target = build / f"{PREFIX}{digest.hexdigest()[:16]}"
    if _installed(target):
        return target
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise CommandError("node and npm are needed to check the CRD schemas")
    build.mkdir(parents=True, exist_ok=True)
    # Parallel test processes queue here, so only one of them runs npm ci; the rename below
    # keeps a crashed install from ever looking complete.
    with open(build / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(target):
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{PREFIX}", dir=build))
        try:
            for name in FILES:
                shutil.copy2(SOURCE / name, staging / name)
            proc = subprocess.run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging, check=False, capture_output=True, text=True)
            if proc.returncode != 0:
                raise CommandError(f"npm ci of the CRD schema packages failed: {proc.stderr.strip()}")
            shutil.rmtree(target, ignore_errors=True)  # a partial copy left by hand
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for stale in build.glob(f"{PREFIX}*"):  # installs of earlier lock files
            if stale != target:
                shutil.rmtree(stale, ignore_errors=True)
    return target


def custom_resources(objects: list[dict]) -> list[dict]:
    """The objects of an API group that has a CRD schema here."""
    return [o for o in objects if str(o.get("apiVersion", "")).split("/")[0] in GROUPS]


def validate(objects: list[dict]) -> list[str]:
    """Check every object against its CRD schema; return an `ok` line each, CommandError if not."""
    folder = install()
    proc = subprocess.run(["node", "validate.mjs"], cwd=folder, input=json.dumps(objects),
                          check=False, capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode != 0:
        raise CommandError("objects do not match their CRD schema:\n" + "\n".join(lines))
    return lines
