"""Prediction ids remembered for feedback, and live quality over a sliding window.

A classifier's feedback is its true class, scored correct or not (live accuracy); a
regressor's is its true value, scored by the absolute error (live MAE). The store behind
`FeedbackStore` is in memory here; the interface is what the handlers use, so a database
store can take its place.
"""
from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class UnknownPrediction(KeyError):
    """The id was never issued here, or is older than the remembered window."""


class AlreadyAnswered(ValueError):
    """Feedback for this id was recorded before."""


class InvalidTruth(ValueError):
    """The true label or value does not fit the model that predicted (the message says why)."""


@dataclass(frozen=True)
class Scored:
    """One piece of feedback, scored against its prediction, and the window after it."""

    predicted: str | float
    version: int
    correct: bool | None      # classifiers
    error: float | None       # regression: |truth - predicted|
    accuracy: float | None    # over the window of classifier feedback
    mae: float | None         # over the window of regression feedback
    window: int               # feedback rows in the window of this task


class FeedbackStore(Protocol):
    """What the service needs from wherever predictions and their feedback are kept."""

    memory: int

    def issue(self, version: int, predicted: Sequence[str] | Sequence[float],
              classes: tuple[str, ...] | None) -> list[str]:
        """New ids for predicted labels (classes given) or values (classes None)."""
        ...

    def check(self, prediction_id: str, truth: str | float) -> None:
        """Raise what `record` would raise, recording nothing (a batch is all or nothing)."""
        ...

    def record(self, prediction_id: str, truth: str | float) -> Scored:
        """Score the truth of one prediction; UnknownPrediction, AlreadyAnswered, InvalidTruth."""
        ...


class MemoryFeedbackStore:
    """The newest `memory` predictions in a ring, addressed by a counter in their id.

    Issuing is a few slice assignments per batch whatever its size, and an id is looked up
    by arithmetic, not hashing, so it costs the request path almost nothing."""

    def __init__(self, memory: int, window: int) -> None:
        self.memory = memory
        # A random prefix per process keeps ids unique across restarts and replicas.
        self._prefix = secrets.token_hex(6) + "-"
        self._issued = 0
        self._predicted: list[str | float | None] = [None] * memory
        self._version = [0] * memory
        self._answered = bytearray(memory)
        self._classes: dict[int, tuple[str, ...] | None] = {}
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._errors: deque[float] = deque(maxlen=window)

    def issue(self, version: int, predicted: Sequence[str] | Sequence[float],
              classes: tuple[str, ...] | None) -> list[str]:
        """New ids for predicted labels (classes given) or values (classes None)."""
        self._classes[version] = classes
        n = len(predicted)
        first = self._issued + 1
        self._issued += n
        memory = self.memory
        # Only the newest `memory` of a batch larger than the memory can be remembered.
        skip = max(0, n - memory)
        start, done = (first - 1 + skip) % memory, skip
        while done < n:
            k = min(n - done, memory - start)
            self._predicted[start:start + k] = predicted[done:done + k]
            self._version[start:start + k] = [version] * k
            self._answered[start:start + k] = bytes(k)
            done += k
            start = 0
        prefix = self._prefix
        return [prefix + str(i) for i in range(first, first + n)]

    def check(self, prediction_id: str, truth: str | float) -> None:
        """Raise what `record` would raise, recording nothing (a batch is all or nothing)."""
        self._slot(prediction_id, truth)

    def _slot(self, prediction_id: str, truth: str | float) -> int:
        number = prediction_id[len(self._prefix):] if prediction_id.startswith(self._prefix) \
            else ""
        if not number.isdigit() or not self._issued - self.memory < int(number) <= self._issued:
            raise UnknownPrediction(prediction_id)
        slot = (int(number) - 1) % self.memory
        classes = self._classes[self._version[slot]]
        if classes is not None:
            if not isinstance(truth, str) or truth not in classes:
                raise InvalidTruth(f"label {truth!r} is not a class of the model "
                                   f"({', '.join(classes)})")
        elif isinstance(truth, str) or isinstance(truth, bool) or not math.isfinite(truth):
            raise InvalidTruth(f"label {truth!r} is not a finite number (the model is a "
                               "regression)")
        if self._answered[slot]:
            raise AlreadyAnswered(prediction_id)
        return slot

    def record(self, prediction_id: str, truth: str | float) -> Scored:
        """Score the truth of one prediction; UnknownPrediction, AlreadyAnswered, InvalidTruth."""
        slot = self._slot(prediction_id, truth)
        predicted, version = self._predicted[slot], self._version[slot]
        classes = self._classes[version]
        self._answered[slot] = 1
        if classes is not None:
            correct = predicted == truth
            self._outcomes.append(correct)
            return Scored(predicted, version, correct, None, self.accuracy, None,
                          len(self._outcomes))
        error = abs(float(truth) - float(predicted))
        self._errors.append(error)
        return Scored(predicted, version, None, error, None, self.mae, len(self._errors))

    @property
    def accuracy(self) -> float | None:
        """Share of correct classifier predictions in the window (None before any)."""
        return sum(self._outcomes) / len(self._outcomes) if self._outcomes else None

    @property
    def mae(self) -> float | None:
        """Mean absolute error of regression predictions in the window (None before any)."""
        return math.fsum(self._errors) / len(self._errors) if self._errors else None
