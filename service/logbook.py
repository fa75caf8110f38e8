"""The prediction log's writer: every answered prediction reaches the database, off the
request path.

The request path appends one entry per request to a bounded buffer (well under a microsecond);
a thread turns entries into rows and writes them in batches (`PredictionLog.append`). When the
buffer is full a prediction still answers: its row is dropped, counted and logged (at most every
LOSS_LOG_SECONDS). When the database is down, or its schema is behind the code, the batch taken
is kept and retried with backoff while the buffer fills, and /ready says logging is degraded.
`close()` (SIGTERM, through the app's lifespan) writes what is left.
"""
from __future__ import annotations

import logging
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
_ENCODER = msgspec.json.Encoder(enc_hook=lambda v: v.item() if hasattr(v, "item") else str(v))


def new_ids(n: int) -> list[str]:
    """`n` prediction ids of 128 random bits each (32 hex digits), from one os.urandom call."""
    if n == 1:
        return [os.urandom(16).hex()]
    raw = os.urandom(16 * n).hex()
    return [raw[i:i + 32] for i in range(0, 32 * n, 32)]


class RowMaker:
    """Turns one model version's answers into prediction-log rows (in the writer thread)."""

    def __init__(self, name: str, version: int, digest: str, environment: str,
                 signature: Any, variant: str | None = None) -> None:
        self.head = (name, version, digest, environment, variant)
        never = set(signature.never_log)
        self._kept = [(i, f.name) for i, f in enumerate(signature.features) if f.name not in never]
        self._retention = timedelta(days=signature.retention_days) \
            if signature.retention_days else None
        self._task = signature.task
        self._classes = tuple(signature.classes or ())

    def rows(self, answer: Any, columns: Sequence[Sequence[Any]], at: float) -> list[tuple]:
        """The rows of one answered request, in ROW_COLUMNS order."""
        encode = _ENCODER.encode
        created = datetime.fromtimestamp(at, UTC)
        expires = created + self._retention if self._retention is not None else None
        n = len(answer.ids)
        names = [name for _, name in self._kept]
        if names:
            features = [encode(dict(zip(names, row))).decode()
                        for row in zip(*[columns[i] for i, _ in self._kept])]
        else:
            features = ["{}"] * n
        if self._task == "regression":
            values = answer.values
            outputs = [encode({"prediction": v}).decode() for v in values]
            labels: Sequence[Any] = [None] * n
        elif self._task == "binary":
            values, labels = [None] * n, answer.labels
            outputs = [encode({"prediction": label, "probability": p}).decode()
                       for label, p in zip(labels, answer.values)]
        else:
            values, labels = [None] * n, answer.labels
            classes = self._classes
            outputs = [encode({"prediction": label, "probabilities": dict(zip(classes, p))}).decode()
                       for label, p in zip(labels, answer.probabilities.tolist())]
        head = self.head
        return [(pid, *head, created, expires, f, label, value, out)
                for pid, f, label, value, out in zip(answer.ids, features, labels, values, outputs)]


class Logbook:
    """A bounded buffer of answered predictions and the thread that writes it in batches."""

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
        self._taken = 0      # rows taken from the queue into a batch
        self._done = 0       # rows written, or given up on
        self._failures = 0   # write attempts that failed
        self._pending: list[tuple] = []  # the batch being written (kept while it fails)
        self._wake = threading.Event()     # a batch is ready, or a flush or close is asked for
        self._urgent = threading.Event()   # a flush or close is asked for (ends a backoff)
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
        if self._added - self._taken >= self.batch_rows and not self._wake.is_set():
            self._wake.set()

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
            self._wake.set()
            self._progress.wait_for(
                lambda: self._done >= target or self._failures > failures, timeout)
        return self._done >= target

    def close(self, timeout: float) -> None:
        """Write what is left (SIGTERM); what cannot be written within `timeout` s is counted
        as lost."""
        self._closing = True
        self._urgent.set()
        self._wake.set()
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
        backoff = BACKOFF_SECONDS[0]
        while not self._abandoned:
            if self.problem is not None:
                self._urgent.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_SECONDS[1])
            else:
                self._wake.wait(self.flush_seconds)
                backoff = BACKOFF_SECONDS[0]
            self._urgent.clear()
            self._wake.clear()
            self._report_loss()
            if self.problem is not None and not self._probe():
                continue
            if self._drain() and self._closing and not self._queue:
                return

    def _drain(self) -> bool:
        """Write batches until the buffer is empty; False at the first failure."""
        while not self._abandoned:
            if not self._pending:
                self._pending = self._take()
                if not self._pending:
                    return True
            try:
                self.store.append(self._pending)
            except Exception as exc:  # any driver's error: kept, reported, retried
                message = self._redact(" ".join(str(exc).split()))[:300]
                self._attempt_failed(f"cannot write to the database ({type(exc).__name__}: "
                                     f"{message})")
                return False
            self._done += len(self._pending)
            self._written.inc(len(self._pending))
            self._pending = []
            if self.problem is not None:
                log.warning("prediction log: writing again (%d buffered)", self.buffered)
                self.problem = None
                self._degraded.set(0)
            with self._progress:
                self._progress.notify_all()
        return False

    def _take(self) -> list[tuple]:
        rows: list[tuple] = []
        queue = self._queue
        while queue and len(rows) < self.batch_rows:
            maker, answer, columns, at = queue.popleft()
            n = len(answer.ids)
            self._taken += n
            try:
                rows.extend(maker.rows(answer, columns, at))
            except Exception:  # a bug here must not stop the log; the rows are counted
                log.exception("prediction log: %d rows could not be encoded", n)
                self._done += n
                self._lose(n, "unencodable")
        return rows

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
        if self.problem is not None and not self._pending and not self._queue:
            log.warning("prediction log: the database answers again")
            self.problem = None
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
