"""The prediction log's writer: every answered prediction reaches the database, off the
request path.

The request path appends one entry per request to a bounded buffer (well under a microsecond);
a thread turns entries into rows and writes them in batches (`PredictionLog.append`). When the
buffer is full a prediction still answers: its row is dropped, counted and logged (at most every
LOSS_LOG_SECONDS). When the database is down, or its schema is behind the code, the rows are
kept and retried with backoff while the buffer holds, and /ready says logging is degraded.
`close()` (SIGTERM, through the app's lifespan) writes what is left.
"""
from __future__ import annotations

import logging
import operator
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from contracts.prediction_log import migrate
from contracts.prediction_log.store import PredictionLog
from service.metrics import Metrics

log = logging.getLogger("service.logbook")
LOSS_LOG_SECONDS = 10.0
DEGRADED_AFTER_LOSS_SECONDS = 10.0  # /ready stays "degraded" this long after a drop
BACKOFF_SECONDS = (0.2, 2.0)  # first retry, longest wait between retries
CONVERT_SECONDS = 0.02  # how long a request's objects wait in the queue at most
ID_BLOCK = 4096
_ENCODER = msgspec.json.Encoder(enc_hook=lambda v: v.item() if hasattr(v, "item") else str(v))


class IdSource:
    """Prediction ids of 128 random bits each (32 hex digits), cut from random bytes drawn
    ID_BLOCK ids at a time by one os.urandom call, written as hex with a space after every id
    (a system call per request, and a Python slice per id, were measurable). Used by the event
    loop only."""

    def __init__(self) -> None:
        self._text = ""
        self._at = 0

    def __call__(self, n: int) -> list[str]:
        """`n` new ids."""
        need = 33 * n  # 32 hex digits and a space each
        if self._at + need > len(self._text) + 1:
            self._text = os.urandom(16 * max(n, ID_BLOCK)).hex(" ", 16)
            self._at = 0
        at = self._at
        self._at = at + need
        if n == 1:
            return [self._text[at:at + 32]]
        return self._text[at:at + need - 1].split(" ")


new_ids = IdSource()


class RowMaker:
    """Turns one model version's answers into prediction-log rows (in the writer thread).

    The writer shares the interpreter lock with the request path, so every microsecond of
    Python here is one the requests lose: the features are encoded from a struct made for the
    signature (msgspec, in C) rather than from a dict per row."""

    def __init__(self, name: str, version: int, digest: str, environment: str,
                 signature: Any, variant: str | None = None) -> None:
        self.head = (name, version, digest, environment, variant)
        never = set(signature.never_log)
        kept = [(i, f.name) for i, f in enumerate(signature.features) if f.name not in never]
        self._pick = _picker([i for i, _ in kept])
        self._features = msgspec.defstruct(
            "LoggedFeatures", [(f"f{k}", Any) for k in range(len(kept))],
            rename={f"f{k}": name for k, (_, name) in enumerate(kept)})
        self._retention = timedelta(days=signature.retention_days) \
            if signature.retention_days else None
        self._task = signature.task
        self._classes = tuple(signature.classes or ())

    def rows(self, answer: Any, columns: Sequence[Sequence[Any]], at: float) -> list[tuple]:
        """The rows of one answered request, in ROW_COLUMNS order."""
        encode = _ENCODER.encode
        created = datetime.fromtimestamp(at, UTC)
        expires = created + self._retention if self._retention is not None else None
        make = self._features
        kept = self._pick(columns)
        ids = answer.ids
        if len(ids) == 1:  # most requests: no list of rows to build per column
            features = [encode(make(*[c[0] for c in kept])).decode()]
        else:
            features = [encode(make(*row)).decode() for row in zip(*kept)] if kept \
                else ["{}"] * len(ids)
        task = self._task
        if task == "regression":
            values = answer.values
            labels: Sequence[Any] = [None] * len(values)
            outputs = [encode({"prediction": v}).decode() for v in values]
        else:
            labels = answer.labels
            values = [None] * len(labels)
            if task == "binary":
                outputs = [encode({"prediction": label, "probability": p}).decode()
                           for label, p in zip(labels, answer.values)]
            else:
                classes = self._classes
                outputs = [encode({"prediction": label, "probabilities": dict(zip(classes, p))})
                           .decode() for label, p in zip(labels, answer.probabilities.tolist())]
        head = self.head
        return [(pid, *head, created, expires, f, label, value, out)
                for pid, f, label, value, out in zip(ids, features, labels, values, outputs)]


def _picker(indices: list[int]) -> Callable[[Sequence[Any]], tuple]:
    """A function returning the items at `indices` as a tuple (itemgetter: one C call)."""
    if len(indices) >= 2:
        return operator.itemgetter(*indices)
    return lambda items: tuple(items[i] for i in indices)


class Logbook:
    """A bounded buffer of answered predictions and the thread that writes it in batches.

    The writer turns what requests left in the queue into rows every CONVERT_SECONDS, and
    writes the rows when a batch is full or the oldest has waited `flush_seconds`. Converting
    soon matters: a request's objects that stay alive for a second reach the collector's
    oldest generation, and its full collections then run in the request path."""

    def __init__(self, store: PredictionLog, metrics: Metrics, capacity: int, batch_rows: int,
                 flush_seconds: float, redact: Callable[[str], str] = str) -> None:
        self.store = store
        self.capacity = capacity
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self._redact = redact
        self._queue: deque[tuple] = deque()
        # Each counter is written by one thread only: the request path adds, the writer the rest.
        self._added = 0      # rows accepted into the buffer
        self._done = 0       # rows written, or given up on
        self._failures = 0   # write attempts that failed
        self._rows: list[tuple] = []  # converted, not yet written, oldest first
        self._oldest = 0.0   # when the oldest of _rows was converted (monotonic)
        self._retry_at = 0.0
        self._backoff = BACKOFF_SECONDS[0]
        self._urgent = threading.Event()   # a flush or close is asked for
        self._progress = threading.Condition()
        self._closing = False
        self._abandoned = False  # closed while the database failed: the writer stops
        self.problem: str | None = None
        self._last_loss = -DEGRADED_AFTER_LOSS_SECONDS
        self._unlogged_loss = 0
        self._last_loss_log = -LOSS_LOG_SECONDS
        m = metrics
        self._written = m.log_written
        self._dropped = {r: m.log_dropped.labels(reason=r)
                         for r in ("buffer_full", "shutdown", "unencodable")}
        self._write_failures = m.log_write_failures
        self._degraded = m.log_degraded
        self._buffered = m.log_buffered
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    # ---- the request path ------------------------------------------------------------------
    def add(self, maker: RowMaker, answer: Any, columns: Sequence[Sequence[Any]]) -> None:
        """Buffer one answered request (never blocks; drops it when the buffer is full)."""
        n = len(answer.ids)
        if self._added - self._done + n > self.capacity:
            self._lose(n, "buffer_full")
            return
        self._queue.append((maker, answer, columns, time.time()))
        self._added += n

    def _lose(self, n: int, reason: str) -> None:
        self._dropped[reason].inc(n)
        self._last_loss = time.monotonic()
        self._unlogged_loss += n
        self._report_loss(reason)

    def _report_loss(self, reason: str = "buffer_full") -> None:
        """Log the rows lost since the last report, at most every LOSS_LOG_SECONDS (the writer
        also calls it, so the last of a burst is reported too)."""
        now = time.monotonic()
        if self._unlogged_loss and now - self._last_loss_log >= LOSS_LOG_SECONDS:
            log.warning("prediction log: %d predictions answered but not logged (%s) since the "
                        "last report; %d buffered; %s", self._unlogged_loss,
                        reason.replace("_", " "), self.buffered,
                        self.problem or "the database takes rows")
            self._last_loss_log = now
            self._unlogged_loss = 0

    # ---- what /ready and /metrics report -----------------------------------------------------
    @property
    def buffered(self) -> int:
        """Rows accepted and not yet written."""
        return self._added - self._done

    def status(self) -> dict[str, Any]:
        """ok or degraded (the database fails, or rows were dropped lately), and why."""
        reason = self.problem
        if reason is None and time.monotonic() - self._last_loss < DEGRADED_AFTER_LOSS_SECONDS:
            reason = "the buffer was full: predictions were answered but not logged"
        self.refresh_gauges()
        return {"state": "degraded" if reason else "ok", "reason": reason,
                "buffered": self.buffered}

    def refresh_gauges(self) -> None:
        self._buffered.set(self.buffered)
        self._degraded.set(1 if self.problem else 0)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Write every row buffered so far; False when that fails or takes over `timeout` s."""
        target, failures = self._added, self._failures
        with self._progress:
            self._urgent.set()
            self._progress.wait_for(
                lambda: self._done >= target or self._failures > failures, timeout)
        return self._done >= target

    def close(self, timeout: float) -> None:
        """Write what is left (SIGTERM); what cannot be written within `timeout` s is counted
        as lost."""
        self._closing = True
        self._urgent.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            self._abandoned = True
        left = self.buffered
        if left:
            self._dropped["shutdown"].inc(left)
            log.error("prediction log: %d predictions not logged at shutdown (%s)", left,
                      self.problem or f"not written within {timeout:.0f} s")
        else:
            log.info("prediction log: every prediction written")

    # ---- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        self._probe()
        while not self._abandoned:
            urgent = self._urgent.wait(CONVERT_SECONDS)
            self._urgent.clear()
            self._convert()
            self._report_loss()
            now = time.monotonic()
            if self.problem is not None:
                if not urgent and now < self._retry_at:
                    continue
                self._retry_at = now + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_SECONDS[1])
                if not self._probe():
                    continue
            due = urgent or len(self._rows) >= self.batch_rows or (
                self._rows and now - self._oldest >= self.flush_seconds)
            if due and self._write() and self._closing and not self._queue:
                return

    def _convert(self) -> None:
        """Every queued request into rows (the request's own objects can then be freed)."""
        queue, rows = self._queue, self._rows
        if queue and not rows:
            self._oldest = time.monotonic()
        while queue:
            maker, answer, columns, at = queue.popleft()
            try:
                rows.extend(maker.rows(answer, columns, at))
            except Exception:  # a bug here must not stop the log; the rows are counted
                n = len(answer.ids)
                log.exception("prediction log: %d rows could not be encoded", n)
                self._done += n
                self._lose(n, "unencodable")

    def _write(self) -> bool:
        """Write the converted rows in batches; False at the first failure (they are kept)."""
        while self._rows and not self._abandoned:
            batch = self._rows[:self.batch_rows]
            try:
                self.store.append(batch)
            except Exception as exc:  # any driver's error: kept, reported, retried
                message = self._redact(" ".join(str(exc).split()))[:300]
                self._attempt_failed(f"cannot write to the database ({type(exc).__name__}: "
                                     f"{message})")
                return False
            del self._rows[:len(batch)]
            self._oldest = time.monotonic()
            self._done += len(batch)
            self._written.inc(len(batch))
            if self.problem is not None:
                log.warning("prediction log: writing again (%d buffered)", self.buffered)
                self.problem = None
                self._backoff = BACKOFF_SECONDS[0]
                self._degraded.set(0)
            with self._progress:
                self._progress.notify_all()
        return not self._abandoned

    def _probe(self) -> bool:
        """Whether the database answers with the schema this code writes. The service never
        migrates: a schema behind the code is reported, not changed."""
        try:
            current, head = migrate.current(self.store.url), migrate.head()
        except Exception as exc:  # every driver raises its own kind
            message = self._redact(" ".join(str(exc).split()))[:300]
            self._attempt_failed(f"cannot reach the database ({type(exc).__name__}: {message})")
            return False
        if current != head:
            self._attempt_failed(
                f"the database schema is {current or 'empty'}, this service needs {head}: run "
                "`python -m contracts.prediction_log upgrade` (or `mlops db upgrade`)")
            return False
        if self.problem is not None and not self._rows and not self._queue:
            log.warning("prediction log: the database answers again")
            self.problem = None
            self._backoff = BACKOFF_SECONDS[0]
            self._degraded.set(0)
        return True

    def _attempt_failed(self, problem: str) -> None:
        if problem != self.problem:
            log.error("prediction log: %s; %d predictions buffered, kept while the buffer "
                      "holds %d", problem, self.buffered, self.capacity)
        self.problem = problem
        self._degraded.set(1)
        self._failures += 1
        self._write_failures.inc()
        with self._progress:
            self._progress.notify_all()
