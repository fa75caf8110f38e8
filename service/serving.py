"""What is in service, and how it follows the pin file.

The pin is polled; when it names another version, that version is fetched, verified and
loaded in a worker thread while the current one keeps answering, then swapped in with one
assignment. Requests read `state.serving` once, so a request in flight finishes on the model
it started with. A pin that cannot be honoured never replaces a model already in service.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contracts.pin import ModelRef, Pin
from contracts.prediction_log.store import PredictionLog
from service import fetch
from service import model as model_loader
from service.ab import ABRouter, compatible
from service.drift import DriftMonitor
from service.errors import LoadError
from service.feedback import FeedbackDesk
from service.inference import Coalescer, Predictor
from service.live_slices import LiveSlices
from service.logbook import Logbook
from service.metrics import Metrics
from service.model import LoadedModel
from service.redact import Redactor
from service.settings import Settings
from service.shadow import ShadowRunner
from service.validation import RequestCodec

log = logging.getLogger("service.serving")
RETRY_SECONDS = 30.0
SHUTDOWN_FLUSH_SECONDS = 15.0  # within Kubernetes' default 30 s grace, after uvicorn's 10 s
DATABASE_TIMEOUT_SECONDS = 5  # a PostgreSQL that does not answer is "down", not a hung request
QUALITY_WAIT_SECONDS = 2.0  # /metrics answers with the last figures rather than wait longer
QUALITY_WARN_SECONDS = 60.0
GIL_SWITCH_SECONDS = 0.0001
_MISSING = ("missing",)


@dataclass(eq=False)
class Serving:
    """Everything that changes together when a model is swapped in."""

    model: LoadedModel
    codec: RequestCodec
    predictor: Predictor
    environment: str
    shadow_failure: Failure | None = None
    ab: ABRouter | None = None  # the pin's A/B test: variant b and the routing rule
    # Outside an A/B test: the predictor behind concurrent requests' shared model calls.
    coalescer: Coalescer | None = None

    def variants(self) -> dict[str, LoadedModel]:
        """The models in service by variant: {"a", "b"} during an A/B test, else {"": model}."""
        if self.ab is None:
            return {"": self.model}
        return {"a": self.model, "b": self.ab.model_b}

    @property
    def drift(self) -> DriftMonitor | None:
        return self.predictor.drift

    @property
    def shadow(self) -> ShadowRunner | None:
        return self.predictor.shadow


@dataclass
class Failure:
    """The newest refusal to load what the pin says."""

    reason: str
    message: str
    uri: str | None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "uri": self.uri,
                "at": self.at.isoformat()}


class ServiceState:
    """The model in service plus the pin it should match; shared by every request."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.redact = Redactor([settings.tracking_uri, settings.database_url])
        self.logbook: Logbook | None = None
        self.feedback: FeedbackDesk | None = None
        self.live_slices: LiveSlices | None = None
        if settings.prediction_log and settings.database_url:
            store = PredictionLog(with_timeout(settings.database_url))
            self.logbook = Logbook(store, metrics, settings.log_buffer_rows,
                                   settings.log_batch_rows, settings.log_flush_seconds,
                                   self.redact)
            self.feedback = FeedbackDesk(store, self.logbook, settings.feedback_window_rows,
                                         self.redact)
            self.live_slices = LiveSlices(store, metrics, settings.feedback_window_rows,
                                          self.redact)
        self._refreshing: asyncio.Task | None = None
        self._quality_warned = -QUALITY_WARN_SECONDS
        self.serving: Serving | None = None
        self.pin: Pin | None = None  # the newest pin read that parsed
        self.failure: Failure | None = None
        self.loading: str | None = None
        self._pin_text: str | None = None  # a pin is small: compare it whole
        self._pin_stat: tuple | None = None
        self._last_attempt = 0.0
        self._in_sync = False
        # One reading of the pin at a time: a second caller waits for the load under way
        # instead of returning early because the text is already the one being loaded.
        self._sync_lock = asyncio.Lock()
        self.on_swap: Callable[[], None] | None = None
        # The model's own thread: its compute (onnxruntime, without the GIL) overlaps the
        # loop's work on the next requests. One call at a time, in arrival order.
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")

    # ---- what /ready and /v1/model report -------------------------------------------------
    @property
    def in_sync(self) -> bool:
        """True when what serves is exactly what the pin names (including 'nothing')."""
        return self._in_sync

    def not_ready_reason(self) -> str | None:
        if self.serving is not None:
            return None
        if self.pin is not None and self.pin.model is None and self.failure is None:
            return f"nothing promoted to {self.pin.environment}"
        if self.failure is not None:
            return f"{self.failure.reason}: {self.failure.message}"
        if self.loading:
            return f"loading {self.loading}"
        return "no pin read yet"

    # ---- following the pin ----------------------------------------------------------------
    async def follow_pin(self) -> None:
        """Poll the pin file for as long as the app runs (once if polling is disabled)."""
        while True:
            try:
                await self.sync_with_pin()
            except Exception:  # the loop must survive anything; the reason is already recorded
                log.exception("unexpected error while following the pin")
            if self.settings.pin_poll_seconds <= 0:
                return
            await asyncio.sleep(self.settings.pin_poll_seconds)

    async def sync_with_pin(self) -> None:
        """Read the pin; if it names something else than what serves, load and swap it in.
        Returns once what it read is applied (or refused), whoever started the load."""
        async with self._sync_lock:
            await self._sync_with_pin()

    async def _sync_with_pin(self) -> None:
        path = self.settings.model_pin
        retry = self.failure is not None and time.monotonic() - self._last_attempt > RETRY_SECONDS
        try:
            st = path.stat()
        except OSError as exc:
            if self._pin_stat != _MISSING or retry:  # report once, not on every poll
                self._pin_stat = _MISSING
                self._pin_text = None
                self._fail(LoadError("invalid_pin",
                                     f"cannot read pin file {path}: {exc.strerror}"), None)
            return
        stat = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stat == self._pin_stat and not retry:
            return
        self._pin_stat = stat
        try:
            text = path.read_text()
        except OSError as exc:
            self._fail(LoadError("invalid_pin", f"cannot read pin file {path}: {exc}"), None)
            return
        if text == self._pin_text and not retry:
            return
        self._pin_text = text
        try:
            pin = Pin.parse(text, source=str(path))
        except ValueError as exc:
            self._fail(LoadError("invalid_pin", str(exc).replace("\n", "; ")), None)
            return
        self.pin = pin
        await self._apply(pin)

    async def _apply(self, pin: Pin) -> None:
        current = self.serving
        if pin.model is None:
            if current is not None:
                log.warning("pin of %s names no model: taking %s out of service",
                            pin.environment, current.model.ref.uri)
            self._swap(None)
            self.failure = None
            self._in_sync = True
            return
        self.loading = pin.model.uri
        self._last_attempt = time.monotonic()
        try:
            new = await asyncio.to_thread(self._build, pin, current)
        except LoadError as exc:
            self._fail(exc, pin.model.uri)
            return
        finally:
            self.loading = None
        self._swap(new)
        self.failure = new.shadow_failure
        self._in_sync = True
        log.info("serving %s (sha256 %s, %s) for %s", pin.model.uri, pin.model.sha256[:12],
                 new.model.runtime, pin.environment)

    def _fail(self, exc: LoadError, uri: str | None) -> None:
        self.failure = Failure(exc.reason, self.redact(exc.message), uri)
        self._in_sync = False
        self._last_attempt = time.monotonic()
        self.metrics.load_failures.labels(reason=exc.reason).inc()
        keep = f"; still serving {self.serving.model.ref.uri}" if self.serving else ""
        log.error("refused %s: %s%s", uri or "the pin", self.failure.message, keep)

    def _load(self, ref: ModelRef, pin: Pin) -> LoadedModel:
        path = fetch.fetch_verified(ref, self.settings.tracking_uri, self.settings.cache_dir)
        return model_loader.load(path, ref, pin)

    def _build(self, pin: Pin, current: Serving | None) -> Serving:
        """Runs in a worker thread: everything slow happens here, off the event loop."""
        assert pin.model is not None
        s = self.settings
        # A model already in service is not loaded again (a split that changes, a test that
        # starts or ends): same reference, same verified bytes.
        loaded = list(current.variants().values()) if current is not None else []

        def in_service(ref: ModelRef) -> LoadedModel | None:
            return next((m for m in loaded if m.ref == ref), None)

        primary = in_service(pin.model) or self._load(pin.model, pin)
        challenger = None
        if pin.ab is not None:
            ref = pin.ab.b.model
            challenger = in_service(ref)
            if challenger is None:
                try:
                    challenger = self._load(ref, pin)
                except LoadError as exc:
                    raise LoadError(exc.reason, f"A/B variant b: {exc.message}") from None
            if why := compatible(primary, challenger):
                raise LoadError("ab_mismatch", f"the A/B test cannot run: {why}")
        shadow = None
        shadow_failure = None
        if pin.shadow is not None:
            try:
                if current is not None and current.shadow is not None \
                        and current.shadow.model.ref == pin.shadow:
                    shadow = current.shadow
                else:
                    shadow = ShadowRunner(self._load(pin.shadow, pin), self.metrics,
                                          s.shadow_queue_size)
            except LoadError as exc:
                # The primary is what users get; a bad shadow is reported, not fatal.
                self.metrics.load_failures.labels(reason=exc.reason).inc()
                shadow_failure = Failure(exc.reason, self.redact(f"shadow: {exc.message}"),
                                         pin.shadow.uri)
        # Same bytes; only the promotion record may differ (set once nothing can fail).
        for model in (primary, challenger):
            if model is not None:
                model.pin = pin
        unit_field = pin.ab.unit.field if pin.ab is not None else None
        same = current is not None and current.model is primary
        if same and current.codec.unit_field == unit_field:
            codec = current.codec  # same model, same unit: same rules
        else:
            codec = RequestCodec(primary.signature, s.max_batch_rows, unit_field)
        if same:
            drift = current.drift  # same model: same window (over every variant's records)
        else:
            drift = (DriftMonitor(primary.signature, primary.reference, s.drift_window_rows,
                                  s.drift_min_rows) if primary.reference else None)
        variant = "a" if challenger is not None else None
        predictor = Predictor(primary, self.metrics, self.logbook, pin.environment, drift,
                              shadow, variant)
        ab = None
        if challenger is not None:
            ab = ABRouter(pin, predictor, Predictor(challenger, self.metrics, self.logbook,
                                                    pin.environment, drift, None, "b"), codec)
        coalescer = (Coalescer(predictor, s.coalesce_rows, self.model_thread,
                               s.model_thread_rows) if ab is None else None)
        return Serving(model=primary, codec=codec, predictor=predictor,
                       environment=pin.environment, shadow_failure=shadow_failure, ab=ab,
                       coalescer=coalescer)

    def _swap(self, new: Serving | None) -> None:
        """Put `new` in service with one assignment and bring the metrics along."""
        old = self.serving
        m = self.metrics
        self.serving = new
        # Everything loaded so far (libraries, the model) lives as long as the process: moving
        # it out of the collector's reach keeps full collections from pausing requests.
        gc.freeze()
        variants = new.variants() if new is not None else {}
        m.model_info.clear()
        for variant, model in variants.items():
            ref = model.ref
            m.model_info.labels(model=ref.name, version=str(ref.version), sha256=ref.sha256,
                                environment=new.environment, variant=variant).set(1)
        m.model_ready.set(1 if new is not None else 0)
        m.model_test_metric.clear()
        m.ab_split.clear()
        if new is not None:
            pin = new.model.pin
            tested = {"": pin.metrics} if pin.ab is None else {"a": pin.metrics,
                                                              "b": pin.ab.b.metrics}
            for variant, measured in tested.items():
                for name, value in measured.items():
                    m.model_test_metric.labels(metric=name, variant=variant).set(value)
            if pin.ab is not None:
                for variant, share in pin.ab.split.items():
                    m.ab_split.labels(variant=variant).set(share / 100)
        # A test that ended (or another pair of versions) leaves no series of its variants.
        m.forget_variants({(model.ref.version, variant) for variant, model in variants.items()}
                          or {(0, "")})
        if old is not None and (new is None or old.drift is not new.drift):
            m.feature_drift.clear()
            m.prediction_drift.clear()
            m.drift_window_rows.set(0)
        if old is not None and old.shadow is not None and \
                (new is None or new.shadow is not old.shadow):
            old.shadow.stop()
        if new is None or new.shadow is None:
            m.shadow_agreement.set(float("nan"))
        if self.on_swap is not None:
            self.on_swap()

    def start(self) -> None:
        """Start background workers (the app's startup)."""
        if self.settings.model_thread_rows:
            # The model's thread needs the GIL back the moment onnxruntime returns; at the
            # default 5 ms it waited behind the loop and sat idle (a third less throughput).
            sys.setswitchinterval(GIL_SWITCH_SECONDS)
        if self.logbook is not None:
            self.logbook.start()

    def shutdown(self) -> None:
        """Stop background workers, writing what the prediction log still buffers (blocks)."""
        if self.serving is not None and self.serving.shadow is not None:
            self.serving.shadow.stop()
        self.model_thread.shutdown(wait=True)
        if self.logbook is not None:
            self.logbook.close(SHUTDOWN_FLUSH_SECONDS)

    def logging_status(self) -> dict[str, Any]:
        """The prediction log as /ready reports it: off, ok or degraded (and why)."""
        if self.logbook is None:
            return {"state": "off", "reason": "PREDICTION_LOG=off", "buffered": 0}
        return self.logbook.status()

    async def refresh_quality(self) -> None:
        """Live quality of the model in service from the database, at most every
        QUALITY_REFRESH_SECONDS; the last figures stay when the database is slow or down."""
        serving, desk = self.serving, self.feedback
        if serving is None or desk is None:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(asyncio.to_thread(
                desk.refresh, serving.model.ref.name, self.settings.quality_refresh_seconds))
        try:
            quality = await asyncio.wait_for(asyncio.shield(self._refreshing),
                                             QUALITY_WAIT_SECONDS)
        except Exception as exc:  # timeout or any driver's error: keep the last figures
            now = time.monotonic()
            if now - self._quality_warned >= QUALITY_WARN_SECONDS:  # once a minute at most
                self._quality_warned = now
                log.warning("live quality not refreshed (the last figures stay): %s",
                            self.redact(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300])
            return
        self._set_quality(serving, quality)

    async def refresh_slices(self) -> None:
        """Live metrics per declared slice of the model in service (service/live_slices.py),
        on the cadence of live quality."""
        if self.live_slices is not None:
            await self.live_slices.refresh(self.serving, self.settings.quality_refresh_seconds)

    def _set_quality(self, serving: Serving, quality: dict[int, dict[str, float]]) -> None:
        if serving is not self.serving:
            return  # swapped while reading: the next scrape reports what serves now
        m = self.metrics
        m.feedback_quality.clear()
        for version, measures in quality.items():
            for measure, value in measures.items():
                m.feedback_quality.labels(version=str(version), measure=measure).set(value)
        by_variant = self.feedback.variant_quality if self.feedback is not None else {}
        for variant, model in serving.variants().items():
            # During a test each variant's own labels; outside one the version's, whatever
            # variant answered them.
            mine = by_variant.get((model.ref.version, variant), {}) if variant \
                else quality.get(model.ref.version, {})
            m.feedback_accuracy.labels(variant=variant).set(mine.get("accuracy", float("nan")))
            m.feedback_mae.labels(variant=variant).set(mine.get("mae", float("nan")))

    def refresh_gauges(self) -> None:
        """Compute the window statistics right before metrics are read."""
        serving = self.serving
        m = self.metrics
        if self.logbook is not None:
            self.logbook.refresh_gauges()
        if serving is None or serving.drift is None:
            m.drift_window_rows.set(0)
            return
        m.drift_window_rows.set(serving.drift.rows)
        for (feature, test), value in serving.drift.statistics().items():
            m.feature_drift.labels(feature=feature, test=test).set(value)
        if answer := serving.drift.answer_statistic():
            m.prediction_drift.labels(test=answer[0]).set(answer[1])

    def describe_failure(self) -> dict[str, Any] | None:
        return self.failure.as_dict() if self.failure else None



def with_timeout(url: str) -> str:
    """`url` with a connect timeout for PostgreSQL (unless it sets one): a server that does not
    answer fails a write or a label in seconds instead of hanging on the network's timeout."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgres") or "connect_timeout" in parsed.query:
        return url
    return parsed.update_query_dict({"connect_timeout": str(DATABASE_TIMEOUT_SECONDS)}) \
        .render_as_string(hide_password=False)
