"""The MLflow model registry, as the pipeline and the promotion logic use it.

The embedded default is a SQLite store with a local artifact folder in `<repo>/.mlflow`
(git-ignored); `MLFLOW_TRACKING_URI` points everything at a real server instead.

Looking a version or a model's aliases up in a SQLite store, and fetching a version's files from a
local artifact folder, do without MLflow (sqlite_reads.py; loading MLflow takes seconds, the
lookup milliseconds); everything else, and any store those cannot read for certain, goes
through MLflow's client.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from contracts.digest import UnsafeFileNameError, bundle_sha256
from pipelines.errors import CommandError
from pipelines.registry import sqlite_reads

EMBEDDED_DIR = ".mlflow"
BUNDLE_PATH = "model"  # run artifact path holding the bundle
# What MLflow's local artifact store names a file while it is being uploaded (its downloads
# leave such files out).
UPLOADING = ".artifact.uploading.*"


class RegistryError(CommandError):
    """The registry does not hold what was asked for, or holds something else."""


@dataclass
class VersionInfo:
    """A registered version with the tags and run data promotion needs."""

    name: str
    version: int
    source: str
    run_id: str
    sha256: str
    gate: str
    git_commit: str
    data_hash: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    # The tracking URI it was read from: where a `runs:/` source is resolved.
    registry_uri: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def tracking_uri(repo: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else the embedded SQLite store inside `repo`."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = Path(repo or Path.cwd()).resolve() / EMBEDDED_DIR
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def _local_artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store, never in whatever folder the command ran from.

    A file store keeps artifacts inside itself and a tracking server decides: None.
    """
    if urlparse(uri).scheme != "sqlite":
        return None
    db = Path(uri[len("sqlite:///"):])
    return (db.parent / "artifacts").resolve().as_uri()


def client(repo: Path | None = None):
    """An MlflowClient on the resolved tracking URI (also set as the process default)."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(repo)
    chosen = {name for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI") if name in os.environ}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # Both setters also export their variable, and unsetting never removes it: what the user did
    # not choose must not stick to the process and answer for another repository later (or be
    # inherited by a process started later, such as `mlflow models serve`).
    for name in {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"} - chosen:
        os.environ.pop(name, None)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(name: str, repo: Path | None = None) -> str:
    """The experiment `name`, created with a local artifact root where the store is local."""
    c = client(repo)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=_local_artifact_root(tracking_uri(repo)))


def _info(c, mv, uri: str) -> VersionInfo:
    run = c.get_run(mv.run_id) if mv.run_id else None
    return _version_info(uri, sqlite_reads.VersionRow(
        name=mv.name, version=int(mv.version), source=mv.source, run_id=mv.run_id or "",
        tags=dict(mv.tags or {}), params=dict(run.data.params) if run else {},
        metrics=dict(run.data.metrics) if run else {},
        aliases=list(getattr(mv, "aliases", []) or [])))


def _version_info(uri: str, row: sqlite_reads.VersionRow) -> VersionInfo:
    return VersionInfo(
        name=row.name,
        version=row.version,
        source=row.source,
        run_id=row.run_id,
        sha256=row.tags.get("sha256", ""),
        gate=row.tags.get("gate", ""),
        git_commit=row.tags.get("git_commit", ""),
        data_hash=row.tags.get("data_hash", ""),
        params=row.params,
        metrics=row.metrics,
        aliases=row.aliases,
        registry_uri=uri,
    )


def _absent(name: str, version: int, repo: Path | None) -> RegistryError:
    return RegistryError(
        f"{name} version {version} does not exist in the registry at {tracking_uri(repo)}")


def get_version(name: str, version: int, repo: Path | None = None) -> VersionInfo:
    """Version `version` of registered model `name`, or a RegistryError saying it is absent."""
    uri = tracking_uri(repo)
    db = sqlite_reads.database(uri)
    if db is not None:
        try:
            row = sqlite_reads.model_version(db, name, int(version))
        except sqlite_reads.Unreadable:
            pass
        else:
            if row is None:
                raise _absent(name, version, repo)
            return _version_info(uri, row)
    from mlflow.exceptions import MlflowException

    c = client(repo)
    try:
        mv = c.get_model_version(name, str(int(version)))
    except MlflowException as exc:
        raise _absent(name, version, repo) from exc
    return _info(c, mv, uri)


def latest_version(name: str, repo: Path | None = None) -> int | None:
    """Highest version number of `name`, or None when nothing is registered."""
    c = client(repo)
    versions = c.search_model_versions(f"name = '{name}'")
    return max((int(v.version) for v in versions), default=None)


def _local_folder(source: str) -> Path | None:
    """The folder a `file:` artifact source names, or None for any other storage."""
    parsed = urlparse(source)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    path = Path(url2pathname(parsed.path))
    return path if path.is_absolute() and path.is_dir() else None


def _download(info: VersionInfo, dst: Path) -> Path:
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    local = _local_folder(info.source)
    if local is not None:
        # What MLflow's local artifact store does, without loading MLflow: copy the folder.
        return Path(shutil.copytree(local, dst / local.name, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns(UPLOADING)))
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=info.source, dst_path=str(dst),
                                                    tracking_uri=info.registry_uri))


def download_bundle(name: str, version: int, dst: Path, repo: Path | None = None) -> Path:
    """Download a version's bundle exactly as logged (not via models:/, which adds a file)."""
    return _download(get_version(name, version, repo), dst)


def verified_download(info: VersionInfo, dst: Path) -> Path:
    """Download a version into `dst` and check its digest against its registered `sha256` tag."""
    if not info.sha256:
        raise RegistryError(f"{info.name} v{info.version} has no sha256 tag; only versions "
                            "registered by `mlops register` can be promoted")
    try:
        bundle = _download(info, dst)
    except Exception as exc:  # MLflow and storage errors come in many types
        raise RegistryError(f"cannot download the artifact of {info.name} v{info.version} "
                            f"from {info.source}: {exc}") from exc
    try:
        actual = bundle_sha256(bundle)
    except UnsafeFileNameError as exc:
        raise RegistryError(f"the artifact of {info.name} v{info.version} cannot be verified: "
                            f"{exc}") from exc
    if actual != info.sha256:
        raise RegistryError(
            f"digest mismatch: the artifact of {info.name} v{info.version} hashes to {actual}, "
            f"which does not match the registered sha256 {info.sha256}; its files changed after "
            "registration")
    return bundle


def verify_bundle(name: str, version: int, repo: Path | None = None) -> VersionInfo:
    """Look a version up and check its stored files against its registered digest."""
    info = get_version(name, version, repo)
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        verified_download(info, Path(tmp))
    return info


def register_bundle(bundle_dir: Path, name: str, *, run_id: str, tags: dict[str, str],
                    repo: Path | None = None, description: str = "") -> VersionInfo:
    """Log `bundle_dir` as the run's `model` artifact and register it as a new version."""
    import mlflow

    c = client(repo)
    digest = bundle_sha256(bundle_dir)
    c.log_artifacts(run_id, str(bundle_dir), artifact_path=BUNDLE_PATH)
    try:
        c.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        c.create_registered_model(name, description="Registered only through `mlops register`.")
    source = f"{c.get_run(run_id).info.artifact_uri.rstrip('/')}/{BUNDLE_PATH}"
    all_tags = {**tags, "sha256": digest}
    mv = c.create_model_version(name, source=source, run_id=run_id, tags=all_tags,
                                description=description or None)
    return _info(c, c.get_model_version(name, mv.version), tracking_uri(repo))


def set_alias(name: str, alias: str, version: int, repo: Path | None = None) -> None:
    client(repo).set_registered_model_alias(name, alias, str(int(version)))


def delete_alias(name: str, alias: str, repo: Path | None = None) -> None:
    client(repo).delete_registered_model_alias(name, alias)


def aliases(name: str, repo: Path | None = None) -> dict[str, int]:
    """Alias -> version for registered model `name` (empty if it does not exist)."""
    db = sqlite_reads.database(tracking_uri(repo))
    if db is not None:
        try:
            return sqlite_reads.aliases(db, name) or {}
        except sqlite_reads.Unreadable:
            pass
    from mlflow.exceptions import MlflowException

    try:
        rm = client(repo).get_registered_model(name)
    except MlflowException:
        return {}
    return {alias: int(version) for alias, version in (rm.aliases or {}).items()}
