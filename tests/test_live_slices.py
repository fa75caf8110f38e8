"""Live metrics per declared slice, read from a real prediction log (SQLite and PostgreSQL):
which rows count, in which slice, and the exact figures."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from contracts.prediction_log.live_slices import (
    figures,
    live_slices,
    read_window,
    verdict,
    watched_metrics,
)
from contracts.prediction_log.schema import feedback
from contracts.prediction_log.store import PredictionLog
from contracts.signature import Signature

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def churn_signature(**rules) -> Signature:
    return Signature.model_validate({
        "model": "churn", "task": "binary", "target": "Churn", "classes": ["No", "Yes"],
        "positive_class": "Yes",
        "features": [{"name": "gender", "type": "category", "categories": ["Female", "Male"]},
                     {"name": "SeniorCitizen", "type": "integer", "min": 0, "max": 1},
                     {"name": "tenure", "type": "integer", "min": 0, "max": 600},
                     {"name": "MonthlyCharges", "type": "number", "min": 0}],
        "slices": {"columns": ["gender", "SeniorCitizen", "tenure", "MonthlyCharges"],
                   "min_rows": 3, "floors": {"roc_auc": 0.65}, **rules}})


@pytest.fixture
def log(log_url: str) -> PredictionLog:
    store = PredictionLog(log_url)
    yield store
    store.close()


class Writer:
    """Predictions and their labels written straight into the log, labels in a known order."""

    def __init__(self, store: PredictionLog) -> None:
        self.store = store
        self.n = 0

    def add(self, features: dict, truth: str | float, *, predicted: str | float,
            probability: float | None = None, version: int = 1, model: str = "churn",
            environment: str = "production", labelled: bool = True) -> None:
        self.n += 1
        pid = f"{self.n:032x}"
        regression = isinstance(predicted, float)
        output = {"prediction": predicted} | (
            {"probability": probability} if probability is not None else {})
        self.store.write([{
            "id": pid, "model": model, "version": version, "digest": "d" * 64,
            "environment": environment, "variant": None, "created_at": T0, "expires_at": None,
            "features": features, "predicted_label": None if regression else predicted,
            "predicted_value": predicted if regression else None, "output": output}])
        if labelled:
            with self.store.engine.begin() as connection:
                connection.execute(insert(feedback), [{
                    "prediction_id": pid, "label": None if regression else truth,
                    "value": truth if regression else None,
                    "correct": None if regression else truth == predicted,
                    "abs_error": abs(truth - predicted) if regression else None,
                    "received_at": T0 + timedelta(seconds=self.n)}])


def by_slice(found) -> dict[tuple[str, str], object]:
    return {(f.column, f.value): f for f in found}


def test_each_declared_slice_gets_its_labelled_rows_accuracy_and_roc_auc(log):
    w = Writer(log)
    # Female: 4 labelled rows, 2 churners ranked below both stayers (AUC 0), accuracy 1/4.
    for p, truth in ((0.9, "No"), (0.6, "No"), (0.3, "Yes"), (0.2, "No")):
        w.add({"gender": "Female", "SeniorCitizen": 0, "tenure": 5}, truth,
              predicted="Yes" if p >= 0.5 else "No", probability=p)
    w.add({"gender": "Female", "SeniorCitizen": 0, "tenure": 5}, "Yes", predicted="Yes",
          probability=0.1)
    # Male: 3 rows, every answer right and ranked right (AUC 1).
    for p, truth in ((0.8, "Yes"), (0.7, "Yes"), (0.1, "No")):
        w.add({"gender": "Male", "SeniorCitizen": 1, "tenure": 70}, truth,
              predicted="Yes" if p >= 0.5 else "No", probability=p)
    # Not counted anywhere: unlabelled, another version, another environment, another model.
    w.add({"gender": "Male", "SeniorCitizen": 1}, "No", predicted="Yes", probability=0.9,
          labelled=False)
    w.add({"gender": "Male", "SeniorCitizen": 1}, "No", predicted="Yes", probability=0.9,
          version=2)
    w.add({"gender": "Male", "SeniorCitizen": 1}, "No", predicted="Yes", probability=0.9,
          environment="staging")
    w.add({"gender": "Male", "SeniorCitizen": 1}, "No", predicted="Yes", probability=0.9,
          model="other")

    sig = churn_signature()
    found = live_slices(log, {1: sig}, window=100, environment="production")[1]
    got = by_slice(found)
    # Numbers and wide integers have no declared bins: not sliced live.
    assert [k for k in got] == [("gender", "Female"), ("gender", "Male"),
                                ("SeniorCitizen", "0"), ("SeniorCitizen", "1")]
    assert watched_metrics(sig) == ("accuracy", "roc_auc")
    female, male = got[("gender", "Female")], got[("gender", "Male")]
    assert female.rows == 5 and male.rows == 3
    assert female.metrics["accuracy"] == pytest.approx(2 / 5)
    # Churners at 0.3 and 0.1 against stayers at 0.9, 0.6, 0.2: 1 pair of 6 ranked right.
    assert female.metrics["roc_auc"] == pytest.approx(1 / 6)
    assert male.metrics == {"accuracy": 1.0, "roc_auc": 1.0}
    # An integer slice is named as the gates name it ("0", not 0 or "0.0").
    assert got[("SeniorCitizen", "0")].rows == 5
    assert got[("SeniorCitizen", "1")].metrics == male.metrics
    assert verdict(female, "roc_auc", sig) == "below floor"
    assert verdict(male, "roc_auc", sig) == "ok"
    assert verdict(female, "accuracy", sig) == "-"  # no rule on accuracy: shown, not judged


def test_a_slice_under_min_rows_or_with_one_class_is_not_judged(log):
    w = Writer(log)
    w.add({"gender": "Female", "SeniorCitizen": 0}, "Yes", predicted="No", probability=0.2)
    w.add({"gender": "Female", "SeniorCitizen": 0}, "No", predicted="Yes", probability=0.7)
    for _ in range(4):
        w.add({"gender": "Male", "SeniorCitizen": 0}, "No", predicted="No", probability=0.1)
    sig = churn_signature()
    got = by_slice(live_slices(log, {1: sig}, window=100)[1])
    female, male = got[("gender", "Female")], got[("gender", "Male")]
    assert (female.rows, female.metrics["roc_auc"]) == (2, 0.0)
    assert verdict(female, "roc_auc", sig) == "too few rows"
    assert male.rows == 4 and male.metrics["accuracy"] == 1.0
    assert math.isnan(male.metrics["roc_auc"])  # no churner among its labels: no ranking
    assert verdict(male, "roc_auc", sig) == "-"
    # A declared value with no labelled row at all is still listed, with nothing measured.
    senior = got[("SeniorCitizen", "1")]
    assert senior.rows == 0 and all(math.isnan(v) for v in senior.metrics.values())


def test_only_the_newest_window_of_labels_counts(log):
    w = Writer(log)
    for _ in range(3):  # old labels: wrong answers
        w.add({"gender": "Female", "SeniorCitizen": 0}, "Yes", predicted="No", probability=0.2)
    for _ in range(2):  # the newest: right answers
        w.add({"gender": "Female", "SeniorCitizen": 0}, "No", predicted="No", probability=0.2)
    window = read_window(log, "churn", ["gender"], window=2)
    assert len(window) == 2
    female = by_slice(figures(window, churn_signature(), 1))[("gender", "Female")]
    assert (female.rows, female.metrics["accuracy"]) == (2, 1.0)


def test_regression_slices_show_mae_and_judge_it_against_a_ceiling(log):
    sig = Signature.model_validate({
        "model": "diabetes", "task": "regression", "target": "progression",
        "features": [{"name": "sex", "type": "category", "categories": ["female", "male"],
                      "nullable": True},
                     {"name": "bmi", "type": "number"}],
        "slices": {"columns": ["sex"], "min_rows": 2, "ceilings": {"mae": 10.0}}})
    w = Writer(log)
    for truth, predicted in ((100.0, 90.0), (100.0, 130.0)):
        w.add({"sex": "female", "bmi": 20.0}, truth, predicted=predicted, model="diabetes")
    for truth, predicted in ((50.0, 52.0), (50.0, 47.0)):
        w.add({"sex": "male", "bmi": 30.0}, truth, predicted=predicted, model="diabetes")
    w.add({"sex": None, "bmi": 30.0}, 50.0, predicted=0.0, model="diabetes")  # no slice
    got = by_slice(live_slices(log, {1: sig}, window=100)[1])
    female, male = got[("sex", "female")], got[("sex", "male")]
    assert watched_metrics(sig) == ("mae",)
    assert (female.rows, female.metrics) == (2, {"mae": 20.0})
    assert (male.rows, male.metrics) == (2, {"mae": 2.5})
    assert verdict(female, "mae", sig) == "above ceiling"
    assert verdict(male, "mae", sig) == "ok"


def test_the_declarations_slice_rules_reach_the_signature_and_must_name_features():
    from pipelines import declaration

    root = Path(__file__).resolve().parents[1]
    sig = declaration.load(root / "models" / "churn" / "model.yaml").signature()
    assert sig.slices.model_dump() == {"columns": ["gender", "SeniorCitizen", "Contract"],
                                       "min_rows": 50, "floors": {"roc_auc": 0.65},
                                       "ceilings": {}}
    assert Signature.model_validate_json(sig.model_dump_json()) == sig
    with pytest.raises(ValueError, match=r"slices names \['Region'\], which are not features"):
        churn_signature(columns=["gender", "Region"])


def test_a_model_without_slice_rules_reads_nothing(log):
    sig = churn_signature().model_copy(update={"slices": None})
    assert live_slices(log, {1: sig}, window=100) == {}


def test_status_shows_each_slice_of_the_pinned_version_against_its_rule(tmp_path, capsys):
    import shutil
    import subprocess

    from contracts.pin import Pin
    from contracts.prediction_log import migrate
    from pipelines import cli

    root = Path(__file__).resolve().parents[1]
    repo = tmp_path / "repo"
    shutil.copytree(root / "environments", repo / "environments")
    (repo / "models" / "churn").mkdir(parents=True)
    shutil.copy(root / "models" / "churn" / "model.yaml", repo / "models" / "churn")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    Pin.model_validate({
        "environment": "production",
        "model": {"name": "churn", "version": 3, "uri": "models:/churn/3", "sha256": "a" * 64},
        "lineage": {"run_id": "run-3", "git_commit": "3" * 40, "data_hash": "3" * 32,
                    "params": {}},
        "metrics": {"roc_auc": 0.84},
        "promoted": {"by": "Test Person", "at": T0.isoformat()}}).write(
            repo / "environments" / "production" / "churn" / "model.yaml")
    assert cli.main(["status", "--offline", "--repo", str(repo)]) == 0
    assert "LIVE SLICES" not in capsys.readouterr().out  # no prediction log: nothing opened

    url = f"sqlite:///{repo / '.mlflow' / 'predictions.db'}"
    (repo / ".mlflow").mkdir()
    migrate.upgrade(url)
    log = PredictionLog(url)
    w = Writer(log)
    for i in range(60):  # women: every churner scored below every stayer
        w.add({"gender": "Female", "SeniorCitizen": 0, "Contract": "One year"},
              "Yes" if i % 2 else "No", predicted="No" if i % 2 else "Yes",
              probability=0.2 if i % 2 else 0.8, version=3)
    for i in range(10):  # men: right, but too few to judge
        w.add({"gender": "Male", "SeniorCitizen": 0, "Contract": "One year"},
              "Yes" if i % 2 else "No", predicted="Yes" if i % 2 else "No",
              probability=0.8 if i % 2 else 0.2, version=3)
    w.add({"gender": "Male", "SeniorCitizen": 1, "Contract": "One year"}, "No", predicted="Yes",
          probability=0.9, version=2)  # another version than the pinned one
    log.close()

    assert cli.main(["status", "--offline", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    section = out[out.index("LIVE SLICES"):].splitlines()
    rows = {line.split()[3]: line for line in section[2:]}
    assert section[1].split() == ["ENVIRONMENT", "MODEL", "VERSION", "SLICE", "ROWS", "LIVE",
                                  "RULE"]
    assert rows["gender=Female"].split() == [
        "production", "churn", "v3", "gender=Female", "60", "accuracy=0.000", "roc_auc=0.000",
        "roc_auc", "BELOW", "FLOOR", "0.65"]
    assert rows["gender=Male"].split()[4:] == ["10", "accuracy=1.000", "roc_auc=1.000", "too",
                                               "few", "rows", "(<", "50)"]
    assert rows["SeniorCitizen=0"].split()[4:7] == ["70", "accuracy=0.143", "roc_auc=0.143"]
    assert rows["SeniorCitizen=1"].split()[4:] == ["0", "-", "too", "few", "rows", "(<", "50)"]
    assert cli.main(["status", "--offline", "--no-slices", "--repo", str(repo)]) == 0
    assert "LIVE SLICES" not in capsys.readouterr().out
