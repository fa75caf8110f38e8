"""Response bodies (msgspec Structs: Litestar encodes and documents them)."""
from __future__ import annotations

from typing import Any

import msgspec


class Prediction(msgspec.Struct):
    """One row's result."""

    prediction: str
    probability: float
    prediction_id: str


class PredictResponse(msgspec.Struct):
    """Result for a single record."""

    model: str
    version: int
    prediction: str
    probability: float
    prediction_id: str


class BatchPredictResponse(msgspec.Struct):
    """Results for an array of records, in request order."""

    model: str
    version: int
    predictions: list[Prediction]


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The true label of an earlier prediction."""

    prediction_id: str
    label: str


class FeedbackResponse(msgspec.Struct):
    """How the prediction fared, and live accuracy over the feedback window."""

    prediction_id: str
    label: str
    predicted: str
    version: int
    outcome: str
    accuracy: float
    window: int


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    """Whether a verified model serves, and whether it is the one the pin names."""

    ready: bool
    reason: str | None
    model: str | None
    version: int | None
    sha256: str | None
    pinned: str | None
    in_sync: bool
    failure: dict[str, Any] | None


class ModelDescription(msgspec.Struct):
    """The model in service: pin, digest, lineage and when it was loaded."""

    name: str
    version: int
    uri: str
    sha256: str
    environment: str
    runtime: str
    loaded_at: str
    lineage: dict[str, Any] | None
    metrics: dict[str, float]
    promoted: dict[str, Any] | None
    pin_file: str
    in_sync: bool
    drift: dict[str, Any]
    shadow: dict[str, Any] | None
    signature: dict[str, Any]


class ErrorBody(msgspec.Struct):
    """Every error: the status, a sentence saying what is wrong, and details when useful."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None
