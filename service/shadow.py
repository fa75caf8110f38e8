"""A shadow model: predicts the same rows off the request path; only agreement is exported."""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from typing import Any

from service.metrics import Metrics
from service.model import LoadedModel

log = logging.getLogger("service.shadow")
AGREEMENT_WINDOW = 1000
# Regression: the shadow agrees when its value is within 5% of the primary's (1 near zero).
VALUE_TOLERANCE = 0.05


class ShadowRunner:
    """A worker thread that replays primary requests on the shadow model."""

    def __init__(self, model: LoadedModel, metrics: Metrics, queue_size: int) -> None:
        self.model = model
        self._metrics = metrics
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._recent: deque[bool] = deque(maxlen=AGREEMENT_WINDOW)
        self.dropped = 0
        self._stopped = False
        self.compared = 0
        self._agree = metrics.shadow_predictions.labels(agreement="agree")
        self._disagree = metrics.shadow_predictions.labels(agreement="disagree")
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def submit(self, columns: list[tuple[Any, ...]], primary: list[Any]) -> None:
        """Queue rows and the primary's labels (regression: values); never blocks (drops
        when the queue is full)."""
        try:
            self._queue.put_nowait((columns, primary))
        except queue.Full:
            self.dropped += 1

    def stop(self) -> None:
        """Ask the worker to exit; never blocks the caller."""
        self._stopped = True
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # the worker sees the flag after its current item

    def _run(self) -> None:
        while not self._stopped:
            item = self._queue.get()
            if item is None:
                return
            columns, primary = item
            try:
                labels, values = self.model.predict(columns)
            except Exception:  # a shadow must never hurt the primary; it is only counted
                log.exception("shadow model %s failed to predict", self.model.ref.uri)
                continue
            if labels is not None:
                matches = [a == b for a, b in zip(labels, primary)]
            else:
                matches = [abs(a - b) <= VALUE_TOLERANCE * max(1.0, abs(b))
                           for a, b in zip(values.tolist(), primary)]
            agree = sum(matches)
            disagree = len(matches) - agree
            if agree:
                self._agree.inc(agree)
            if disagree:
                self._disagree.inc(disagree)
            self._recent.extend(matches)
            self.compared += len(matches)
            self._metrics.shadow_agreement.set(sum(self._recent) / len(self._recent))
