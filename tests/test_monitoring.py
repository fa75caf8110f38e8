"""Monitoring as code: the alert rules, their promtool unit tests, the PrometheusRule twin and
the Grafana dashboard, checked with promtool and against the metrics the service exports."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from monitoring_files import (
    DASHBOARD,
    MONITORING,
    NOT_FROM_SERVICE,
    RULE_TESTS,
    RULES,
    alerts,
    exported_names,
    exprs_of_analysis,
    exprs_of_dashboard,
    exprs_of_rules,
    metric_names,
    promtool,
    rule_groups,
)

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool missing: `make system-deps` installs it")


def test_rule_file_passes_promtool_check():
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_fires_and_stays_silent_in_the_promtool_unit_tests():
    proc = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [c for t in tested for c in t.get("alert_rule_test", [])]
    for name in alerts():
        fired = [c for c in cases if c["alertname"] == name and c["exp_alerts"]]
        silent = [c for c in cases if c["alertname"] == name and not c["exp_alerts"]]
        assert fired and silent, f"{name} needs a unit test that fires it and one that does not"


def unit_tests_of_changed_rules(tmp_path: Path, old: str, new: str) -> subprocess.CompletedProcess:
    """promtool's unit tests run against the rule file with `old` replaced by `new`."""
    (tmp_path / "tests").mkdir()
    rules = RULES.read_text().replace(old, new)
    assert rules != RULES.read_text()
    (tmp_path / RULES.name).write_text(rules)
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    return promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path / "tests")


def test_a_weakened_alert_threshold_fails_the_unit_tests(tmp_path):
    # The unit tests pin behaviour: raising the error-rate threshold to 50% must break them.
    proc = unit_tests_of_changed_rules(tmp_path, "error_ratio:rate5m > 0.05",
                                       "error_ratio:rate5m > 0.5")
    assert proc.returncode != 0
    assert "GitopsMlHighErrorRate" in proc.stdout + proc.stderr


def test_a_slice_rule_without_its_row_minimum_fails_the_unit_tests(tmp_path):
    # A slice of 30 labelled rows under its floor is reported, never alerted on: judging it
    # anyway must break the unit tests.
    proc = unit_tests_of_changed_rules(tmp_path, "group_left gitops_ml_slice_min_rows",
                                       "group_left 0 * gitops_ml_slice_min_rows")
    assert proc.returncode != 0
    assert "GitopsMlSliceQualityLow" in proc.stdout + proc.stderr
    assert "Two year" in proc.stdout + proc.stderr


def test_prometheus_rule_holds_exactly_the_plain_rule_file_groups():
    doc = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"]["groups"] == rule_groups()


def test_required_alerts_exist_with_severity_and_a_summary():
    names = alerts()
    for wanted in ("GitopsMlHighErrorRate", "GitopsMlHighLatency", "GitopsMlFeatureDrift",
                   "GitopsMlFeedbackAccuracyLow", "GitopsMlModelNotReady",
                   "GitopsMlCanaryAborted"):
        assert wanted in names
    for name, rule in names.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"], name


def test_alerts_that_start_workflows_name_the_workflow_the_environment_and_the_model():
    # Alertmanager routes action=rollback to rollback.yml and action=retrain to retrain.yml;
    # they need the environment and model labels to know what to revert or retrain. The
    # promtool tests check the labels each alert really carries.
    named = alerts()
    assert named["GitopsMlCanaryAborted"]["labels"]["action"] == "rollback"
    for name in ("GitopsMlFeatureDrift", "GitopsMlFeedbackAccuracyLow", "GitopsMlFeedbackMaeHigh"):
        assert named[name]["labels"]["action"] == "retrain", name
    actions = {r["labels"].get("action") for r in named.values()} - {None}
    assert actions == {"rollback", "retrain"}
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = [a for t in tested for c in t.get("alert_rule_test", []) for a in c["exp_alerts"]
             if c["alertname"] in named and named[c["alertname"]]["labels"].get("action")]
    assert fired
    for alert in fired:
        assert {"environment", "model"} <= set(alert["exp_labels"]), alert


def test_every_alert_about_a_model_is_judged_per_environment_and_model():
    # Only the per-pod alerts (readiness, load failures) are not about one model.
    per_pod = {"GitopsMlModelNotReady", "GitopsMlModelLoadFailures"}
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    for name in set(alerts()) - per_pod:
        cases = [a for t in tested for c in t.get("alert_rule_test", []) if c["alertname"] == name
                 for a in c["exp_alerts"]]
        assert cases and all(a["exp_labels"].get("model") for a in cases), name


def test_every_metric_the_rules_dashboard_and_analysis_read_is_exported_by_the_service():
    exported = exported_names()
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    for source, exprs in (("rules", exprs_of_rules()), ("dashboard", exprs_of_dashboard()),
                          ("analysis", exprs_of_analysis())):
        for expr in exprs:
            for name in metric_names(expr):
                if name in NOT_FROM_SERVICE:
                    assert source == "rules", f"{source} reads {name}, which the service lacks"
                    continue
                if ":" in name:
                    assert name in recorded, f"{source} reads {name}, which no rule records"
                    continue
                assert name in exported, (
                    f"{source} reads {name}, which the service does not export")


def test_metric_name_check_would_catch_a_misspelt_metric():
    assert "gitops_ml_request_total" not in exported_names()
    assert metric_names('rate(gitops_ml_request_total{status=~"5.."}[5m])') == {
        "gitops_ml_request_total"}


def test_dashboard_covers_the_service_metrics_and_is_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    read = set().union(*(metric_names(e) for e in exprs_of_dashboard()))
    for family in ("gitops_ml_requests_total", "gitops_ml_request_duration_seconds_bucket",
                   "gitops_ml_predictions_total", "gitops_ml_prediction_probability_bucket",
                   "gitops_ml_model_info", "gitops_ml_model_ready",
                   "gitops_ml_feature_drift", "gitops_ml_feedback_accuracy",
                   "gitops_ml_feedback_mae", "model:gitops_ml_model_test_metric:max",
                   "gitops_ml_shadow_agreement", "gitops_ml_model_load_failures_total",
                   "gitops_ml_live_slice_metric", "gitops_ml_live_slice_rows",
                   "gitops_ml_slice_floor", "gitops_ml_slice_min_rows"):
        assert family in read, f"the dashboard shows nothing of {family}"
    for panel in dash["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    # Every panel can be narrowed to one model.
    assert {v["name"] for v in dash["templating"]["list"]} >= {"environment", "model"}
    for expr in exprs_of_dashboard():
        assert 'model=~"$model"' in expr, expr


def test_monitoring_kustomization_renders_rule_scrape_target_and_dashboard():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl missing")
    out = subprocess.run(["kubectl", "kustomize", str(MONITORING)], capture_output=True,
                         text=True, check=True).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    dashboard = docs[("ConfigMap", "gitops-ml-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["gitops-ml.json"]) == json.loads(DASHBOARD.read_text())
    assert ("PrometheusRule", "gitops-ml") in docs
    monitor = docs[("PodMonitor", "gitops-ml")]
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
    # The canary analysis selects pods by this label.
    assert relabel["targetLabel"] == "rollouts_pod_template_hash"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool parses each panel's query (Grafana's variables filled in) as a recording rule.
    exprs = [e.replace("$__rate_interval", "1m").replace("$environment", ".*")
             .replace("$model", ".*") for e in exprs_of_dashboard()]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "b", "rules": [
        {"record": "dashboard:broken", "expr": exprs[0].replace(")", "", 1)}]}]}))
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_dashboard_shows_the_variants_of_an_ab_test_side_by_side():
    dash = json.loads(DASHBOARD.read_text())
    by_variant = [e for p in dash["panels"] for t in p.get("targets", [])
                  for e in [t["expr"]] if re.search(r"by \([^)]*\bvariant\b", e)
                  or 'variant!=""' in e]
    read = set().union(*(metric_names(e) for e in by_variant))
    for family in ("gitops_ml_requests_total", "gitops_ml_request_duration_seconds_bucket",
                   "gitops_ml_predictions_total", "gitops_ml_feedback_accuracy",
                   "gitops_ml_feedback_mae", "gitops_ml_ab_split", "gitops_ml_model_info",
                   "model:gitops_ml_request_error_ratio:rate5m",
                   "model:gitops_ml_model_test_metric:max"):
        assert family in read, f"no panel shows {family} per variant"
    legends = [t["legendFormat"] for p in dash["panels"] for t in p.get("targets", [])
               if t["expr"] in by_variant and t.get("format") != "table"]
    assert legends and all("{{variant}}" in legend for legend in legends)


def test_rules_judge_each_variant_of_an_ab_test_on_its_own():
    # A variant b failing 30% of its 10% share is 3% of the model: only per-variant rules see it
    # (the promtool unit test "An A/B test in production" fires on exactly that).
    recorded = {r["record"]: r["expr"] for g in rule_groups() for r in g["rules"] if "record" in r}
    for name in ("model:gitops_ml_requests:rate5m", "model:gitops_ml_request_errors:rate5m",
                 "model:gitops_ml_predict_latency_seconds:p99_5m",
                 "model:gitops_ml_feedback:increase1h", "model:gitops_ml_model_test_metric:max"):
        assert re.search(r"by \(environment, model, variant\b", recorded[name]), name
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in tested for c in t.get("alert_rule_test", [])
             for a in c["exp_alerts"] if a["exp_labels"].get("variant") == "b"}
    assert fired == {"GitopsMlHighErrorRate", "GitopsMlFeedbackAccuracyLow"}
