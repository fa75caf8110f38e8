"""Fetching a pinned bundle from the registry and proving it is the pinned one.

The digest is checked on the downloaded files before anything in them is deserialized.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from contracts.digest import UnsafeFileNameError, bundle_sha256
from contracts.pin import ModelRef
from service.errors import LoadError


def fetch_verified(ref: ModelRef, tracking_uri: str | None, cache_dir: Path) -> Path:
    """Return a local directory holding exactly the bundle `ref` names, or raise LoadError."""
    cached = cache_dir / ref.name / str(ref.version) / ref.sha256
    if cached.is_dir() and _digest(cached) == ref.sha256:
        return cached
    source = _source(ref, tracking_uri)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cache_dir))
    try:
        local = _download(ref, source, staging, tracking_uri)
        actual = _digest(local)
        if actual != ref.sha256:
            raise LoadError(
                "digest_mismatch",
                f"{ref.uri}: the registry's files have sha256 {actual}, the pin says "
                f"{ref.sha256}; refusing to load them",
            )
        cached.parent.mkdir(parents=True, exist_ok=True)
        if cached.exists():  # a stale or concurrent copy: replace it with the verified one
            shutil.rmtree(cached, ignore_errors=True)
        try:
            local.rename(cached)
        except OSError:
            # Another process put the same verified bundle there first.
            if not (cached.is_dir() and _digest(cached) == ref.sha256):
                raise
        return cached
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _digest(path: Path) -> str:
    try:
        return bundle_sha256(path)
    except UnsafeFileNameError as exc:  # no pin can name such a bundle
        raise LoadError("digest_mismatch", f"the bundle at {path} has no digest: {exc}") from exc
    except (FileNotFoundError, OSError) as exc:
        raise LoadError("download_failed", f"cannot read the bundle at {path}: {exc}") from exc


def _source(ref: ModelRef, tracking_uri: str | None) -> str:
    if not tracking_uri:
        raise LoadError("registry_unavailable",
                        f"cannot resolve {ref.uri}: MLFLOW_TRACKING_URI is not set")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        return client.get_model_version(ref.name, str(ref.version)).source
    except Exception as exc:  # a registry answer, or connection errors of any kind of store
        if isinstance(exc, MlflowException) and (
                "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", ""))
                or "not found" in str(exc).lower()):
            raise LoadError("version_not_found",
                            f"{ref.uri} is not registered at {tracking_uri}") from exc
        raise LoadError("registry_unavailable",
                        f"the registry at {tracking_uri} failed for {ref.uri}: {exc}") from exc


def _download(ref: ModelRef, source: str, dst: Path, tracking_uri: str) -> Path:
    import mlflow.artifacts

    try:
        # The version's source, not models:/ (which would add a file and change the digest).
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(dst), tracking_uri=tracking_uri)
    except Exception as exc:
        raise LoadError("download_failed", f"cannot download {ref.uri} from {source}: {exc}") \
            from exc
    return Path(local)
