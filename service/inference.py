"""One model version's prediction path, shared by every protocol (/v1, /v2, /invocations).

The model answers; then, by the signature's task, the metrics, the drift window, the shadow
model and the prediction log record what it said. Each protocol only decodes its request
into columns and encodes the `Answer` its own way.
"""
from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
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
        return self.record(columns, issue_ids, labels, scores)

    def record(self, columns: list[tuple[Any, ...]], issue_ids: bool,
               labels: list[str] | None, scores: np.ndarray) -> Answer:
        """Record what the model said about these rows (`self.model.predict`'s result) in the
        metrics, the drift window, the shadow model and the log; the answer to give."""
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

    One call at a time: requests read while the model is busy (concurrent callers) queue
    their rows and go together in the next call, which starts as soon as the last one ends;
    a call takes at most `max_rows` rows (a larger request goes alone; 0: every request
    alone, at once). A model call has a fixed cost (onnxruntime's per-run overhead,
    per-feature conversions) that then falls once per call rather than once per request.

    Calls of `thread_rows` rows or more run in the model's own thread (`executor`), where
    onnxruntime computes without the GIL: under load the model's compute overlaps the loop's
    reading and answering of the next requests. Smaller calls run on the loop, for which the
    hand-off to a thread costs more than it saves. What the model said is recorded (metrics,
    drift, log) on the loop either way.
    """

    def __init__(self, predictor: Predictor, max_rows: int, executor: Executor | None = None,
                 thread_rows: int = 0) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self._executor = executor if thread_rows else None
        self._thread_rows = thread_rows
        self._pending: deque[tuple[list[tuple[Any, ...]], bool, asyncio.Future]] = deque()
        self._busy = False

    async def __call__(self, columns: list[tuple[Any, ...]], issue_ids: bool = True) -> Answer:
        """The predictor's answer to these rows (column by column), shared with others'."""
        if not self.max_rows:
            return self.predictor(columns, issue_ids)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((columns, issue_ids, future))
        if not self._busy:  # else the call under way starts the next one when it ends
            self._busy = True
            loop.call_soon(self._next)
        return await future

    def _next(self) -> None:
        """Call the model on what is queued, in calls of at most `max_rows` rows, until the
        queue is empty or a call has gone to the model's thread (which calls back)."""
        predict = self.predictor.model.predict
        while self._pending:
            batch, merged, wanted, rows = self._take()
            if self._executor is None or rows < self._thread_rows:
                self._finish(batch, merged, wanted, partial(predict, merged))
                continue
            call = asyncio.get_running_loop().run_in_executor(self._executor, predict, merged)
            call.add_done_callback(partial(self._done, batch, merged, wanted))
            return
        self._busy = False

    def _take(self) -> tuple[list[Any], list[Any], bool, int]:
        """The queued requests of the next call, their rows merged column by column."""
        pending = self._pending
        batch = [pending.popleft()]
        rows = len(batch[0][0][0])
        while pending and rows + len(pending[0][0][0]) <= self.max_rows:
            rows += len(pending[0][0][0])
            batch.append(pending.popleft())
        if len(batch) == 1:
            return batch, batch[0][0], batch[0][1], rows
        # Extending lists: several times faster than building tuples from a chain.
        merged = [list(column) for column in batch[0][0]]
        for columns, _, _ in batch[1:]:
            for into, column in zip(merged, columns):
                into.extend(column)
        return batch, merged, any(b[1] for b in batch), rows

    def _done(self, batch, merged, wanted, done: asyncio.Future) -> None:
        """The model's thread has answered (on the loop): answer the callers, call again."""
        self._finish(batch, merged, wanted, done.result)
        self._next()

    def _finish(self, batch, merged, wanted, result: Callable[[], Any]) -> None:
        """Answer the callers of a call with what `result()` gives, the model's
        (labels, scores) or the error it raised."""
        try:
            labels, scores = result()
        except Exception as exc:
            self._refused(batch, exc)
        else:
            self._answer(batch, merged, wanted, labels, scores)

    def _answer(self, batch, merged, wanted, labels, scores) -> None:
        """Record the call's answers and hand each request its slice."""
        try:
            answer = self.predictor.record(merged, wanted, labels, scores)
        except Exception as exc:
            for _, _, future in batch:
                _settle(future, exc)
            return
        if len(batch) == 1:
            _settle(batch[0][2], answer)
            return
        start = 0
        labels, values, probabilities, ids = (answer.labels, answer.values,
                                              answer.probabilities, answer.ids)
        for columns, _, future in batch:
            end = start + len(columns[0])
            _settle(future, Answer(
                labels[start:end] if labels is not None else None,
                values[start:end] if values is not None else None,
                probabilities[start:end] if probabilities is not None else None,
                ids[start:end] if ids is not None else None))
            start = end

    def _refused(self, batch, exc: Exception) -> None:
        """The model refused a call: a request alone gets the error; a shared call is made
        again request by request, so only the request whose rows the model refuses fails."""
        if len(batch) == 1:
            _settle(batch[0][2], exc)
            return
        for columns, issue_ids, future in batch:
            _settle(future, self.predictor, columns, issue_ids)


def _settle(future: asyncio.Future, outcome: Any, *args: Any) -> None:
    """Give a waiting caller `outcome(*args)` (or `outcome` itself when there are no args), or
    the exception it raises (or `outcome` when it is one); a caller that went away is skipped."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
        return
    if not args:
        future.set_result(outcome)
        return
    try:
        future.set_result(outcome(*args))
    except Exception as exc:
        future.set_exception(exc)
