"""A real Prometheus scrapes the real service serving the real model, and answers the canary
AnalysisTemplate's queries, the recording and alert rules, and the dashboard's panels."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from monitoring_files import (
    NOT_FROM_SERVICE,
    exprs_of_analysis,
    exprs_of_dashboard,
    exprs_of_rules,
    metric_names,
)
from project import mlops
from servers import NOT_YET, Prometheus, free_port, launch, stop, wait_for

from contracts.pin import Lineage, ModelRef, Pin, Promotion

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "environments" / "monitoring" / "gitops-ml.rules.yml"
DASHBOARD = ROOT / "environments" / "monitoring" / "dashboards" / "gitops-ml.json"
ANALYSIS = ROOT / "environments" / "base" / "canary" / "analysis-template.yaml"
# What the PodMonitor attaches to every series of a canary pod in the cluster.
NAMESPACE, CANARY_HASH = "gitops-ml-production", "6d9f8c7b5"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="prometheus missing: `make system-deps` installs it"),
]


@pytest.fixture(scope="module")
def service(trained_project, tmp_path_factory):
    """The churn model registered from a real `dvc repro`, served by `python -m service`."""
    work = tmp_path_factory.mktemp("served")
    repo = work / "repo"
    shutil.copytree(trained_project, repo, symlinks=True)
    env = {**os.environ}
    env.pop("MLFLOW_TRACKING_URI", None)  # the embedded store inside the copy
    proc = mlops(["register", "churn"], repo)
    found = re.search(r"version (\d+)\s+sha256 ([0-9a-f]{64})\s+run (\w+)", proc.stdout)
    assert found, proc.stdout
    version, sha256, run_id = int(found[1]), found[2], found[3]
    pin = Pin(environment="production",
              model=ModelRef(name="churn", version=version, uri=f"models:/churn/{version}",
                             sha256=sha256),
              lineage=Lineage(run_id=run_id, git_commit="0" * 40, data_hash="test"),
              metrics={"accuracy": 0.8, "roc_auc": 0.84},  # as promote copies them
              promoted=Promotion(by="test", at=datetime.now(UTC)))
    pin.write(work / "model.yaml")
    from contracts.prediction_log import migrate

    database = f"sqlite:///{repo / '.mlflow' / 'predictions.db'}"
    migrate.upgrade(database)
    port = free_port()
    log = work / "service.log"
    proc = launch([sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
                  log, cwd=ROOT, env={
                      **env, "MODEL_PIN": str(work / "model.yaml"),
                      "MLFLOW_TRACKING_URI": f"sqlite:///{repo / '.mlflow' / 'mlflow.db'}",
                      "MODEL_CACHE_DIR": str(work / "cache"), "DRIFT_MIN_ROWS": "20",
                      "DATABASE_URL": database, "ALLOW_ANONYMOUS": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the service to load its pinned model",
                 lambda: httpx.get(f"{url}/ready").status_code == 200, timeout=120,
                 proc=proc, log=log)
        test = pd.read_parquet(repo / "data" / "churn" / "test.parquet")
        signature = json.loads((repo / "models" / "churn" / "signature.json").read_text())
        columns = [f["name"] for f in signature["features"]]
        yield url, test[columns], test[signature["target"]]
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def prometheus(service, tmp_path_factory):
    """Prometheus scraping the service every second, with the project's rule file loaded."""
    url, _, _ = service
    server = Prometheus.start(tmp_path_factory.mktemp("prometheus"), [url.removeprefix("http://")],
                              rule_files=(RULES,),
                              labels={"namespace": NAMESPACE,
                                      "rollouts_pod_template_hash": CANARY_HASH})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traffic(service, prometheus):
    """A few seconds of real requests (predictions, feedback, a bad request), scraped."""
    url, features, labels = service
    records = json.loads(features.head(200).to_json(orient="records"))
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 6
        i = 0
        while time.monotonic() < deadline:
            row = records[i % len(records)]
            answer = client.post("/v1/predict", json=row)
            assert answer.status_code == 200, answer.text
            if i % 3 == 0:
                client.post("/v1/feedback", json={"prediction_id": answer.json()["prediction_id"],
                                                  "label": str(labels.iloc[i % len(records)])})
            if i % 10 == 0:  # a client error: must not count as a server error
                assert client.post("/v1/predict", json={"tenure": "long"}).status_code == 422
            i += 1
            time.sleep(0.02)  # pacing: the traffic spans several scrapes, as rate() needs
    # Until Prometheus has scraped the last of them (the page is scraped, not pushed).
    answered = 'sum(gitops_ml_requests_total{route="/v1/predict",status="200"})'
    wait_for("Prometheus to scrape every answered prediction",
             lambda: [float(r["value"][1]) for r in prometheus.query(answered)] == [float(i)],
             timeout=30, tolerate=NOT_YET)
    return i


def analysis_queries(namespace: str = NAMESPACE, canary_hash: str = CANARY_HASH) -> dict:
    doc = yaml.safe_load(ANALYSIS.read_text())
    out = {}
    for metric in doc["spec"]["metrics"]:
        promql = (metric["provider"]["prometheus"]["query"]
                  .replace("{{args.namespace}}", namespace)
                  .replace("{{args.canary-hash}}", canary_hash))
        out[metric["name"]] = (promql, metric["successCondition"])
    return out


def holds(condition: str, result: list[float]) -> bool:
    """Evaluate an Argo Rollouts condition of the form `result[0] <op> <number>`."""
    found = re.fullmatch(r"result\[0\]\s*(<=|>=|<|>)\s*([0-9.]+)", condition.strip())
    assert found, f"unsupported condition {condition!r}"
    value, bound = result[0], float(found[2])
    return {"<=": value <= bound, ">=": value >= bound, "<": value < bound,
            ">": value > bound}[found[1]]


def test_analysis_queries_return_one_number_each_for_the_canary(prometheus, traffic):
    assert traffic > 20
    values = {}
    for name, (promql, _) in analysis_queries().items():
        result = prometheus.query(promql)
        assert len(result) == 1, (name, result)
        values[name] = float(result[0]["value"][1])
        assert math.isfinite(values[name]), (name, values[name])
    assert values["error-rate"] == 0.0  # 422s are client errors
    assert 0 < values["p99-latency"] < 2.5
    assert values["shadow-agreement"] == 1.0  # the pin names no shadow


def test_a_healthy_canary_passes_the_error_rate_and_shadow_conditions(prometheus, traffic):
    for name, (promql, condition) in analysis_queries().items():
        value = float(prometheus.query(promql)[0]["value"][1])
        if name != "p99-latency":  # latency on a shared test machine proves nothing
            assert holds(condition, [value]), (name, value, condition)


def test_pods_of_another_revision_give_no_answer_to_judge(prometheus, traffic):
    # Argo Rollouts counts an empty answer as a measurement error, never as a pass.
    for name, (promql, _) in analysis_queries(canary_hash="0000000000").items():
        result = prometheus.query(promql)
        if name == "shadow-agreement":
            assert [float(r["value"][1]) for r in result] == [1.0]
        else:
            assert result == [], (name, result)


def test_rules_evaluate_cleanly_on_the_live_series(prometheus, traffic):
    def all_evaluated():
        groups = prometheus.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        # A rule never evaluated reports the zero time, year 0001.
        return rules if all(not r.get("lastEvaluation", "0001").startswith("0001")
                            for r in rules) else None

    rules = wait_for("every rule to be evaluated", all_evaluated, timeout=30, tolerate=NOT_YET)
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad, bad
    # The service's own model_info names its environment; the recording rules use it.
    result = prometheus.query(
        'model:gitops_ml_requests:rate5m{environment="production", model="churn"}')
    assert len(result) == 1 and float(result[0]["value"][1]) > 0
    firing = prometheus.query('ALERTS{alertstate="firing", alertname=~"GitopsMl.*"}')
    assert firing == []


def test_every_dashboard_panel_query_runs_against_the_live_series(prometheus, traffic):
    dash = json.loads(DASHBOARD.read_text())
    empty = []
    for panel in dash["panels"]:
        for target in panel["targets"]:
            promql = (target["expr"].replace("$__rate_interval", "1m")
                      .replace("$environment", ".*").replace("$model", ".*"))
            if not prometheus.query(promql):
                empty.append(panel["title"])
    # Panels of requests, latency, model, predictions and feedback must show data now.
    for title in ("Requests per second by status", "/v1/predict latency", "Model in service",
                  "Predictions per second by class",
                  "Live accuracy vs test accuracy (classifiers)"):
        assert title not in empty, f"panel {title!r} shows no data"


def test_every_metric_the_rules_and_dashboard_read_is_on_the_live_metrics_page(service):
    url, _, _ = service
    page = httpx.get(f"{url}/metrics").text
    typed = {}
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            typed[name] = kind
    names = set()
    for name, kind in typed.items():
        names |= ({f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram"
                  else {name if name.endswith("_total") or kind != "counter" else f"{name}_total"})
    for expr in exprs_of_rules() + exprs_of_dashboard() + exprs_of_analysis():
        for name in metric_names(expr):
            if ":" in name or name in NOT_FROM_SERVICE:
                continue
            assert name in names, f"{name} is not on {url}/metrics"
