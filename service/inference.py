"""One model version's prediction path, shared by every protocol (/v1, /v2, /invocations).

The model answers; then, by the signature's task, the metrics, the drift window, the shadow
model and the prediction log record what it said. Each protocol only decodes its request
into columns and encodes the `Answer` its own way.
"""
from __future__ import annotations

import asyncio
from collections import Counter as Tally
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.drift import DriftMonitor
from service.logbook import Logbook, RowMaker, new_ids
from service.metrics import Metrics
from service.model import LoadedModel
from service.shadow import ShadowRunner


@dataclass(frozen=True, slots=True)
class Answer:
    """What the model said about a batch of rows, in request order."""

    labels: list[str] | None     # classifiers: the predicted class
    # binary: P(positive); regression: the value; multiclass: None (see `probabilities`)
    values: list[float] | None
    probabilities: np.ndarray | None  # classifiers: [rows, classes] in signature order
    ids: list[str] | None        # prediction ids (None when neither asked for nor logged)


class Predictor:
    """Runs one model version and records what it said; built once per model in service."""

    def __init__(self, model: LoadedModel, metrics: Metrics, logbook: Logbook | None,
                 environment: str, drift: DriftMonitor | None,
                 shadow: ShadowRunner | None, variant: str | None = None) -> None:
        sig = model.signature
        self.model = model
        self.task = sig.task
        self.classes: tuple[str, ...] = tuple(sig.classes or ())
        self.drift = drift
        self.shadow = shadow
        self.variant = variant  # the A/B variant it answers for (None outside a test)
        ref = model.ref
        self._log = logbook.add if logbook is not None else None
        self._rows = RowMaker(ref.name, ref.version, ref.sha256, environment, sig, variant)
        labels = {"model": model.ref.name, "version": str(model.ref.version),
                  "variant": variant or ""}
        self._by_class = {c: metrics.predictions.labels(**labels, **{"class": c})
                          for c in self.classes}
        self._positive = self.classes.index(sig.positive_class) if sig.task == "binary" else 0
        self._histogram = (metrics.probability.labels(**labels) if sig.task == "binary" else
                           metrics.prediction_value.labels(model=labels["model"],
                                                           version=labels["version"])
                           if sig.task == "regression" else None)

    def __call__(self, columns: list[tuple[Any, ...]], issue_ids: bool = True) -> Answer:
        """Predict rows given column by column in signature order, and record the answers
        (`issue_ids`: the caller answers with prediction ids; they are made anyway when
        the prediction log is on)."""
        labels, scores = self.model.predict(columns)
        task = self.task
        single = len(scores) == 1
        if labels is None:  # regression
            values = scores.tolist()
            if single:
                self._histogram.observe(values[0])
            else:
                self._histogram.observe_many(scores)
            predicted: list[Any] = values
            probabilities = None
        else:
            predicted, probabilities = labels, scores
            if single:
                self._by_class[labels[0]].inc()
            else:
                for label, n in Tally(labels).items():
                    self._by_class[label].inc(n)
            values = None
            if task == "binary":
                positive = scores[:, self._positive]
                values = positive.tolist()
                if single:
                    self._histogram.observe(values[0])
                else:
                    self._histogram.observe_many(positive)
        log = self._log
        ids = new_ids(len(scores)) if issue_ids or log is not None else None
        answer = Answer(labels, values, probabilities, ids)
        if log is not None:
            log(self._rows, answer, columns)
        if self.drift is not None:
            self.drift.observe(columns, values if values is not None else predicted)
        if self.shadow is not None:
            self.shadow.submit(columns, predicted)
        return answer


class Coalescer:
    """Answers the rows of requests that arrive together with one model call.

    Requests read in the same turn of the event loop (concurrent callers) queue their rows;
    the first schedules a flush for the next turn, which runs the predictor once on all of
    them and hands each request its slice. A model call has a fixed cost (onnxruntime's
    per-run overhead, per-feature conversions) that then falls once per turn rather than once
    per request; a lone request waits one turn of the loop. Requests of `max_rows` rows or
    more run alone at once; a queue that would grow beyond `max_rows` is flushed first.
    """

    def __init__(self, predictor: Predictor, max_rows: int) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self._pending: list[tuple[list[tuple[Any, ...]], bool, asyncio.Future]] = []
        self._rows = 0

    async def __call__(self, columns: list[tuple[Any, ...]], issue_ids: bool = True) -> Answer:
        """The predictor's answer to these rows (column by column), shared with others'."""
        n = len(columns[0])
        if n >= self.max_rows:
            return self.predictor(columns, issue_ids)
        if self._rows + n > self.max_rows:
            self._flush()
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)
        future = loop.create_future()
        self._pending.append((columns, issue_ids, future))
        self._rows += n
        return await future

    def _flush(self) -> None:
        pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return
        if len(pending) == 1:
            columns, issue_ids, future = pending[0]
            merged, wanted = columns, issue_ids
        else:
            wanted = any(p[1] for p in pending)
            # Extending lists: several times faster than building tuples from a chain.
            merged = [list(column) for column in pending[0][0]]
            for columns, _, _ in pending[1:]:
                for into, column in zip(merged, columns):
                    into.extend(column)
        try:
            answer = self.predictor(merged, wanted)
        except Exception as exc:
            if len(pending) == 1:
                _settle(future, exc)
            else:  # each request alone: one whose rows the model refuses fails alone
                for columns, issue_ids, future in pending:
                    _settle(future, self.predictor, columns, issue_ids)
            return
        if len(pending) == 1:
            if not future.done():
                future.set_result(answer)
            return
        start = 0
        labels, values, probabilities, ids = (answer.labels, answer.values,
                                              answer.probabilities, answer.ids)
        for columns, _, future in pending:
            end = start + len(columns[0])
            if not future.done():  # a caller that went away is skipped
                future.set_result(Answer(
                    labels[start:end] if labels is not None else None,
                    values[start:end] if values is not None else None,
                    probabilities[start:end] if probabilities is not None else None,
                    ids[start:end] if ids is not None else None))
            start = end


def _settle(future: asyncio.Future, outcome: Any, *args: Any) -> None:
    """Give a waiting caller `outcome(*args)`, or the exception it raises (or `outcome` when it
    is one); a caller that went away is skipped."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
        return
    try:
        future.set_result(outcome(*args))
    except Exception as exc:
        future.set_exception(exc)
