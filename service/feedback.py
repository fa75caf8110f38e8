"""Feedback in the prediction log: labels stored synchronously whichever replica answered the
prediction, and live quality per version read back from the same database.

A classifier's feedback is its true class, scored correct or not (live accuracy); a
regressor's is its true value, scored by the absolute error (live MAE). A batch is stored whole
or not at all: every id must be known (a prediction still in this replica's buffer is written
first) and must not hold another label already. The same label again gives the same answer.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from contracts.prediction_log.schema import feedback as feedback_table
from contracts.prediction_log.schema import predictions
from contracts.prediction_log.store import Outcome, PredictionLog, fold_variants
from service.logbook import Logbook

FLUSH_SECONDS = 10.0  # how long a label waits for its prediction to leave this replica's buffer
_ID = re.compile(r"[0-9a-f]{32}")


class Refusal(Exception):
    """A label that is not stored, about one prediction id."""

    def __init__(self, prediction_id: str, message: str = "") -> None:
        super().__init__(message or prediction_id)
        self.prediction_id = prediction_id
        self.message = message


class UnknownPrediction(Refusal):
    """No prediction of this model has the id."""


class AlreadyAnswered(Refusal):
    """Another label was stored for this prediction before (the message says which)."""


class InvalidTruth(ValueError):
    """The true label or value does not fit the model that predicted (the message says why)."""


class LogUnavailable(RuntimeError):
    """The database cannot be reached now: nothing was stored (the message says why)."""


def check_truth(truth: str | float, classes: tuple[str, ...] | None) -> None:
    """Raise InvalidTruth unless `truth` is one of `classes` (classifiers) or a finite number
    (regression: `classes` None)."""
    if classes is not None:
        if not isinstance(truth, str) or truth not in classes:
            raise InvalidTruth(f"label {truth!r} is not a class of the model ({', '.join(classes)})")
    elif isinstance(truth, (str, bool)) or not math.isfinite(truth):
        raise InvalidTruth(f"label {truth!r} is not a finite number (the model is a regression)")


class FeedbackDesk:
    """Stores labels of one model's predictions and reads its live quality (in worker threads:
    every method talks to the database)."""

    def __init__(self, store: PredictionLog, logbook: Logbook | None, window: int,
                 redact: Callable[[str], str] = str) -> None:
        self.store = store
        self.logbook = logbook
        self.window = window
        self._redact = redact
        self.quality: dict[int, dict[str, float]] = {}
        # Per (version, A/B variant): what each variant of a test scored (same read).
        self.variant_quality: dict[tuple[int, str | None], dict[str, float]] = {}
        self.quality_at = -math.inf
        self.quality_model: str | None = None

    def record(self, model: str, items: Sequence[tuple[str, str | float]],
               regression: bool) -> list[Outcome]:
        """Store every label of `items` (prediction id, truth), or none: UnknownPrediction,
        AlreadyAnswered, LogUnavailable."""
        try:
            return self._record(model, items, regression)
        except Refusal:
            raise
        except Exception as exc:  # any driver's error
            raise LogUnavailable(self._describe(exc)) from None

    def _record(self, model: str, items: Sequence[tuple[str, str | float]],
                regression: bool) -> list[Outcome]:
        first: dict[str, str | float] = {}
        for pid, truth in items:
            if not _ID.fullmatch(pid):
                raise UnknownPrediction(pid)
            if first.setdefault(pid, truth) != truth:
                raise AlreadyAnswered(pid, f"prediction {pid!r} is given two different labels")
        held = self._labels(model, list(first))
        if len(held) < len(first) and self.logbook is not None and self.logbook.buffered:
            # A prediction answered moments ago may still be in this replica's buffer.
            if not self.logbook.flush(FLUSH_SECONDS):
                raise LogUnavailable(self.logbook.problem or "the prediction log is not written "
                                     f"within {FLUSH_SECONDS:.0f} s")
            held = self._labels(model, list(first))
        for pid, truth in first.items():
            if pid not in held:
                raise UnknownPrediction(pid)
            stored = held[pid]
            if stored is not None and not _same(stored, truth, regression):
                raise AlreadyAnswered(pid, f"prediction {pid!r} is labelled {stored!r} already")
        outcomes = self.store.record_feedback(list(items), regression=regression)
        # Another replica may have stored a different label since the check above.
        for outcome in outcomes:
            if outcome.status == "conflict":
                raise AlreadyAnswered(outcome.prediction_id, f"prediction "
                                      f"{outcome.prediction_id!r} is labelled {outcome.stored!r} "
                                      "already")
            if outcome.status == "unknown":
                raise UnknownPrediction(outcome.prediction_id)
        return outcomes

    def _labels(self, model: str, ids: list[str]) -> dict[str, str | float | None]:
        """id -> the label (regression: value) stored for it, or None; only predictions of
        `model` (another model's prediction is not this service's to label)."""
        query = (select(predictions.c.id, feedback_table.c.label, feedback_table.c.value)
                 .select_from(predictions.outerjoin(
                     feedback_table, feedback_table.c.prediction_id == predictions.c.id))
                 .where(predictions.c.id.in_(ids), predictions.c.model == model))
        with self.store.engine.connect() as connection:
            return {pid: value if value is not None else label
                    for pid, label, value in connection.execute(query)}

    def refresh(self, model: str, max_age: float) -> dict[int, dict[str, float]]:
        """Live quality per version of `model` over the newest `window` labels, read again when
        older than `max_age` seconds (the database's figure: every replica reports the same)."""
        now = time.monotonic()
        if model != self.quality_model or now - self.quality_at >= max_age:
            by_variant = self.store.live_quality(model, self.window, by_variant=True)
            self.variant_quality = by_variant
            self.quality = fold_variants(by_variant)
            self.quality_at, self.quality_model = now, model
        return self.quality

    def _describe(self, exc: Exception) -> str:
        return (f"the prediction log cannot be reached ({type(exc).__name__}: "
                f"{self._redact(' '.join(str(exc).split()))[:300]})")


def _same(stored: Any, truth: str | float, regression: bool) -> bool:
    return float(stored) == float(truth) if regression else str(stored) == str(truth)
