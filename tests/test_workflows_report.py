"""The pull-request report train.yml writes: metrics with intervals against the base branch,
gate verdicts, changed params (pipelines/report.py, `make report`, `mlops report`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipelines.report import MARKER, render

ROOT = Path(__file__).resolve().parents[1]


def metric(old: float | None, new: float | None, width: float = 0.02) -> dict:
    """One metric's entries as `dvc metrics diff --json` flattens them (value, ci_low, ci_high)."""
    return {
        "value": {"old": old, "new": new},
        "ci_low": {"old": None if old is None else old - width,
                   "new": None if new is None else new - width},
        "ci_high": {"old": None if old is None else old + width,
                    "new": None if new is None else new + width},
    }


def metrics_diff(**metrics: dict) -> dict:
    flat = {f"{name}.{field}": entry for name, fields in metrics.items()
            for field, entry in fields.items()}
    flat["rows"] = {"old": 1409, "new": 1409}
    flat["slices.Contract.Month-to-month.roc_auc"] = {"old": 0.74, "new": 0.75}
    flat["slices.Contract.Month-to-month.rows"] = {"old": 773, "new": 773}
    return {"models/churn/metrics.json": flat,
            "reports/ingest.json": {"rows": {"old": 7043, "new": 7100}}}


GATE_PASSED = {"passed": True, "rules": [
    {"rule": "floor roc_auc", "value": 0.84, "threshold": 0.8, "verdict": "pass", "note": ""},
    {"rule": "vs champion roc_auc", "value": 0.84, "threshold": None, "verdict": "pass",
     "note": "no champion in production yet"}]}
GATE_FAILED = {"passed": False, "rules": [
    {"rule": "floor roc_auc", "value": 0.71, "threshold": 0.8, "verdict": "FAIL", "note": ""},
    {"rule": "model size MB", "value": 0.2, "threshold": 25.0, "verdict": "pass", "note": ""}]}


def row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {name} |"))


def test_each_key_metric_shows_base_and_branch_values_with_intervals():
    text = render(metrics_diff(roc_auc=metric(0.84, 0.845), f1=metric(0.60, 0.60)), {},
                  GATE_PASSED, base="origin/main")
    assert text.startswith(MARKER)
    assert "| metric | `origin/main` | this branch | change |" in text
    assert row(text, "roc_auc") == ("| roc_auc | 0.8400 [0.8200, 0.8600] | 0.8450 [0.8250, 0.8650]"
                                    " | ▲ +0.0050 (within base interval) |")
    assert row(text, "f1").endswith("(unchanged) |")
    assert "on 1409 test rows" in text


def test_a_change_outside_the_base_interval_is_called_better_or_worse():
    text = render(metrics_diff(recall=metric(0.55, 0.62), precision=metric(0.66, 0.60),
                               log_loss=metric(0.42, 0.38)), {}, GATE_PASSED)
    assert row(text, "recall").endswith("▲ +0.0700 (better) |")
    assert row(text, "precision").endswith("▼ -0.0600 (worse) |")
    # Lower log loss is the better direction.
    assert row(text, "log_loss").endswith("▼ -0.0400 (better) |")
    assert "Outside the base branch's interval: precision, recall, log_loss." in text


def test_a_failed_gate_is_the_headline_and_names_the_failing_rule():
    text = render(metrics_diff(roc_auc=metric(0.84, 0.71)), {}, GATE_FAILED)
    assert "**Gates: FAILED** (1 of 2 rules: floor roc_auc) ❌" in text
    assert "| floor roc_auc | 0.7100 | 0.8000 | ❌ FAIL |  |" in text
    assert "| model size MB | 0.2000 | 25.0000 | ✅ pass |  |" in text


def test_no_gate_verdict_says_the_pipeline_stopped_before_the_gate():
    text = render(metrics_diff(roc_auc=metric(0.84, 0.85)), {}, None)
    assert "**Gates: no verdict**" in text and "stopped before the gate stage" in text


def test_metrics_absent_on_the_base_branch_are_marked_new():
    text = render(metrics_diff(roc_auc=metric(None, 0.84)), {}, GATE_PASSED)
    assert row(text, "roc_auc") == "| roc_auc | — | 0.8400 [0.8200, 0.8600] | new |"


def test_changed_params_slices_and_other_metrics_are_listed():
    params = {"params.yaml": {"train.estimator": {"old": "logistic_regression",
                                                  "new": "random_forest"},
                              "evaluate.threshold": {"old": 0.5, "new": 0.4}}}
    text = render(metrics_diff(roc_auc=metric(0.84, 0.85)), params, GATE_PASSED)
    assert "| params.yaml: `evaluate.threshold` | 0.5000 | 0.4000 |" in text
    assert "| params.yaml: `train.estimator` | `logistic_regression` | `random_forest` |" in text
    assert "| Contract = Month-to-month | 773 | 0.7400 | 0.7500 | — |" in text
    assert "| reports/ingest.json | rows | 7043 | 7100 |" in text
    unchanged = render(metrics_diff(roc_auc=metric(0.84, 0.85)), {}, GATE_PASSED)
    assert "No parameter changed." in unchanged


def test_plots_link_to_the_run_when_given():
    text = render(metrics_diff(), {}, GATE_PASSED, plots_url="https://ci.example/runs/9")
    assert "[the run's artifacts](https://ci.example/runs/9)" in text
    assert "`dvc plots diff main`" in render(metrics_diff(), {}, GATE_PASSED)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.report", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_cli_writes_the_report_and_appends_it_to_the_step_summary(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(metrics_diff(roc_auc=metric(0.84, 0.85))))
    (tmp_path / "p.json").write_text("{}")
    (tmp_path / "gate.json").write_text(json.dumps(GATE_PASSED))
    summary = tmp_path / "SUMMARY.md"
    summary.write_text("## earlier step\n")
    proc = cli("--metrics-diff", "m.json", "--params-diff", "p.json", "--gate", "gate.json",
               "--base", "origin/main", "--out", "out/report.md", "--summary", str(summary),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| roc_auc |" in report
    assert summary.read_text() == "## earlier step\n" + report + "\n"


def test_cli_refuses_output_that_is_not_dvc_json_and_writes_nothing(tmp_path):
    (tmp_path / "m.json").write_text("| Path | Metric |\n")  # the --md table, not --json
    (tmp_path / "p.json").write_text("{}")
    proc = cli("--metrics-diff", "m.json", "--params-diff", "p.json", "--out", "report.md",
               cwd=tmp_path)
    assert proc.returncode == 2
    assert "the metrics diff is not JSON" in proc.stderr and "--json" in proc.stderr
    assert not (tmp_path / "report.md").exists()


def test_mlops_report_is_the_same_command(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(metrics_diff(roc_auc=metric(0.8, 0.81))))
    (tmp_path / "p.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", "--metrics-diff",
                           "m.json", "--params-diff", "p.json", "--gate", "none.json"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(MARKER) and "**Gates: no verdict**" in proc.stdout
