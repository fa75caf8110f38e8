"""The service follows its pin: swaps under load without a failed request, and refuses
any pin it cannot honour while the model already in service keeps answering."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Self

import httpx
import pytest
from service_fixtures import start_service, write_pin

pytest_plugins = ("service_fixtures",)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def following(tmp_path_factory, served_registry):
    tmp = tmp_path_factory.mktemp("hot-swap")
    pin = write_pin(tmp / "model.yaml", served_registry, 1)
    running = start_service(tmp, served_registry, pin)
    running.wait_ready(1)
    yield running
    running.stop()


class Load:
    """Clients posting single records in a loop; every answer is kept."""

    def __init__(self, url: str, record: dict, clients: int = 4) -> None:
        self.answers: list[tuple[int, int | None]] = []  # (status, version)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(url, record))
                         for _ in range(clients)]

    def _loop(self, url: str, record: dict) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.post("/v1/predict", json=record)
                    answer = (r.status_code, r.json().get("version"))
                except (httpx.HTTPError, ValueError) as exc:  # a dropped connection fails too
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.answers.append(answer)

    def count(self, version: int | None = None) -> int:
        """Answers so far (of `version` only, when given)."""
        with self._lock:
            return sum(1 for _, v in self.answers if version is None or v == version)

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)


def _ensure(service, reg, version: int) -> None:
    write_pin(service.pin, reg, version)
    service.wait_ready(version)
    service.wait_until(lambda: service.get("/ready").json()["in_sync"], 30, "in sync")


def test_a_promotion_swaps_the_model_under_load_without_a_failed_request(following,
                                                                        served_registry):
    reg = served_registry
    _ensure(following, reg, 1)
    record = reg.records(1, start=5)[0]
    with Load(following.url, record) as load:
        following.wait_until(lambda: load.count(1) >= 50, 30, "50 answers from version 1")
        write_pin(following.pin, reg, 2)
        following.wait_until(lambda: following.get("/v1/model").json()["version"] == 2, 60,
                             "version 2 in /v1/model")
        following.wait_until(lambda: load.count(2) >= 50, 30, "50 answers from version 2")
    statuses = Counter(status for status, _ in load.answers)
    versions = Counter(version for _, version in load.answers)
    assert load.errors == []
    assert set(statuses) == {200}, statuses
    assert versions[1] > 0 and versions[2] > 0, versions
    model = following.get("/v1/model").json()
    assert model["sha256"] == reg.digests[2] and model["in_sync"] is True
    assert following.metric("gitops_ml_model_info", version="2") == 1.0
    assert following.metric("gitops_ml_model_info", version="1") is None


@pytest.mark.parametrize("bad, reason", [
    ("tampered", "digest_mismatch"),
    ("corrupt", "corrupt_artifact"),
    ("unregistered", "version_not_found"),
    ("not a pin", "invalid_pin"),
])
def test_a_pin_that_cannot_be_honoured_leaves_the_old_model_serving(following, served_registry,
                                                                    bad, reason):
    reg = served_registry
    _ensure(following, reg, 1)
    failures_before = following.metric("gitops_ml_model_load_failures_total",
                                       reason=reason) or 0
    record = reg.records(1, start=9)[0]
    with Load(following.url, record, clients=2) as load:
        if bad == "not a pin":
            following.pin.write_text("apiVersion: gitops-ml/v1\nkind: ModelPin\nmodel: [\n")
        elif bad == "unregistered":
            text = following.pin.read_text().replace("version: 1", "version: 99")
            following.pin.write_text(text.replace("models:/churn/1", "models:/churn/99"))
        else:
            write_pin(following.pin, reg, reg.roles[bad])
        failure = following.wait_until(
            lambda: (following.get("/ready").json().get("failure") or {}).get("reason") == reason
            and following.get("/ready").json(), 60, f"failure {reason}")
        seen = load.count()
        following.wait_until(lambda: load.count() >= seen + 20, 30, "20 answers after the refusal")
    assert load.errors == [] and {s for s, _ in load.answers} == {200}
    assert {v for _, v in load.answers} == {1}
    ready = following.get("/ready")
    assert ready.status_code == 200  # the verified old model still serves
    assert failure["in_sync"] is False and failure["version"] == 1
    assert failure["failure"]["message"]
    assert following.get("/v1/model").json()["sha256"] == reg.digests[1]
    assert following.metric("gitops_ml_model_load_failures_total", reason=reason) > \
        failures_before
    assert following.metric("gitops_ml_model_ready") == 1.0


def test_a_fixed_pin_recovers_and_an_empty_pin_takes_the_model_out(following, served_registry):
    reg = served_registry
    write_pin(following.pin, reg, reg.roles["tampered"])
    following.wait_until(lambda: following.get("/ready").json().get("failure"), 60, "failure")
    _ensure(following, reg, 2)
    assert following.get("/ready").json()["failure"] is None
    write_pin(following.pin, None, None)  # e.g. a revert of the first promotion
    following.wait_until(lambda: following.get("/ready").status_code == 503, 30, "not ready")
    assert following.get("/ready").json()["reason"] == "nothing promoted to staging"
    assert following.post("/v1/predict", json=reg.records(1)[0]).status_code == 503
    assert following.metric("gitops_ml_model_ready") == 0.0
