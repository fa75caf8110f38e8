"""The Prometheus metrics the service exports; their names are a contract with the alert
rules and dashboards, so they are spelled out here once."""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from time import perf_counter
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.registry import Collector

# `*_created` series double the scrape size and no rule or dashboard reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
# The ASGI scope key where a prediction handler notes the A/B variant that answered.
VARIANT_KEY = "gitops_ml.variant"


class BatchHistogram(Collector):
    """A histogram that takes a whole batch of observations in one numpy call.

    prometheus_client's Histogram takes a lock per observation; a 100-row batch then spends
    more time observing than predicting. Only the event loop observes, so no lock is needed."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str],
                 buckets: Iterable[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.bounds = np.asarray(sorted(buckets), dtype=float)
        self._children: dict[tuple[str, ...], _BatchChild] = {}
        registry.register(self)

    def labels(self, **labels: str) -> _BatchChild:
        key = tuple(labels[n] for n in self.labelnames)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _BatchChild(self.bounds)
        return child

    def remove(self, *values: str) -> None:
        """Drop one labelled child (as prometheus_client's `remove`)."""
        self._children.pop(tuple(values), None)

    def label_sets(self) -> list[tuple[str, ...]]:
        """The label values of every child."""
        return list(self._children)

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            cumulative = np.cumsum(child.counts)
            buckets = [(_bound(b), float(c)) for b, c in zip(self.bounds, cumulative)]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric(list(key), buckets, child.sum)
        yield family


def _bound(value: float) -> str:
    return repr(float(value))


class _BatchChild:
    __slots__ = ("bounds", "counts", "sum", "_bounds")

    def __init__(self, bounds: np.ndarray) -> None:
        self.bounds = bounds
        self._bounds = bounds.tolist()
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one value (a single row: bisect is cheaper than numpy's call overhead)."""
        if math.isfinite(value):
            self.counts[bisect_left(self._bounds, value)] += 1
            self.sum += value

    def observe_many(self, values: np.ndarray) -> None:
        """Count every finite value of `values` (NaN and infinities are left out)."""
        values = values[np.isfinite(values)]
        # side="left": a value equal to a bound falls in that bound's bucket (le).
        self.counts += np.bincount(np.searchsorted(self.bounds, values, side="left"),
                                   minlength=len(self.counts))
        self.sum += float(values.sum())


class Metrics:
    """One registry per app, so two apps in one process never share counts.

    `variant` names the A/B variant (`a`, `b`; `mixed` for a request both answered) and is ""
    outside a test, which Prometheus reads as no label at all."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("gitops_ml_requests_total", "HTTP requests served.",
                                ["route", "method", "status", "variant"], registry=r)
        self.request_duration = Histogram(
            "gitops_ml_request_duration_seconds", "Time to answer a request.", ["route", "variant"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("gitops_ml_predictions_total", "Predicted rows by class.",
                                   ["model", "version", "class", "variant"], registry=r)
        self.probability = BatchHistogram(
            "gitops_ml_prediction_probability",
            "Binary classifiers: predicted probability of the positive class.",
            ["model", "version", "variant"], PROBABILITY_BUCKETS, r)
        # Regression: count and sum give the mean prediction; its distribution against the
        # training reference is gitops_ml_prediction_drift.
        self.prediction_value = BatchHistogram(
            "gitops_ml_prediction_value", "Regression: predicted values.",
            ["model", "version"], (), r)
        self.prediction_drift = Gauge(
            "gitops_ml_prediction_drift",
            "Drift of the model's answers over the recent window against its answers on the "
            "training data (test=ks: binary probability or regression value; test=psi: "
            "multiclass predicted class shares).", ["test"], registry=r)
        self.model_info = Gauge("gitops_ml_model_info",
                                "The model in service, one series per A/B variant (value 1).",
                                ["model", "version", "sha256", "environment", "variant"],
                                registry=r)
        self.ab_split = Gauge("gitops_ml_ab_split",
                              "During an A/B test: each variant's pinned share of the units.",
                              ["variant"], registry=r)
        self.model_ready = Gauge("gitops_ml_model_ready",
                                 "1 while a verified model serves, else 0.", registry=r)
        self.load_failures = Counter("gitops_ml_model_load_failures_total",
                                     "Pinned models refused or failed to load, by reason.",
                                     ["reason"], registry=r)
        self.feature_drift = Gauge(
            "gitops_ml_feature_drift",
            "Drift of a feature over the recent window against the training reference "
            "(test=ks: Kolmogorov-Smirnov statistic; test=psi: population stability index).",
            ["feature", "test"], registry=r)
        self.drift_window_rows = Gauge("gitops_ml_drift_window_rows",
                                       "Rows in the drift window.", registry=r)
        self.feedback = Counter(
            "gitops_ml_feedback_total",
            "Feedback received (outcome: correct or incorrect for classifiers, scored for "
            "regression).", ["outcome", "variant"], registry=r)
        self.feedback_accuracy = Gauge(
            "gitops_ml_feedback_accuracy",
            "Classifiers: accuracy of the version in service over the newest labels of its "
            "model (FEEDBACK_WINDOW_ROWS), from the prediction log: every replica agrees.",
            ["variant"], registry=r)
        self.feedback_mae = Gauge(
            "gitops_ml_feedback_mae",
            "Regression: mean absolute error of the version in service over the newest labels "
            "of its model, from the prediction log.", ["variant"], registry=r)
        self.feedback_quality = Gauge(
            "gitops_ml_feedback_quality",
            "Per version of the model in service, over the newest labels of the model: "
            "measure=accuracy (classifiers), mae (regression) or labelled (labels counted).",
            ["version", "measure"], registry=r)
        self.log_written = Counter("gitops_ml_prediction_log_written_total",
                                   "Predictions written to the prediction log.", registry=r)
        self.log_dropped = Counter(
            "gitops_ml_prediction_log_dropped_total",
            "Predictions answered but never logged (reason: buffer_full, shutdown, "
            "unencodable).", ["reason"], registry=r)
        self.log_write_failures = Counter(
            "gitops_ml_prediction_log_write_failures_total",
            "Attempts to reach or write the prediction log's database that failed.", registry=r)
        self.log_buffered = Gauge("gitops_ml_prediction_log_buffered_rows",
                                  "Predictions waiting in the buffer to be written.", registry=r)
        self.log_degraded = Gauge(
            "gitops_ml_prediction_log_degraded",
            "1 while the prediction log cannot be written (database down or schema behind).",
            registry=r)
        self.model_test_metric = Gauge(
            "gitops_ml_model_test_metric",
            "The pinned model's test metrics as its pin records them (what the gates saw).",
            ["metric", "variant"], registry=r)
        self.shadow_agreement = Gauge("gitops_ml_shadow_agreement",
                                      "Share of recent rows where the shadow model agrees.",
                                      registry=r)
        self.shadow_predictions = Counter("gitops_ml_shadow_predictions_total",
                                          "Rows predicted by the shadow model.", ["agreement"],
                                          registry=r)
        # Live slices (service/live_slices.py): the version in service, per declared slice
        # value of its signature, over the newest labels of the model; and the rules they are
        # judged by. `variant` is "" outside an A/B test.
        self.live_slice_metric = Gauge(
            "gitops_ml_live_slice_metric",
            "Live value of a slice metric (accuracy or MAE, and each metric a slice floor or "
            "ceiling names) per declared slice, from the prediction log.",
            ["metric", "column", "value", "variant"], registry=r)
        self.live_slice_rows = Gauge(
            "gitops_ml_live_slice_rows",
            "Labelled predictions per declared slice among the newest labels of the model.",
            ["column", "value", "variant"], registry=r)
        self.slice_floor = Gauge("gitops_ml_slice_floor",
                                 "The declared floor of a slice metric (higher is better).",
                                 ["metric", "column", "variant"], registry=r)
        self.slice_ceiling = Gauge("gitops_ml_slice_ceiling",
                                   "The declared ceiling of a slice metric (lower is better).",
                                   ["metric", "column", "variant"], registry=r)
        self.slice_min_rows = Gauge(
            "gitops_ml_slice_min_rows",
            "Labelled rows a slice needs before its floor or ceiling is judged.",
            ["variant"], registry=r)
        self.model_ready.set(0)
        # Unknown until measured: NaN makes every alert comparison false instead of firing.
        self.feedback_accuracy.labels(variant="").set(float("nan"))
        self.feedback_mae.labels(variant="").set(float("nan"))
        self.shadow_agreement.set(float("nan"))
        # The request counters' children by label values (count_requests): a cache that
        # forget_variants empties along with the series it removes.
        self.request_children: dict[tuple, Any] = {}
        self.duration_children: dict[tuple, Any] = {}

    def forget_variants(self, serving: set[tuple[int, str]]) -> None:
        """Remove the series of A/B variants that no longer serve: `serving` holds the
        (version, variant) pairs in service now (variant "" outside a test). Series outside
        a test (variant "") are kept; the live quality gauges keep only what serves."""
        pairs = {(str(version), variant) for version, variant in serving}
        names = {variant for _, variant in serving}
        stale = {"a", "b"} - names
        for metric, labelnames in ((self.requests, ("route", "method", "status", "variant")),
                                   (self.request_duration, ("route", "variant")),
                                   (self.feedback, ("outcome", "variant"))):
            for values in _label_sets(metric, labelnames):
                if values[-1] in stale:
                    metric.remove(*values)
        for metric, labelnames in ((self.predictions, ("model", "version", "class", "variant")),
                                   (self.probability, ("model", "version", "variant"))):
            sets = metric.label_sets() if isinstance(metric, BatchHistogram) \
                else _label_sets(metric, labelnames)
            for values in sets:
                version, variant = values[1], values[-1]
                if variant and (version, variant) not in pairs:
                    metric.remove(*values)
        for gauge in (self.feedback_accuracy, self.feedback_mae):
            held = {values[0] for values in _label_sets(gauge, ("variant",))}
            for variant in held - names:
                gauge.remove(variant)
            for variant in names - held:  # unknown until measured
                gauge.labels(variant=variant).set(float("nan"))
        self.request_children.clear()
        self.duration_children.clear()


def _label_sets(metric: Any, labelnames: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The label values of every child of a prometheus_client metric (from its samples)."""
    return {tuple(sample.labels[n] for n in labelnames)
            for family in metric.collect() for sample in family.samples}


def count_requests(asgi_app, metrics: Metrics, routes: frozenset[str]):
    """Wrap an ASGI app so every answer (404s and 413s included) is counted and timed.

    The route label is the matched path template (`/v2/models/{name}/infer`), so a path
    parameter never grows the label set; unknown paths share "other".
    """
    children = metrics.request_children
    durations = metrics.duration_children

    async def counted(scope, receive, send):
        if scope["type"] != "http":
            return await asgi_app(scope, receive, send)
        status = 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await asgi_app(scope, receive, send_and_note)
        finally:
            elapsed = perf_counter() - start
            # Litestar notes the matched template in the scope while routing.
            route = scope.get("path_template")
            if route not in routes:
                route = "/schema" if scope["path"].startswith("/schema") else "other"
            # A prediction handler notes the variant that answered in the scope (A/B tests).
            variant = scope.get(VARIANT_KEY, "")
            timer = durations.get((route, variant))
            if timer is None:
                timer = durations[(route, variant)] = metrics.request_duration.labels(
                    route=route, variant=variant)
            timer.observe(elapsed)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            key = (route, method, status, variant)
            counter = children.get(key)
            if counter is None:
                counter = children[key] = metrics.requests.labels(
                    route=route, method=method, status=str(status), variant=variant)
            counter.inc()

    return counted
