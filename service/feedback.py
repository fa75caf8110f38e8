"""Prediction ids remembered for feedback, and live accuracy over a sliding window."""
from __future__ import annotations

import itertools
import secrets
from collections import OrderedDict, deque


class UnknownPrediction(KeyError):
    """The id was never issued here, or is older than the remembered window."""


class AlreadyAnswered(ValueError):
    """Feedback for this id was recorded before."""


class FeedbackBook:
    """Issues prediction ids, remembers the latest ones, and scores feedback against them."""

    def __init__(self, memory: int, window: int) -> None:
        self.memory = memory
        # A random prefix per process keeps ids unique across restarts and replicas.
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)
        # Tuples of strings and ints are untracked by the garbage collector, so a long
        # memory of ids costs no collection time.
        self._issued: OrderedDict[str, tuple] = OrderedDict()
        self._outcomes: deque[bool] = deque(maxlen=window)

    def issue(self, labels: list[str], version: int, classes: tuple[str, ...]) -> list[str]:
        """New ids for predicted labels, remembered for later feedback."""
        ids = []
        issued = self._issued
        for label in labels:
            pid = f"{self._prefix}-{next(self._counter)}"
            issued[pid] = (label, version, classes, False)
            ids.append(pid)
        while len(issued) > self.memory:
            issued.popitem(last=False)
        return ids

    def record(self, prediction_id: str, label: str) -> tuple[bool, str, int]:
        """Score a true label: (correct?, predicted label, model version)."""
        entry = self._issued.get(prediction_id)
        if entry is None:
            raise UnknownPrediction(prediction_id)
        predicted, version, classes, answered = entry
        if label not in classes:
            raise ValueError(f"label {label!r} is not a class of the model ({', '.join(classes)})")
        if answered:
            raise AlreadyAnswered(prediction_id)
        self._issued[prediction_id] = (predicted, version, classes, True)
        correct = predicted == label
        self._outcomes.append(correct)
        return correct, predicted, version

    @property
    def accuracy(self) -> float | None:
        if not self._outcomes:
            return None
        return sum(self._outcomes) / len(self._outcomes)

    @property
    def window_rows(self) -> int:
        return len(self._outcomes)
