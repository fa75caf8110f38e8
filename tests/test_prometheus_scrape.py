"""A real Prometheus scrapes the real service, and PromQL sees traffic and drift."""
from __future__ import annotations

import pytest
from servers import Prometheus, wait_for
from service_fixtures import start_service, write_pin

pytest_plugins = ("service_fixtures",)
pytestmark = pytest.mark.slow


@pytest.fixture()
def prometheus(tmp_path):
    """Start Prometheus on 127.0.0.1 scraping one target; returns once it scraped it."""
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        server = Prometheus.start(tmp_path / "prometheus", [target])
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_prometheus_sees_request_rate_and_drift(tmp_path, served_registry, prometheus):
    reg = served_registry
    pin = write_pin(tmp_path / "model.yaml", reg, 1)
    service = start_service(tmp_path, reg, pin, DRIFT_MIN_ROWS="50", DRIFT_WINDOW_ROWS="500")
    try:
        service.wait_ready(1)
        prom = prometheus(service.url.removeprefix("http://"))

        def traffic_seen():
            service.post("/v1/predict", json=reg.records(100, start=0))
            for record in reg.records(5, start=200):
                service.post("/v1/predict", json=record)
            rate = prom.query('sum(rate(gitops_ml_requests_total{route="/v1/predict"}[5s]))')
            full = service.metric("gitops_ml_drift_window_rows") == 500
            return rate if full and rate and float(rate[0]["value"][1]) > 0 else None

        wait_for("a request rate in Prometheus and a full drift window", traffic_seen, 60,
                 every=0.2)
        # Traffic has stopped, so the service's own drift value no longer moves: Prometheus
        # must end up holding exactly that number (a scrape, not a made-up series).
        own = service.metric("gitops_ml_feature_drift", feature="tenure", test="ks")
        assert own is not None

        def scraped_drift():
            drift = prom.query('gitops_ml_feature_drift{feature="tenure",test="ks"}')
            return drift and float(drift[0]["value"][1]) == own

        wait_for("Prometheus to scrape the drift value", scraped_drift, 30, every=0.2)
        info = prom.query("gitops_ml_model_info")
        assert info and info[0]["metric"]["version"] == "1"
        assert info[0]["metric"]["sha256"] == reg.digests[1]
        assert prom.query("gitops_ml_model_ready")[0]["value"][1] == "1"
        quality = {r["metric"]["metric"]: float(r["value"][1])
                   for r in prom.query("gitops_ml_model_test_metric")}
        assert quality == reg.tasks["binary"].metrics
    finally:
        service.stop()
