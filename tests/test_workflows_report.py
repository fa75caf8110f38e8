"""The pull-request report train.yml writes: one section per changed model with its gate verdict,
key metrics with intervals against the base branch, changed declaration keys, slices and its
curves as Mermaid charts (pipelines/report/, `make report`, `mlops report`)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from gitops_fixtures import git
from project import call
from report_fixtures import binary, declaration, multiclass, project, regression, write_model, write_params

from pipelines.report import MARKER, render
from pipelines.report.charts import Series, xychart
from pipelines.report.inputs import load
from pipelines.report.render import LEFT_OUT

ROOT = Path(__file__).resolve().parents[1]
# What the xychart grammar reads as a number (mermaid's xychart.jison).
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)")


def mermaid_positions(low: float, high: float, count: int) -> int:
    """How many x positions Mermaid makes on a numeric axis for `count` values: it adds
    (high - low) / (count - 1) to low while the sum stays <= high (xychartDb.ts)."""
    step, i, n = (high - low) / (count - 1), low, 0
    while i <= high:
        n, i = n + 1, i + step
    return n


def charts(text: str) -> list[dict]:
    """Every ```mermaid block, checked against the xychart-beta grammar, as a dict."""
    found = []
    for block in re.findall(r"```mermaid\n(.*?)```", text, re.DOTALL):
        lines = block.strip().splitlines()
        init = re.fullmatch(r"%%\{init: (.*)\}%%", lines[0])
        assert init, lines[0]
        palette = json.loads(init[1])["themeVariables"]["xyChart"]["plotColorPalette"]
        assert lines[1] == "xychart-beta"
        title = re.fullmatch(r'    title "([^"]*)"', lines[2])
        x_axis = re.fullmatch(r'    x-axis "([^"]*)" (?:(\S+) --> (\S+)|\[(.*)\])', lines[3])
        y_axis = re.fullmatch(r'    y-axis "([^"]*)"(?: (\S+) --> (\S+))?', lines[4])
        assert title and x_axis and y_axis, lines[:5]
        series = []
        for line in lines[5:]:
            values = re.fullmatch(r"    (?:line|bar) \[(.*)\]", line)
            assert values, line
            numbers = values[1].split(", ")
            assert all(NUMBER.fullmatch(v) for v in numbers), line
            series.append([float(v) for v in numbers])
        if x_axis[4] is not None:
            labels = re.findall(r'"([^"]*)"', x_axis[4])
            positions = len(labels)
        else:
            labels = None
            positions = mermaid_positions(float(x_axis[2]), float(x_axis[3]), len(series[0]))
        assert all(len(s) == positions for s in series), (title[1], positions)
        assert len(palette.split(", ")) == len(series)
        found.append({"title": title[1], "x": x_axis[1], "labels": labels, "lines": series,
                      "y": y_axis[1]})
    return found


def section(text: str, name: str) -> str:
    """One model's section of the report."""
    start = text.index(f"\n### {name} (")
    end = text.find("\n### ", start + 1)
    return text[start:end]


def row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


def edit_declaration(repo: Path, name: str, **changes) -> None:
    path = repo / "models" / name / "model.yaml"
    doc = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        target = doc
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture()
def repo(tmp_path) -> Path:
    return project(tmp_path)


def report(repo: Path, *names: str, base: str = "main", **kwargs) -> str:
    return render(load(repo, list(names), base), base, **kwargs)


def test_binary_section_compares_metrics_params_slices_and_draws_roc_and_pr(repo):
    edit_declaration(repo, "churn", evaluate__threshold=0.4)
    write_model(repo, "churn", binary("churn", 1, 1.5))
    text = report(repo, "churn")
    assert text.startswith(MARKER + "\n## Model report: churn vs `main`")
    churn = section(text, "churn")
    assert "### churn (binary)" in churn
    assert ("**Gates: passed** (4 of 4 judged rules; 1 warning: disparity true_positive_rate "
            "difference: gender) ✅") in churn
    assert "#### Test metrics vs `main` on 600 test rows (95% bootstrap intervals)" in churn
    assert row(churn, "roc_auc") == ("| roc_auc | 0.8000 [0.7800, 0.8200] | 0.8500 [0.8300, "
                                     "0.8700] | ▲ +0.0500 (better) |")
    # Lower log loss is better; this change stays inside main's interval.
    assert row(churn, "log_loss").endswith("| ▼ -0.0100 (within base interval) |")
    assert "Outside the base branch's interval: roc_auc, pr_auc, recall." in churn
    assert row(churn, "`evaluate.threshold`") == "| `evaluate.threshold` | `0.5` | `0.4` |"
    assert row(churn, "Contract = Monthly") == (
        "| Contract = Monthly | 400 | 0.4000 | 0.7750 [0.7450, 0.8050] | 0.6000 [0.5500, 0.6500] |")
    roc, prc, fairness = charts(churn)
    assert (roc["title"], roc["x"], roc["y"]) == ("ROC", "false positive rate",
                                                  "true positive rate")
    mine, main, chance = roc["lines"]
    for line in (mine, main):
        assert all(0 <= v <= 1 for v in line) and line == sorted(line) and line[-1] == 1
    # The stronger model's curve lies above main's.
    assert np.mean(mine) > np.mean(main) and chance[0] == 0 and chance[-1] == 1
    assert "blue: this branch · orange: `main` · grey: chance." in churn
    assert prc["title"] == "Precision-Recall" and len(prc["lines"]) == 2
    assert prc["lines"][0][0] == 1 and prc["lines"][0] == sorted(prc["lines"][0], reverse=True)
    assert "| **Yes** |" in churn  # the confusion matrix
    # A section per sensitive attribute: each group's rates, the disparity verdict, a chart.
    assert "#### Fairness: gender (sensitive attribute)" in churn
    assert row(churn, "gender = Female").startswith("| gender = Female | 290 | 0.2800 | 0.5750 ")
    assert "⚠️ WARN" in row(churn, "disparity true_positive_rate difference: gender")
    assert fairness["title"] == "true_positive_rate by gender" and fairness["x"] == "gender"
    assert fairness["lines"] == [[0.575, 0.58], [0.55, 0.58]]
    assert "`dvc plots diff main` (HTML in build/report/plots/)" in text


def test_multiclass_section_draws_the_micro_averaged_roc_per_class_and_confusion(repo):
    write_model(repo, "wine", multiclass("wine", 2, 2.5))
    wine = section(report(repo, "wine"), "wine")
    assert "### wine (multiclass)" in wine
    # The interval level is metrics.json's, never a fixed 95%.
    assert "(90% bootstrap intervals)" in wine and "95%" not in wine
    assert row(wine, "macro_f1").endswith("(better) |")
    (roc,) = charts(wine)
    assert roc["title"] == "ROC" and len(roc["lines"]) == 3
    assert "Per class" in wine and re.search(r"^\| class_0 \| \d+", wine, re.MULTILINE)
    assert "| actual \\ predicted | class_0 | class_1 | class_2 |" in wine
    assert row(wine, "`data/source/wine.csv`") == "| `data/source/wine.csv` | 450 | 448 | 2 |"


def test_regression_section_bins_predicted_vs_actual_and_residuals(repo):
    write_model(repo, "diabetes", regression("diabetes", 3, 0.8))
    diabetes = section(report(repo, "diabetes"), "diabetes")
    assert "### diabetes (regression)" in diabetes
    assert [m for m in ("rmse", "mae", "r2") if f"| {m} |" in diabetes] == ["rmse", "mae", "r2"]
    predicted, residuals = charts(diabetes)
    assert predicted["title"] == "Predicted vs actual" and len(predicted["labels"]) == 10
    labels = [float(x) for x in predicted["labels"]]
    assert labels == sorted(labels) and 25 < labels[0] < labels[-1] < 346
    mine, main, truth = predicted["lines"]
    assert truth == sorted(truth)
    # Slope 0.8 follows the actual values more closely than main's 0.5.
    assert np.abs(np.subtract(mine, truth)).mean() < np.abs(np.subtract(main, truth)).mean()
    assert residuals["title"] == "Residuals" and residuals["lines"][2] == [0.0] * 10
    assert "grey: the actual values" in diabetes and "equal-width bins" in diabetes


def test_a_failed_gate_is_the_headline_with_its_rule_table_open(repo):
    write_model(repo, "churn", binary("churn", 1, 0.5, failing="floor roc_auc"))
    text = report(repo, "churn")
    churn = section(text, "churn")
    assert "**Gates: FAILED** (1 of 5 rules: floor roc_auc) ❌" in churn
    assert "<details open><summary>Gate rules</summary>" in churn
    assert row(churn, "floor roc_auc") == "| floor roc_auc | 0.7100 | 0.8000 | ❌ FAIL |  |"
    assert row(text, "churn").startswith("| churn | binary | ❌ FAILED | roc_auc |")


def test_a_model_added_on_the_branch_is_reported_without_a_base_line(repo):
    write_params(repo, ["churn", "diabetes", "iris", "wine"])
    write_model(repo, "iris", multiclass("iris", 4, 2.0), declaration("iris", "multiclass"))
    iris = section(report(repo, "iris"), "iris")
    assert "`main` has no metrics for this model: it is new here." in iris
    assert row(iris, "macro_f1").endswith("| new |")
    assert "A new model: its declaration is added on this branch." in iris
    (roc,) = charts(iris)
    assert len(roc["lines"]) == 2 and "blue: this branch · grey: chance." in iris


def test_an_invalid_declaration_is_reported_instead_of_stale_numbers(repo):
    edit_declaration(repo, "churn", train__estimator="ridge")
    churn = section(report(repo, "churn"), "churn")
    assert "**Gates: no verdict**: its declaration is invalid:" in churn
    assert "train.estimator 'ridge' is not one of" in churn
    assert "```mermaid" not in churn and "Test metrics" not in churn


def test_charts_are_left_out_when_the_report_would_not_fit_a_comment(repo):
    for name in ("churn", "wine", "diabetes"):
        edit_declaration(repo, name, description="tuned")
    full = report(repo, "churn", "diabetes", "wine")
    assert len(charts(full)) == 6  # ROC, PR and fairness (churn), ROC (wine), two (diabetes)
    assert full.index("### churn") < full.index("### diabetes") < full.index("### wine")
    short = report(repo, "churn", "diabetes", "wine", limit=len(full) - 1)
    assert "```mermaid" not in short and short.count(LEFT_OUT) == 6
    assert "| `description` | — | `tuned` |" in short


def test_chart_numbers_never_use_exponents_and_lines_match_the_axis():
    text = xychart("t", "x", "y", [Series("a", "#000000", [1e-9, 2.5e7, -0.0])], x_labels="abc")
    assert charts(text)[0]["lines"] == [[0.0, 25000000.0, 0.0]]
    with pytest.raises(ValueError, match="one value per x position"):
        xychart("t", "x", "y", [Series("a", "#000000", [1.0, 2.0])], x_labels="abc")
    with pytest.raises(ValueError, match="finite"):
        xychart("t", "x", "y", [Series("a", "#000000", [float("nan")])], x_range=(0, 1))


def cli(repo: Path, *args: str, mlops: bool = False) -> subprocess.CompletedProcess:
    """`python -m pipelines.report ARGS` (or `mlops report ARGS`), run in this process."""
    from pipelines import cli as mlops_cli
    from pipelines.report.command import main

    if mlops:
        return call(mlops_cli.main, ["report", "--repo", repo, *args], ROOT)
    return call(main, ["--repo", repo, *args], ROOT)


def test_cli_reports_the_models_the_change_touches_unless_told_which(repo, tmp_path):
    edit_declaration(repo, "wine", train__seed=7)
    git(repo, "commit", "-q", "-am", "wine: another seed")
    summary = tmp_path / "SUMMARY.md"
    summary.write_text("## earlier step\n")
    proc = cli(repo, "--base", "main", "--out", str(tmp_path / "out/report.md"),
               "--summary", str(summary))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out" / "report.md").read_text()
    assert "### wine (multiclass)" in text and "### churn" not in text
    assert summary.read_text() == "## earlier step\n" + text + "\n"
    both = cli(repo, "--base", "main", "--models", "diabetes", "churn", mlops=True)
    assert both.returncode == 0, both.stderr
    assert both.stdout.startswith(MARKER)
    assert both.stdout.index("### diabetes") < both.stdout.index("### churn")
    nothing = cli(repo, "--base", "HEAD")
    assert "This change touches no declared model, so no model was trained." in nothing.stdout


def test_cli_refuses_an_undeclared_model_and_writes_nothing(repo, tmp_path):
    proc = cli(repo, "--base", "main", "--models", "churm", "--out", str(tmp_path / "r.md"))
    assert proc.returncode == 2
    assert "no model 'churm' is declared" in proc.stderr
    assert not (tmp_path / "r.md").exists()


# A gate stage as the real one behaves: it writes its verdicts, then fails when one fails.
GATE_SCRIPT = """\
import json, sys, yaml
name = sys.argv[1]
value = yaml.safe_load(open(f"models/{name}/model.yaml"))["evaluate"]["threshold"]
passed = value >= 0.2
rule = {"rule": "floor threshold", "value": value, "threshold": 0.2, "note": "",
        "verdict": "pass" if passed else "FAIL"}
json.dump({"passed": passed, "rules": [rule]}, open(f"models/{name}/gate.json", "w"))
sys.exit(0 if passed else 1)
"""


@pytest.mark.slow
def test_outputs_older_than_their_inputs_are_not_reported_as_this_branch(tmp_path):
    """After a declaration change, until `dvc repro gate@<name>` runs again, the outputs in the
    working tree are the base branch's: the report says so instead of showing them. A gate
    that ran and failed is reported with its verdicts."""
    repo = project(tmp_path)
    git(repo, "checkout", "-q", "main")
    (repo / "gate.py").write_text(GATE_SCRIPT)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"gate": {"foreach": ["churn"], "do": {
        "cmd": "python gate.py ${item}", "deps": ["gate.py", "models/${item}/model.yaml"],
        "outs": [{"models/${item}/gate.json": {"cache": False}}]}}}}))
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*dvc, "repro", "-q"], cwd=repo, check=True, capture_output=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc")
    git(repo, "checkout", "-q", "-b", "threshold")
    edit_declaration(repo, "churn", evaluate__threshold=0.3)
    churn = section(report(repo, "churn"), "churn")
    assert ("**Gates: no verdict**: its outputs here are older than their inputs (gate@churn): "
            "the pipeline did not finish for this model, or `dvc repro gate@churn` has not run"
            in churn)
    assert "Test metrics" not in churn and "| `evaluate.threshold` | `0.5` | `0.3` |" in churn
    subprocess.run([*dvc, "repro", "-q"], cwd=repo, check=True, capture_output=True)
    assert "**Gates: passed** (1 of 1 judged rules)" in section(report(repo, "churn"), "churn")
    edit_declaration(repo, "churn", evaluate__threshold=0.1)
    failed = subprocess.run([*dvc, "repro", "-q"], cwd=repo, capture_output=True)
    assert failed.returncode != 0
    churn = section(report(repo, "churn"), "churn")
    assert "**Gates: FAILED** (1 of 1 rules: floor threshold) ❌" in churn
