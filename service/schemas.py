"""Response bodies (msgspec Structs: Litestar encodes and documents them)."""
from __future__ import annotations

from typing import Annotated, Any

import msgspec


class BinaryRow(msgspec.Struct):
    """One row's result from a binary classifier."""

    prediction: str
    probability: float  # of the positive class
    prediction_id: str
    version: int  # the version that answered this row
    variant: str | None  # the A/B variant that answered (None outside a test)


class MulticlassRow(msgspec.Struct):
    """One row's result from a multiclass classifier."""

    prediction: str
    probabilities: dict[str, float]
    prediction_id: str
    version: int  # the version that answered this row
    variant: str | None  # the A/B variant that answered (None outside a test)


class RegressionRow(msgspec.Struct):
    """One row's result from a regression model."""

    prediction: float
    prediction_id: str
    version: int  # the version that answered this row
    variant: str | None  # the A/B variant that answered (None outside a test)


class BinaryResponse(msgspec.Struct):
    """A binary classifier's result for a single record."""

    model: str
    version: int
    prediction: str
    probability: float
    prediction_id: str
    variant: str | None  # the A/B variant that answered (None outside a test)


class MulticlassResponse(msgspec.Struct):
    """A multiclass classifier's result for a single record."""

    model: str
    version: int
    prediction: str
    probabilities: dict[str, float]
    prediction_id: str
    variant: str | None  # the A/B variant that answered (None outside a test)


class RegressionResponse(msgspec.Struct):
    """A regression model's result for a single record."""

    model: str
    version: int
    prediction: float
    prediction_id: str
    variant: str | None  # the A/B variant that answered (None outside a test)


class BatchResponse(msgspec.Struct):
    """Results for an array of records, in request order (rows shaped by the task)."""

    model: str
    # The version that answered every row; in a batch both A/B variants answered, variant a's.
    version: int
    predictions: list[Any]  # BinaryRow, MulticlassRow or RegressionRow


# The number bounds keep 1e999 (Infinity) out; a classifier's label is text, a value a number.
FiniteFloat = Annotated[float, msgspec.Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The truth about an earlier prediction: its class, or for regression its value."""

    prediction_id: str
    label: str | FiniteFloat


class FeedbackResponse(msgspec.Struct):
    """How a classifier's prediction fared (the same answer when the same label comes again)."""

    prediction_id: str
    label: str
    predicted: str
    version: int
    outcome: str
    variant: str | None = None  # the A/B variant that answered the prediction


class RegressionFeedbackResponse(msgspec.Struct):
    """How far a regression prediction was (the same answer when the same value comes again)."""

    prediction_id: str
    label: float
    predicted: float
    version: int
    error: float
    variant: str | None = None  # the A/B variant that answered the prediction


class BatchFeedbackResponse(msgspec.Struct):
    """Feedback for an array of predictions, in request order."""

    feedback: list[Any]  # FeedbackResponse or RegressionFeedbackResponse


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    """Whether a verified model serves, and whether it is the one the pin names; and whether
    answered predictions reach the prediction log (`logging`: state off, ok or degraded, the
    reason, rows buffered). A degraded log does not make the service unready."""

    ready: bool
    reason: str | None
    model: str | None
    version: int | None
    sha256: str | None
    pinned: str | None
    in_sync: bool
    failure: dict[str, Any] | None
    logging: dict[str, Any]


class ModelDescription(msgspec.Struct):
    """The model in service: pin, digest, lineage and when it was loaded. Lineage (with the
    training parameters) and who promoted it are shown to callers with the admin scope only."""

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
    # Per version: labels in the feedback window and accuracy or MAE (from the prediction log).
    live_quality: dict[str, dict[str, float]] | None = None
    # The pin's A/B test: split, unit, and per variant version, sha256, runtime, loaded_at
    # (and its live quality); None outside a test.
    ab: dict[str, Any] | None = None


class ErrorBody(msgspec.Struct):
    """Every error: the status, a sentence saying what is wrong, and details when useful."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None
