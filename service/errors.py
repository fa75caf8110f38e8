"""Why a model could not be put into service; `reason` is a metric label, so it is a short word."""
from __future__ import annotations

REASONS = (
    "invalid_pin",          # the pin file is missing, not YAML, or not a valid pin
    "registry_unavailable",  # no tracking URI, or the registry did not answer
    "version_not_found",    # the pinned name/version is not registered
    "download_failed",      # the artifact could not be fetched
    "digest_mismatch",      # the fetched bundle is not the one the pin names
    "untrusted_types",      # the model file holds a type outside the trusted list
    "corrupt_artifact",     # a file of the verified bundle cannot be read
    "onnx_parity",          # the compiled model disagrees with the scikit-learn model
    "ab_mismatch",          # an A/B test's versions take other records or answer otherwise
)


class LoadError(Exception):
    """A refusal to serve a bundle, with a metric-friendly reason and a readable message."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message
