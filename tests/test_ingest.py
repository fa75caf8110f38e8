"""Data tests: a declaration accepts its data and names every violation, for any model."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pipeline_fixtures import make_binary, make_regression, with_changes, write_csv
from project import call

from pipelines import declaration
from pipelines.stages import ingest

OUTPUTS = ("validated.parquet", "quarantine.csv", "report.json")


def run_ingest(tmp_path: Path, source: Path, decl) -> ingest.Validation:
    return ingest.run(decl, source, tmp_path / "validated.parquet", tmp_path / "quarantine.csv",
                      tmp_path / "report.json")


def assert_nothing_written(tmp_path: Path) -> None:
    assert [p.name for p in tmp_path.iterdir() if p.name in OUTPUTS] == []


def test_telco_data_passes_with_the_declared_rule_filling_blank_total_charges(tmp_path, telco_csv,
                                                                             churn):
    result = run_ingest(tmp_path, telco_csv, churn)
    assert result.rows == 7043 and len(result.quarantine) == 0
    assert result.filled_by_rule == [{"column": "TotalCharges", "fill_blank": 0.0,
                                      "when": "tenure = '0'", "filled": 11}]
    valid = pd.read_parquet(tmp_path / "validated.parquet")
    new = valid[valid["tenure"] == 0]
    assert len(new) == 11 and (new["TotalCharges"] == 0.0).all()
    assert valid["tenure"].dtype == "int64" and valid["MonthlyCharges"].dtype == "float64"


def test_without_the_cleaning_rule_the_blank_charges_are_quarantined(tmp_path, telco_csv, churn):
    result = run_ingest(tmp_path, telco_csv, with_changes(churn, cleaning=[]))
    assert set(result.quarantine["_reason"]) == {"TotalCharges: empty"}
    assert len(result.quarantine) == 11


def test_missing_column_fails_at_once_naming_it(tmp_path, telco, churn):
    source = write_csv(telco.drop(columns=["tenure", "Contract"]), tmp_path / "src.csv")
    with pytest.raises(ingest.IngestError, match=r"missing required column\(s\): tenure, Contract"):
        run_ingest(tmp_path, source, churn)
    assert_nothing_written(tmp_path)


def test_wrong_type_rows_are_quarantined_with_reason(tmp_path, telco, churn):
    bad = telco.copy()
    bad.loc[[3, 8], "tenure"] = ["abc", "12.5"]
    result = run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"), churn)
    assert len(result.quarantine) == 2
    quarantined = pd.read_csv(tmp_path / "quarantine.csv", dtype=str)
    assert quarantined["_reason"].tolist() == ["tenure: 'abc' is not an integer",
                                               "tenure: '12.5' is not an integer"]
    assert len(pd.read_parquet(tmp_path / "validated.parquet")) == 7041


def test_unknown_category_is_named_with_the_allowed_ones(tmp_path, telco, churn):
    bad = telco.copy()
    bad.loc[5, "Contract"] = "Monthly"
    result = run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"), churn)
    assert result.quarantine["_reason"].tolist() == [
        "Contract: unknown category 'Monthly' (allowed: Month-to-month, One year, Two year)"]


def test_out_of_range_and_blank_total_charges_of_old_customer_are_invalid(tmp_path, telco, churn):
    bad = telco.copy()
    bad.loc[1, "MonthlyCharges"] = "-5"
    bad.loc[2, "TotalCharges"] = " "  # tenure 34: a blank here is not a new customer
    bad.loc[4, "customerID"] = bad.loc[3, "customerID"]
    result = run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"), churn)
    assert sorted(result.quarantine["_reason"]) == [
        "MonthlyCharges: below the minimum 0", "TotalCharges: empty",
        "customerID: duplicate of an earlier row"]


def test_too_many_invalid_rows_fail_naming_columns_and_counts(tmp_path, telco, churn):
    bad = telco.copy()
    bad.loc[:199, "tenure"] = "unknown"
    bad.loc[:49, "PaymentMethod"] = "Cash"
    with pytest.raises(ingest.IngestError) as err:
        run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"), churn)
    message = str(err.value)
    assert "200 of 7043 rows (2.8%) fail the schema" in message
    assert "max_invalid_fraction = 0.01" in message
    assert "tenure: 200 row(s)" in message and "PaymentMethod: 50 row(s)" in message
    assert_nothing_written(tmp_path)


def test_file_that_is_not_a_table_fails_clearly(tmp_path, churn):
    source = tmp_path / "src.parquet"
    source.write_bytes(b"\x00\x01 this is not parquet")
    with pytest.raises(ingest.IngestError, match="cannot be read as parquet"):
        run_ingest(tmp_path, source, churn)
    sheet = tmp_path / "src.xlsx"
    sheet.write_text("x")
    with pytest.raises(ingest.IngestError, match="unsupported file type '.xlsx'"):
        run_ingest(tmp_path, sheet, churn)
    with pytest.raises(ingest.IngestError, match="does not exist"):
        run_ingest(tmp_path, tmp_path / "nowhere.csv", churn)
    assert_nothing_written(tmp_path)


def test_parquet_source_gives_the_same_rows_as_csv(tmp_path, telco_csv, churn):
    pq = tmp_path / "telco.parquet"
    pd.read_csv(telco_csv).to_parquet(pq, index=False)
    (tmp_path / "a").mkdir()
    result = run_ingest(tmp_path / "a", pq, churn)
    assert len(result.valid) == 7043 and result.filled_by_rule[0]["filled"] == 11


def test_nullable_feature_keeps_blanks_and_a_regression_target_must_be_a_number(tmp_path):
    frame = make_regression(rows=60).astype(str)
    frame.loc[3, "size_m2"] = ""
    frame.loc[7, "price_k"] = "expensive"
    decl = declaration.parse(
        "name: flats\ntask: regression\ntarget: price_k\n"
        "features:\n  size_m2: {type: number, min: 0, max: 500, nullable: true}\n"
        "  rooms: {type: integer, min: 1, max: 10}\n"
        "  city: {type: category, categories: [lyon, nantes, paris]}\n"
        "train: {estimator: ridge}\n", "flats.yaml")
    result = run_ingest(tmp_path, write_csv(frame, tmp_path / "flats.csv"),
                        with_changes(decl, max_invalid_fraction=0.05))
    assert result.quarantine["_reason"].tolist() == ["price_k: 'expensive' is not a number"]
    valid = pd.read_parquet(tmp_path / "validated.parquet")
    assert valid["size_m2"].isna().sum() == 1 and valid["price_k"].dtype == "float64"


def test_stage_cli_exits_nonzero_with_message_and_writes_nothing(tmp_path, telco):
    source = write_csv(telco.drop(columns=["Churn"]), tmp_path / "src.csv")
    decl = Path(__file__).resolve().parents[1] / "models/churn/model.yaml"
    proc = call(ingest.main, [
        "--declaration", decl, "--source", source, "--out", tmp_path / "validated.parquet",
        "--quarantine", tmp_path / "quarantine.csv", "--report", tmp_path / "report.json"])
    assert proc.returncode == 1
    assert "ingest failed: source" in proc.stderr and "missing required column(s): Churn" in proc.stderr
    assert_nothing_written(tmp_path)


def test_report_counts_quarantined_rows_by_column(tmp_path, churn):
    frame = make_binary(rows=200)
    frame.loc[0, "channel"] = "fax"
    decl = declaration.parse(
        "name: fraud\ntask: binary\ntarget: fraud\nclasses: ['no', 'yes']\npositive_class: 'yes'\n"
        "id_columns: [transaction_id]\nmax_invalid_fraction: 0.05\n"
        "features:\n  amount: {type: number, min: 0, nullable: true}\n"
        "  account_age_days: {type: integer, min: 0}\n"
        "  channel: {type: category, categories: [app, store, web]}\n"
        "train: {estimator: logistic_regression}\n", "fraud.yaml")
    run_ingest(tmp_path, write_csv(frame, tmp_path / "src.csv"), decl)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["invalid_rows"] == 1 and report["invalid_by_column"] == {"channel": 1}
    assert report["model"] == "fraud" and report["valid_rows"] == 199
