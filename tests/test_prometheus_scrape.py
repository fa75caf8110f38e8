"""A real Prometheus scrapes the real service, and PromQL sees traffic and drift."""
from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest
from service_fixtures import free_port, start_service, write_pin

pytest_plugins = ("service_fixtures",)
pytestmark = pytest.mark.slow


@pytest.fixture()
def prometheus(tmp_path):
    """Start Prometheus on 127.0.0.1 with a generated config; yields (url, config path)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: run `make system-deps` (Debian package)"

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: gitops-ml\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        log = open(tmp_path / "prometheus.log", "wb")
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        started.append((proc, log))
        return f"http://127.0.0.1:{port}"

    started: list = []
    yield start
    for proc, log in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _query(url: str, promql: str) -> list[dict]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def _poll(check, timeout: float, what: str, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{log()}" if log else ""))


def test_prometheus_sees_request_rate_and_drift(tmp_path, served_registry, prometheus):
    reg = served_registry
    pin = write_pin(tmp_path / "model.yaml", reg, 1)
    service = start_service(tmp_path, reg, pin, DRIFT_MIN_ROWS="50", DRIFT_WINDOW_ROWS="500")
    try:
        service.wait_ready(1)
        url = prometheus(service.url.removeprefix("http://"))
        plog = lambda: (tmp_path / "prometheus.log").read_text()

        def scraped():
            targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]
            return any(t["health"] == "up" for t in targets["activeTargets"])

        _poll(scraped, 60, "the first successful scrape", plog)
        deadline = time.monotonic() + 60
        rate = drift = None
        while time.monotonic() < deadline and not (rate and drift):
            service.post("/v1/predict", json=reg.records(100, start=0))
            for record in reg.records(5, start=200):
                service.post("/v1/predict", json=record)
            rate = _query(url, 'sum(rate(gitops_ml_requests_total{route="/v1/predict"}[5s]))')
            rate = rate if rate and float(rate[0]["value"][1]) > 0 else None
            drift = _query(url, 'gitops_ml_feature_drift{feature="tenure",test="ks"}')
            time.sleep(0.5)
        assert rate, f"no request rate in Prometheus\n{plog()}"
        assert drift, f"no drift series in Prometheus\n{plog()}"
        assert 0.0 <= float(drift[0]["value"][1]) <= 1.0
        info = _query(url, "gitops_ml_model_info")
        assert info and info[0]["metric"]["version"] == "1"
        assert info[0]["metric"]["sha256"] == reg.digests[1]
        assert _query(url, "gitops_ml_model_ready")[0]["value"][1] == "1"
    finally:
        service.stop()
