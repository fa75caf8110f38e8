"""A real Prometheus scrapes the real service, and PromQL sees traffic and drift."""
from __future__ import annotations

import time

import pytest
from servers import Prometheus
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
        deadline = time.monotonic() + 60
        rate = drift = None
        while time.monotonic() < deadline and not (rate and drift):
            service.post("/v1/predict", json=reg.records(100, start=0))
            for record in reg.records(5, start=200):
                service.post("/v1/predict", json=record)
            rate = prom.query('sum(rate(gitops_ml_requests_total{route="/v1/predict"}[5s]))')
            rate = rate if rate and float(rate[0]["value"][1]) > 0 else None
            drift = prom.query('gitops_ml_feature_drift{feature="tenure",test="ks"}')
            time.sleep(0.5)
        assert rate, f"no request rate in Prometheus\n{prom.logs()}"
        assert drift, f"no drift series in Prometheus\n{prom.logs()}"
        assert 0.0 <= float(drift[0]["value"][1]) <= 1.0
        info = prom.query("gitops_ml_model_info")
        assert info and info[0]["metric"]["version"] == "1"
        assert info[0]["metric"]["sha256"] == reg.digests[1]
        assert prom.query("gitops_ml_model_ready")[0]["value"][1] == "1"
    finally:
        service.stop()
