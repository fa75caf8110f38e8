"""Live metrics per declared slice of the model in service, from the prediction log, as gauges.

Read the way live accuracy is: when /metrics is asked, at most every QUALITY_REFRESH_SECONDS,
in a worker thread (one bounded query over the model's newest FEEDBACK_WINDOW_ROWS labels, see
contracts/prediction_log/live_slices.py); /metrics waits QUALITY_WAIT_SECONDS at most and
otherwise shows the last figures. The rules an alert compares them with (floors, ceilings, the
minimum rows) come from the signature of the verified bundle, so they are the rules the
version was gated by, and change exactly when the version in service does.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from contracts.prediction_log.live_slices import SliceFigure, live_slices
from contracts.prediction_log.store import PredictionLog
from service.metrics import Metrics
from service.model import LoadedModel

log = logging.getLogger("service.live_slices")
WAIT_SECONDS = 2.0  # as live accuracy: /metrics answers with the last figures rather than wait
WARN_SECONDS = 60.0


def served(serving: Any) -> dict[str, LoadedModel]:
    """The models in service by variant ("" outside an A/B test, "a" and "b" during one)."""
    return serving.variants() if serving is not None else {}


class LiveSlices:
    """The slice gauges of the models in service, refreshed from the prediction log."""

    def __init__(self, store: PredictionLog, metrics: Metrics, window: int,
                 redact: Callable[[str], str] = str) -> None:
        self.store = store
        self.metrics = metrics
        self.window = window
        self._redact = redact
        self._shown: dict[str, LoadedModel] = {}  # whose rules the gauges show, by variant
        self._read_for: dict[str, LoadedModel] = {}  # whose figures the last read holds
        self._read_at = -math.inf
        self._reading: asyncio.Task | None = None
        self._warned = -WARN_SECONDS

    async def refresh(self, serving: Any, max_age: float) -> None:
        """Show the rules of what serves now, and its figures read at most `max_age` s ago;
        the last figures stay when the database is slow or down."""
        models = served(serving)
        if models != self._shown:
            self._show_rules(models)
        watched = {v: m for v, m in models.items() if m.signature.slice_values()}
        if not watched:
            return
        stale = watched != self._read_for or time.monotonic() - self._read_at >= max_age
        if stale and (self._reading is None or self._reading.done()):
            environment = serving.environment
            self._reading = asyncio.create_task(asyncio.to_thread(
                self._read, watched, environment))
        if self._reading is None:
            return
        try:
            read_for, found = await asyncio.wait_for(asyncio.shield(self._reading), WAIT_SECONDS)
        except Exception as exc:  # timeout or any driver's error: keep the last figures
            now = time.monotonic()
            if now - self._warned >= WARN_SECONDS:
                self._warned = now
                log.warning("live slices not refreshed (the last figures stay): %s",
                            self._redact(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300])
            return
        if read_for == self._shown:  # a swap since the read began: its figures are not shown
            self._show_figures(found)

    def _read(self, watched: dict[str, LoadedModel], environment: str
              ) -> tuple[dict[str, LoadedModel], dict[str, list[SliceFigure]]]:
        """Runs in a worker thread: one query for every version in service."""
        by_version = live_slices(self.store, {m.ref.version: m.signature
                                              for m in watched.values()},
                                 self.window, environment)
        self._read_for, self._read_at = watched, time.monotonic()
        return watched, {v: by_version.get(m.ref.version, []) for v, m in watched.items()}

    def _show_rules(self, models: dict[str, LoadedModel]) -> None:
        m = self.metrics
        for gauge in (m.slice_floor, m.slice_ceiling, m.slice_min_rows, m.live_slice_metric,
                      m.live_slice_rows):
            gauge.clear()
        self._shown = dict(models)
        for variant, model in models.items():
            rules = model.signature.slices
            columns = model.signature.slice_values()
            if rules is None or not columns:
                continue
            m.slice_min_rows.labels(variant=variant).set(rules.min_rows)
            for column in columns:
                for metric, floor in rules.floors.items():
                    m.slice_floor.labels(metric=metric, column=column, variant=variant).set(floor)
                for metric, ceiling in rules.ceilings.items():
                    m.slice_ceiling.labels(metric=metric, column=column,
                                           variant=variant).set(ceiling)

    def _show_figures(self, found: dict[str, list[SliceFigure]]) -> None:
        m = self.metrics
        m.live_slice_metric.clear()
        m.live_slice_rows.clear()
        for variant, figures in found.items():
            for f in figures:
                m.live_slice_rows.labels(column=f.column, value=f.value,
                                         variant=variant).set(f.rows)
                for metric, value in f.metrics.items():
                    if not math.isnan(value):  # undefined: no series, rather than a NaN one
                        m.live_slice_metric.labels(metric=metric, column=f.column,
                                                   value=f.value, variant=variant).set(value)
