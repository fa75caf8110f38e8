"""The DVC pipeline over every declared model: one run trains them all, a second reruns nothing,
and a change to one model reruns that model's affected stages alone."""
from __future__ import annotations

import json

import pytest
import yaml
from project import ONBOARDED, run

from pipelines.metric_names import key_metrics

pytestmark = pytest.mark.slow


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_churn_reaches_the_auc_floor_on_telco(trained_project):
    metrics = json.loads((trained_project / "models/churn/metrics.json").read_text())
    assert metrics["rows"] == 1409 and metrics["confidence"] == 0.95
    assert 0.82 <= metrics["roc_auc"]["value"] <= 0.87
    assert metrics["roc_auc"]["ci_low"] < metrics["roc_auc"]["value"] < metrics["roc_auc"]["ci_high"]
    assert set(metrics["slices"]["Contract"]["groups"]) == {"Month-to-month", "One year", "Two year"}
    assert json.loads((trained_project / "models/churn/gate.json").read_text())["passed"]


@pytest.mark.parametrize("name", list(ONBOARDED))
def test_each_onboarded_model_is_trained_evaluated_and_gated_for_its_task(trained_project, name):
    task = ONBOARDED[name][2]
    metrics = json.loads((trained_project / f"models/{name}/metrics.json").read_text())
    assert metrics["task"] == task
    for metric in key_metrics(task):
        m = metrics[metric]
        assert m["ci_low"] <= m["value"] <= m["ci_high"], metric
    # The signal planted in the data is found: the trivial baseline is beaten.
    gate = json.loads((trained_project / f"models/{name}/gate.json").read_text())
    baseline = next(r for r in gate["rules"] if r["rule"].startswith("beats baseline"))
    assert baseline["verdict"] == "pass" and gate["passed"]
    assert (trained_project / f"models/{name}/model.onnx").is_file()


def test_onboarding_touched_no_python(trained_project):
    changed = run(["git", "diff", "--name-only", "before-onboarding", "HEAD"],
                  trained_project).stdout.split()
    assert "models/fraud/model.yaml" in changed and "params.yaml" in changed
    assert not [p for p in changed if p.endswith(".py")]


def test_second_repro_changes_nothing_and_says_so(project_copy):
    out = run(["dvc", "repro"], project_copy).stdout
    assert ran(out) == set()
    assert "Data and pipelines are up to date." in out


def edit(path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_changing_one_model_reruns_only_its_stages_that_read_the_change(project_copy):
    edit(project_copy / "models/churn/model.yaml",
         lambda d: d["gates"].update(max_model_mb=30))
    assert ran(run(["dvc", "repro"], project_copy).stdout) == {"gate@churn"}
    edit(project_copy / "models/tiers/model.yaml",
         lambda d: d["evaluate"].update(bootstrap_rounds=50))
    assert ran(run(["dvc", "repro"], project_copy).stdout) == {"evaluate@tiers", "gate@tiers"}


def test_adding_models_reruns_none_of_the_others(onboarding_repro):
    # The session's project trained churn, then onboarded one model per task and reran dvc.
    assert ran(onboarding_repro) == {f"{s}@{name}" for name in ONBOARDED
                                     for s in ("ingest", "split", "train", "export", "evaluate",
                                               "gate")}


def test_metrics_and_plots_of_every_model_are_visible_to_dvc(trained_project):
    shown = json.dumps(json.loads(run(["dvc", "metrics", "show", "--json"],
                                      trained_project).stdout))
    assert "roc_auc" in shown and "macro_f1" in shown and "rmse" in shown
    plots = json.loads(run(["dvc", "plots", "show", "--json"], trained_project).stdout)["data"]
    assert {"churn ROC", "fraud Precision-Recall", "tiers Confusion",
            "flats Predicted vs actual", "flats Residuals"} <= set(plots)
