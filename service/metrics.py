"""The Prometheus metrics the service exports; their names are a contract with the alert
rules and dashboards, so they are spelled out here once."""
from __future__ import annotations

from time import perf_counter
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

# `*_created` series double the scrape size and no rule or dashboard reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class Metrics:
    """One registry per app, so two apps in one process never share counts."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("gitops_ml_requests_total", "HTTP requests served.",
                                ["route", "method", "status"], registry=r)
        self.request_duration = Histogram(
            "gitops_ml_request_duration_seconds", "Time to answer a request.", ["route"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("gitops_ml_predictions_total", "Predicted rows by class.",
                                   ["model", "version", "class"], registry=r)
        self.probability = Histogram(
            "gitops_ml_prediction_probability", "Predicted probability of the positive class.",
            ["model", "version"], buckets=PROBABILITY_BUCKETS, registry=r)
        self.model_info = Gauge("gitops_ml_model_info", "The model in service (value 1).",
                                ["model", "version", "sha256", "environment"], registry=r)
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
        self.feedback = Counter("gitops_ml_feedback_total", "Feedback labels received.",
                                ["outcome"], registry=r)
        self.feedback_accuracy = Gauge("gitops_ml_feedback_accuracy",
                                       "Accuracy over the recent feedback window.", registry=r)
        self.shadow_agreement = Gauge("gitops_ml_shadow_agreement",
                                      "Share of recent rows where the shadow model agrees.",
                                      registry=r)
        self.shadow_predictions = Counter("gitops_ml_shadow_predictions_total",
                                          "Rows predicted by the shadow model.", ["agreement"],
                                          registry=r)
        self.model_ready.set(0)
        # Unknown until measured: NaN makes every alert comparison false instead of firing.
        self.feedback_accuracy.set(float("nan"))
        self.shadow_agreement.set(float("nan"))


def count_requests(asgi_app, metrics: Metrics, routes: frozenset[str]):
    """Wrap an ASGI app so every answer (404s and 413s included) is counted and timed.

    Unknown paths share the route label "other", so scanners cannot grow the label set.
    """
    children: dict[tuple[str, str, int], Any] = {}
    durations: dict[str, Any] = {}

    async def counted(scope, receive, send):
        if scope["type"] != "http":
            return await asgi_app(scope, receive, send)
        path = scope["path"]
        route = path if path in routes else "/schema" if path.startswith("/schema") else "other"
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
            timer = durations.get(route)
            if timer is None:
                timer = durations[route] = metrics.request_duration.labels(route=route)
            timer.observe(elapsed)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            key = (route, method, status)
            counter = children.get(key)
            if counter is None:
                counter = children[key] = metrics.requests.labels(
                    route=route, method=method, status=str(status))
            counter.inc()

    return counted
