"""The DVC pipeline on the real data: runs once, reruns nothing, reruns exactly what changed."""
from __future__ import annotations

import json

import yaml

from tests.conftest import run


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_pipeline_reaches_the_auc_floor_on_telco(trained_project):
    metrics = json.loads((trained_project / "models/churn/metrics.json").read_text())
    assert metrics["rows"] == 1409
    assert metrics["roc_auc"]["value"] >= 0.80
    assert metrics["roc_auc"]["ci_low"] < metrics["roc_auc"]["value"] < metrics["roc_auc"]["ci_high"]
    assert set(metrics["slices"]["Contract"]) == {"Month-to-month", "One year", "Two year"}
    gate = json.loads((trained_project / "models/churn/gate.json").read_text())
    assert gate["passed"] is True


def test_second_repro_changes_nothing_and_says_so(project_copy):
    out = run(["dvc", "repro"], project_copy).stdout
    assert ran(out) == set()
    assert "Data and pipelines are up to date." in out


def test_changing_one_param_reruns_only_the_stages_that_read_it(project_copy):
    params = yaml.safe_load((project_copy / "params.yaml").read_text())
    params["gates"]["latency_p95_ms"] = 60
    (project_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(run(["dvc", "repro"], project_copy).stdout) == {"gate"}

    params["evaluate"]["bootstrap_rounds"] = 50
    (project_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(run(["dvc", "repro"], project_copy).stdout) == {"evaluate", "gate"}


def test_metrics_and_plots_are_visible_to_dvc(project_copy):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project_copy).stdout)
    flat = json.dumps(shown)
    assert "roc_auc" in flat and "invalid_rows" in flat
    out = run(["dvc", "plots", "show", "--json"], project_copy).stdout
    assert set(json.loads(out)["data"]) == {"ROC", "Precision-Recall", "Confusion"}
