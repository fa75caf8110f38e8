"""Render every environment with Kustomize and check it the way the cluster and Argo CD will.

`python -m pipelines.checks.manifests` (also run by CI) renders each model overlay
(`environments/<env>/<model>/`) and each environment's database upkeep
(`environments/shared/<env>/database/`) with `kubectl kustomize`, validates the output with
`kubernetes-validate --strict`, checks that every container runs an image by digest and that no
two models of an environment render an object of the same kind and name, renders a model of
every environment under every release strategy (pipelines/release/strategy.py) and validates
that too, Argo Rollouts objects against their CRD schema, checks that the strategies agree with
the pins and the release settings, and checks the Argo CD objects in `environments/argocd/`
against the Argo CD CRD schema (pipelines/checks/crds.py).

`python -m pipelines.checks.manifests --crds PATH...` instead checks the Argo Rollouts, Argo Workflows
and Prometheus Operator objects of each PATH (a Kustomize folder, rendered, or a YAML file)
against their CRD schemas; core kinds there are left to the check above.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from pipelines.checks import crds
from pipelines.errors import CommandError
from pipelines.gitops import pins

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32.0"
# name[:tag]@sha256:<64 hex>: what a tag points at can change, a digest cannot.
BY_DIGEST = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")


def overlays(repo: Path = ROOT) -> list[Path]:
    """Every model overlay, environment by environment: environments/<env>/<model>/ holding a
    pin and a kustomization."""
    root = Path(repo) / pins.ROOT
    return [root / env / model for env in pins.environments(repo)
            for model in pins.models(repo, env)
            if (root / env / model / "kustomization.yaml").is_file()]


def upkeep(repo: Path = ROOT) -> list[Path]:
    """Every environment's database upkeep: environments/shared/<env>/database/; CommandError
    naming an environment without one (its prediction log would never be pruned)."""
    root = Path(repo) / pins.ROOT / pins.SHARED
    missing = [env for env in pins.environments(repo)
               if not (root / env / "database" / "kustomization.yaml").is_file()]
    if missing:
        raise CommandError(f"no database upkeep for {', '.join(missing)}: each environment "
                           f"needs {pins.ROOT}/{pins.SHARED}/<env>/database/kustomization.yaml")
    return [root / env / "database" for env in pins.environments(repo)]


def containers(obj: dict) -> list[dict]:
    """The containers and init containers of a workload (Deployment, Rollout, CronJob, ...)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def images_not_by_digest(objects: list[dict]) -> list[str]:
    """`Kind/name container: image` for each container whose image is not pinned by digest."""
    return [f"{o['kind']}/{o['metadata']['name']} {c['name']}: {c.get('image')}"
            for o in objects for c in containers(o)
            if not BY_DIGEST.fullmatch(str(c.get("image", "")))]


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


def load(path: Path) -> list[dict]:
    """The objects of a Kustomize folder (rendered) or of a YAML file as it is."""
    path = Path(path)
    return documents(render(path) if path.is_dir() else path.read_text())


def check_crds(paths: list[Path]) -> list[str]:
    """Check the custom resources of each PATH against their CRD schemas; a report line each."""
    lines = []
    for path in paths:
        custom = crds.custom_resources(load(path))
        if not custom:
            raise CommandError(f"{path}: no Argo or Prometheus Operator object to check")
        lines += [f"{path}: {line}" for line in crds.validate(custom)]
    return lines


def shared_names(rendered: dict[str, list[dict]]) -> list[str]:
    """Objects (kind/namespace/name) that more than one overlay renders, each with who renders it."""
    owners: dict[tuple[str, str, str], list[str]] = {}
    for label, objects in rendered.items():
        for obj in objects:
            meta = obj.get("metadata", {})
            key = (obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "?"))
            owners.setdefault(key, []).append(label)
    return [f"{kind} {namespace}/{name}: {', '.join(labels)}"
            for (kind, namespace, name), labels in sorted(owners.items()) if len(labels) > 1]


def check_strategies(repo: Path = ROOT) -> list[str]:
    """Render one model of every environment under every release strategy (in a copy of
    `environments/`), validate each with kubernetes-validate and its Argo objects against their
    CRD schemas; a report line each. A strategy no model uses yet is checked all the same."""
    from pipelines.gitops import environments
    from pipelines.release import strategy

    lines, custom = [], []
    with tempfile.TemporaryDirectory(prefix="strategies-") as tmp:
        copy = Path(tmp)
        shutil.copytree(Path(repo) / pins.ROOT, copy / pins.ROOT)
        for env in pins.environments(copy):
            models = pins.models(copy, env)
            if not models:
                with contextlib.suppress(CommandError):  # already there from another env
                    environments.add_model(copy, "strategy-check")
                models = pins.models(copy, env)
            model = models[0]
            for name in strategy.STRATEGIES:
                strategy.write(copy, env, model, name)
                text = render(copy / pins.ROOT / env / model)
                validate_kubernetes(text, label=f"{env}-{model}-{name}")
                objects = documents(text)
                custom += crds.custom_resources(objects)
                lines.append(f"ok  {env} by {name}: {len(objects)} objects render and pass "
                             f"kubernetes-validate")
    if custom:
        crds.validate(custom)
        lines.append(f"ok  {len(custom)} Argo Rollouts objects of the strategies match their "
                     "CRD schema")
    return lines


def check_all(repo: Path = ROOT) -> list[str]:
    """Render and validate every overlay and the Argo CD objects; return a report line each."""
    lines = []
    rendered = {}
    for folder in overlays(repo) + upkeep(repo):
        label = folder.relative_to(Path(repo)).as_posix()
        text = render(folder)
        validate_kubernetes(text, label=label)
        rendered[label] = documents(text)
        tagged = images_not_by_digest(rendered[label])
        if tagged:
            raise CommandError(f"{label} runs images by tag, not by digest (set them in "
                               f"environments/shared/<env>/image with `mlops image`):\n"
                               + "\n".join(tagged))
        lines.append(f"ok  {label}: renders, passes kubernetes-validate, images by digest")
    shared = shared_names(rendered)
    if shared:
        raise CommandError("models must not share objects, but these are rendered by more than "
                           "one overlay:\n" + "\n".join(shared))
    from pipelines.release import strategy

    lines += strategy.check(Path(repo))
    lines += check_strategies(repo)
    argocd = Path(repo) / "environments" / "argocd"
    objects = documents(render(argocd))
    crds.validate(objects)  # all of them: a kind without a CRD schema here fails
    lines.append(f"ok  environments/argocd: {len(objects)} objects match the Argo CD schema")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Validate every manifest; exit 1 with the reason when one is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--crds", nargs="+", type=Path, metavar="PATH",
                        help="only check the custom resources of these folders or files")
    args = parser.parse_args(argv)
    try:
        for line in check_crds(args.crds) if args.crds else check_all(args.repo):
            print(line)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
