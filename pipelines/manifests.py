"""Render every environment with Kustomize and check it the way the cluster and Argo CD will.

`python -m pipelines.manifests` (also run by CI) renders each overlay with `kubectl kustomize`,
validates the output with `kubernetes-validate --strict`, and checks the Argo CD objects in
`environments/argocd/` against the Argo CD CRD schema from the npm package
`@kubernetes-models/argo-cd`. That package is installed with `npm ci` from the lock file in
`environments/argocd/validate/` into a cache folder outside the repository
(`$GITOPS_ML_CACHE`, else `$XDG_CACHE_HOME/gitops-ml`, else `~/.cache/gitops-ml`), once per
lock-file content, so no node_modules ever lands in git.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from pipelines import pins
from pipelines.errors import CommandError

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR_FILES = ("package.json", "package-lock.json", "validate.mjs")
KUBERNETES_VERSION = "1.32.0"


def overlays(repo: Path = ROOT) -> list[Path]:
    """Every environment overlay: a folder of environments/ holding a pin and a kustomization."""
    root = Path(repo) / "environments"
    return [root / env for env in pins.environments(repo)
            if (root / env / "kustomization.yaml").is_file()]


def render(path: Path) -> str:
    """Return `kubectl kustomize PATH` (the YAML Argo CD would apply)."""
    if shutil.which("kubectl") is None:
        raise CommandError("kubectl is not installed; it renders the Kustomize overlays")
    proc = subprocess.run(["kubectl", "kustomize", str(path)], check=False,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CommandError(f"kubectl kustomize {path} failed: {proc.stderr.strip()}")
    return proc.stdout


def documents(rendered: str) -> list[dict]:
    """Parse a rendered multi-document YAML stream into its objects."""
    return [d for d in yaml.safe_load_all(rendered) if d]


def _tool(name: str) -> str:
    # Prefer the tool installed beside this interpreter (the project's .venv).
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise CommandError(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def validate_kubernetes(rendered: str, label: str = "manifests") -> str:
    """Run `kubernetes-validate --strict` on rendered YAML; CommandError listing failures."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{label.replace('/', '_')}.yaml"
        path.write_text(rendered)
        proc = subprocess.run(
            [_tool("kubernetes-validate"), "--strict", "--quiet",
             "-k", KUBERNETES_VERSION, str(path)],
            check=False, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise CommandError(f"{label} is not valid Kubernetes:\n{out}")
    return out


def _cache_root() -> Path:
    if os.environ.get("GITOPS_ML_CACHE"):
        return Path(os.environ["GITOPS_ML_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops-ml"


def argocd_validator(source: Path | None = None) -> Path:
    """Install the Argo CD schema checker (npm ci, once per lock file) and return its folder."""
    source = source or ROOT / "environments" / "argocd" / "validate"
    digest = hashlib.sha256()
    for name in VALIDATOR_FILES:
        digest.update((source / name).read_bytes())
    target = _cache_root() / f"argocd-validate-{digest.hexdigest()[:16]}"
    if (target / "node_modules" / "@kubernetes-models" / "argo-cd").is_dir():
        return target
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise CommandError("node and npm are needed to check the Argo CD manifests")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".argocd-validate-", dir=target.parent))
    try:
        for name in VALIDATOR_FILES:
            shutil.copy2(source / name, staging / name)
        proc = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CommandError(f"npm ci for the Argo CD schema failed: {proc.stderr.strip()}")
        try:
            staging.rename(target)  # atomic: a concurrent run either sees all of it or none
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def validate_argocd(objects: list[dict]) -> str:
    """Check Argo CD objects against the Argo CD CRD schema; CommandError naming failures."""
    folder = argocd_validator()
    proc = subprocess.run(["node", "validate.mjs"], cwd=folder, input=json.dumps(objects),
                          check=False, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise CommandError(f"Argo CD manifests do not match the Argo CD schema:\n{out}")
    return out


def check_all(repo: Path = ROOT) -> list[str]:
    """Render and validate every overlay and the Argo CD objects; return a report line each."""
    lines = []
    for overlay in overlays(repo):
        validate_kubernetes(render(overlay), label=f"environments/{overlay.name}")
        lines.append(f"ok  environments/{overlay.name}: renders and passes kubernetes-validate")
    argocd = Path(repo) / "environments" / "argocd"
    objects = documents(render(argocd))
    validate_argocd(objects)
    lines.append(f"ok  environments/argocd: {len(objects)} objects match the Argo CD schema")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Validate every manifest; exit 1 with the reason when one is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    try:
        for line in check_all(args.repo):
            print(line)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
