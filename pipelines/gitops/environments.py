"""The environments' layout on disk, and adding a newly declared model to every environment.

Each environment is a folder of model overlays, `environments/<env>/<model>/`, holding a small
kustomization.yaml (the text below, the same for every model but for the names and, when the
model has its own, its release strategy) and the pin model.yaml. What the environment's models
share comes from `environments/shared/<env>/`, how their new versions reach users from
`environments/shared/<env>/release/` (pipelines/release/strategy.py); the workload itself from
`environments/base/`. Argo CD's ApplicationSet makes one Application per
such folder, so adding a model is adding these two files: no Argo CD object changes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from contracts.files import atomic_write_text
from contracts.pin import Pin
from pipelines.declaration.spec import check_name
from pipelines.errors import CommandError
from pipelines.gitops import pins

KUSTOMIZATION = "kustomization.yaml"

OVERLAY = """\
# {model} in {env}: one model's workload (../../base) with what every model in {env} shares
# (../../shared/{env}). Every name gets the prefix `{model}-` and every selector the label
# gitops-ml/model: {model}, so no object or pod is shared with another model; model.yaml, the pin,
# becomes ConfigMap {model}-model-pin-<hash>. `mlops promote` and `mlops rollback` change
# model.yaml and nothing else here. Written by pipelines/gitops/environments.py (add_model).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

namePrefix: {model}-

resources:
  - ../../base

components:
  # How new versions reach users: {how}
  # (`mlops strategy {env} --model {model} --set STRATEGY | --inherit` changes this line).
  # First, so that what {env} shares (namespace, labels) reaches its objects too.
  - {release}
  - ../../shared/{env}

labels:
  - pairs:
      gitops-ml/model: {model}
    includeSelectors: true

configMapGenerator:
  - name: model-pin
    files:
      - model.yaml
"""


def overlay_text(env: str, model: str, strategy: str | None = None) -> str:
    """The kustomization.yaml of `model`'s overlay in `env`: applying `env`'s release strategy,
    or, when `strategy` is given, its own (one of pipelines.release.strategy.STRATEGIES)."""
    if strategy is None:
        how, release = f"{env}'s strategy", f"../../shared/{env}/release"
    else:
        how, release = f"its own, {strategy} (not {env}'s)", f"../../base/{strategy}"
    return OVERLAY.format(env=env, model=model, how=how, release=release)


def overlay_dir(repo: Path, env: str, model: str) -> Path:
    """`environments/<env>/<model>/` in `repo`."""
    return Path(repo) / pins.folder(env) / model


def existing(repo: Path, name: str) -> list[Path]:
    """The folders model `name` already has in the environments of `repo`."""
    return [overlay_dir(repo, env, name) for env in pins.environments(Path(repo))
            if overlay_dir(repo, env, name).exists()]


def overlay_files(repo: Path, name: str) -> dict[Path, str]:
    """What adding model `name` to every environment writes: path -> text (its overlay and an
    empty pin per environment). Refuses a name that is not a valid model name, an environment
    without its shared component, and a model some environment already has."""
    repo = Path(repo)
    try:
        check_name(name)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    envs = pins.environments(repo)
    if not envs:
        raise CommandError(f"{repo / pins.ROOT} has no environment: each needs "
                           f"{pins.ROOT}/{pins.SHARED}/<env>/{KUSTOMIZATION}")
    files: dict[Path, str] = {}
    for env in envs:
        shared = repo / pins.ROOT / pins.SHARED / env / KUSTOMIZATION
        if not shared.is_file():
            raise CommandError(f"environment {env} has no {shared.relative_to(repo)}: its "
                               f"models would share no namespace, image or replica range")
        release = shared.parent / "release" / KUSTOMIZATION
        if not release.is_file():
            raise CommandError(f"environment {env} has no {release.relative_to(repo)}: its "
                               f"models would have no release strategy")
        folder = overlay_dir(repo, env, name)
        if folder.exists():
            raise CommandError(f"{env} already has model {name!r} "
                               f"({folder.relative_to(repo)} exists)")
        files[folder / KUSTOMIZATION] = overlay_text(env, name)
        files[folder / pins.FILE] = Pin(environment=env).to_yaml()
    return files


def add_model(repo: Path, name: str) -> list[Path]:
    """Add model `name` to every environment of `repo` (see `overlay_files`); return the files
    written, relative to `repo`. Nothing is committed; on any failure nothing stays written."""
    repo = Path(repo)
    files = overlay_files(repo, name)
    made: list[Path] = []
    try:
        for path, text in files.items():
            if not path.parent.exists():
                path.parent.mkdir(parents=True)
                made.append(path.parent)
            atomic_write_text(path, text)
    except BaseException:
        for folder in made:  # all environments or none
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return [p.relative_to(repo) for p in files]
