"""A model is a declaration: validated with errors that name the file, the key and the problem,
and drafted from data by `mlops new-model`, which refuses bad input and then writes nothing."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_fixtures import make_binary, make_multiclass, make_regression, write_csv
from project import make_project, mlops, run

from pipelines import declaration

ROOT = Path(__file__).resolve().parents[1]


def broken_churn(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "models" / "churn" / "model.yaml"
    path.parent.mkdir(parents=True)
    path.write_text((ROOT / "models/churn/model.yaml").read_text().replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, expected", [
    ("tenure: {type: integer, min: 0,", "tenure: {type: integer, min: zero,",
     "features.tenure.min: Input should be a valid number"),
    ("task: binary", "task: ranking", "task: Input should be 'binary', 'multiclass' or 'regression'"),
    ("positive_class: \"Yes\"", "positive_class: \"Maybe\"",
     "positive_class 'Maybe' is not one of the classes ['No', 'Yes']"),
    ("  estimator: logistic_regression", "  estimator: xgboost",
     "train.estimator 'xgboost' is not one of logistic_regression, gradient_boosting"),
    ("segments: [Contract]", "segments: [Region]", "slices names ['Region'], which are not features"),
    ("floors: {roc_auc: 0.80,", "floors: {rmse: 0.80,", "gates.floors names ['rmse']"),
    ("name: churn", "name: Churn_Model", "name: model name 'Churn_Model' is not a DNS-1123 label"),
])
def test_a_broken_declaration_is_named_by_file_key_and_problem(tmp_path, old, new, expected):
    path = broken_churn(tmp_path, old, new)
    with pytest.raises(declaration.DeclarationError) as err:
        declaration.load(path)
    assert f"{path}: " in str(err.value) and expected in str(err.value)


def test_a_declaration_in_another_models_folder_is_refused(tmp_path):
    path = broken_churn(tmp_path, "name: churn", "name: other")
    with pytest.raises(declaration.DeclarationError, match="differs from its folder 'churn'"):
        declaration.load(path)


@pytest.fixture()
def project(tmp_path) -> Path:
    """The project's files in a fresh git repository (nothing trained)."""
    return make_project(tmp_path / "repo")


def onboard(project: Path, *args: str, check: bool = True):
    return mlops(["new-model", *args], project, check=check)


def test_new_model_drafts_a_binary_model_flagging_ids_and_empty_cells(project):
    write_csv(make_binary(), project / "data/source/fraud.csv")
    out = onboard(project, "fraud", "--data", "data/source/fraud.csv", "--target", "fraud").stdout
    assert "a binary model of fraud" in out
    assert "id-like columns (dropped from the features): transaction_id" in out
    assert "amount: 31 empty cells, declared nullable" in out
    decl = declaration.load_named(project, "fraud")
    assert decl.classes == ["no", "yes"] and decl.positive_class == "yes"
    assert decl.id_columns == ["transaction_id"]
    amount = decl.features["amount"]
    assert amount.type == "number" and amount.nullable and amount.min == 0
    assert decl.features["channel"].categories == ["app", "store", "web"]
    age = decl.features["account_age_days"]
    assert age.type == "integer" and age.max > 2990  # the observed max, widened
    # Wired into the pipeline and every environment, the data versioned by DVC.
    assert declaration.sources(project)["fraud"] == {"source": "data/source/fraud.csv",
                                                     "production": "data/fraud/production.csv"}
    assert (project / "data/source/fraud.csv.dvc").is_file()
    # Its collected production rows start empty (their columns only), versioned by DVC too.
    assert (project / "data/fraud/production.csv").read_text().splitlines() == [
        "prediction_id,predicted_at,amount,account_age_days,channel,fraud"]
    assert (project / "data/fraud/production.csv.dvc").is_file()
    from pipelines.argo.workflow import stages

    assert {s.name for s in stages(project) if s.model == "fraud"} == {
        f"{s}@fraud" for s in ("ingest", "split", "train", "export", "evaluate", "gate")}
    dvc = yaml.safe_load((project / "dvc.yaml").read_text())
    assert "fraud ROC" in {next(iter(p)) for p in dvc["plots"]}
    for env in ("staging", "production"):
        pin = yaml.safe_load((project / f"environments/{env}/fraud/model.yaml").read_text())
        assert pin["environment"] == env and pin["model"] is None


def test_new_model_guesses_multiclass_and_regression_from_the_target(project, monkeypatch):
    # What is guessed is the subject here; the binary test above checks that DVC tracks the data
    # (each `dvc add` is a second of DVC's start-up).
    monkeypatch.setattr("pipelines.declaration.onboard.dvc_add", lambda repo, path: None)
    write_csv(make_multiclass(), project / "data/tiers.csv")
    write_csv(make_regression(), project / "data/flats.csv")
    onboard(project, "tiers", "--data", "data/tiers.csv", "--target", "tier")
    onboard(project, "flats", "--data", "data/flats.csv", "--target", "price_k")
    tiers, flats = declaration.load_named(project, "tiers"), declaration.load_named(project, "flats")
    assert tiers.task == "multiclass" and tiers.classes == ["bronze", "gold", "silver"]
    assert flats.task == "regression" and flats.classes is None
    assert flats.features["rooms"].type == "integer" and flats.features["size_m2"].min >= 0
    assert flats.train.estimator == "ridge"


def status(project: Path) -> str:
    return run(["git", "status", "--porcelain", "--untracked-files=all"], project).stdout


@pytest.mark.parametrize("args, message", [
    (["churn", "--target", "fraud"], "a model named 'churn' already exists"),
    (["Fraud_Model", "--target", "fraud"], "is not a DNS-1123 label"),
    (["fraud", "--target", "is_fraud"], "target 'is_fraud' is not a column of the data"),
    (["fraud", "--target", "channel", "--task", "regression"], "is not numeric"),
    (["fraud", "--target", "fraud", "--positive-class", "maybe"], "'maybe' is not a value of fraud"),
])
def test_new_model_refuses_and_writes_nothing(project, args, message):
    write_csv(make_binary(rows=300), project / "data/fraud.csv")
    before = status(project)
    proc = onboard(project, *args[:1], "--data", "data/fraud.csv", *args[1:], check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert status(project) == before


def test_new_model_refuses_a_single_valued_target_and_an_unreadable_file(project):
    frame = make_binary(rows=100).assign(fraud="no")
    write_csv(frame, project / "data/fraud.csv")
    (project / "data/broken.parquet").write_bytes(b"not parquet")
    before = status(project)
    proc = onboard(project, "fraud", "--data", "data/fraud.csv", "--target", "fraud", check=False)
    assert proc.returncode == 2 and "holds a single value ('no' in every row)" in proc.stderr
    proc = onboard(project, "fraud", "--data", "data/broken.parquet", "--target", "x", check=False)
    assert proc.returncode == 2 and "cannot be read as parquet" in proc.stderr
    assert status(project) == before
