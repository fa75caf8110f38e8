"""Data tests: the declared schema accepts the Telco data and names every violation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipelines.stages import ingest

OUTPUTS = ("raw", "validated.parquet", "quarantine.csv", "report.json")


def run_ingest(tmp_path: Path, source: Path, limit: float = 0.01) -> ingest.Validation:
    return ingest.run(source, tmp_path / "raw", tmp_path / "validated.parquet",
                      tmp_path / "quarantine.csv", tmp_path / "report.json", limit)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def assert_nothing_written(tmp_path: Path) -> None:
    assert [p.name for p in tmp_path.iterdir() if p.name in OUTPUTS] == []


def test_telco_data_passes_with_blank_total_charges_of_new_customers_set_to_zero(tmp_path, telco_csv):
    result = run_ingest(tmp_path, telco_csv)
    assert result.rows == 7043 and len(result.quarantine) == 0
    assert result.blank_total_charges_filled == 11
    valid = pd.read_parquet(tmp_path / "validated.parquet")
    new = valid[valid["tenure"] == 0]
    assert len(new) == 11 and (new["TotalCharges"] == 0.0).all()
    assert valid["tenure"].dtype == "int64" and valid["MonthlyCharges"].dtype == "float64"
    assert (tmp_path / "raw" / telco_csv.name).read_bytes() == telco_csv.read_bytes()


def test_missing_column_fails_at_once_naming_it(tmp_path, telco):
    source = write_csv(telco.drop(columns=["tenure", "Contract"]), tmp_path / "src.csv")
    with pytest.raises(ingest.IngestError, match=r"missing required column\(s\): tenure, Contract"):
        run_ingest(tmp_path, source)
    assert_nothing_written(tmp_path)


def test_wrong_type_rows_are_quarantined_with_reason(tmp_path, telco):
    bad = telco.copy()
    bad.loc[[3, 8], "tenure"] = ["abc", "12.5"]
    result = run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"))
    assert len(result.quarantine) == 2
    quarantined = pd.read_csv(tmp_path / "quarantine.csv", dtype=str)
    assert quarantined["_reason"].tolist() == ["tenure: 'abc' is not an integer",
                                               "tenure: '12.5' is not an integer"]
    assert len(pd.read_parquet(tmp_path / "validated.parquet")) == 7041


def test_unknown_category_is_named_with_the_allowed_ones(tmp_path, telco):
    bad = telco.copy()
    bad.loc[5, "Contract"] = "Monthly"
    result = run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"))
    assert result.quarantine["_reason"].tolist() == [
        "Contract: unknown category 'Monthly' (allowed: Month-to-month, One year, Two year)"]


def test_out_of_range_and_blank_total_charges_of_old_customer_are_invalid(tmp_path, telco):
    bad = telco.copy()
    bad.loc[1, "MonthlyCharges"] = "-5"
    bad.loc[2, "TotalCharges"] = " "  # tenure 34: a blank here is not a new customer
    result = run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"))
    reasons = sorted(result.quarantine["_reason"])
    assert reasons == ["MonthlyCharges: below the minimum 0", "TotalCharges: ' ' is not a number"]


def test_too_many_invalid_rows_fail_naming_columns_and_counts(tmp_path, telco):
    bad = telco.copy()
    bad.loc[:199, "tenure"] = "unknown"
    bad.loc[:49, "PaymentMethod"] = "Cash"
    with pytest.raises(ingest.IngestError) as err:
        run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"), limit=0.01)
    message = str(err.value)
    assert "200 of 7043 rows (2.8%) fail the schema" in message
    assert "ingest.max_invalid_fraction = 0.01" in message
    assert "tenure: 200 row(s)" in message and "PaymentMethod: 50 row(s)" in message
    assert_nothing_written(tmp_path)


def test_file_that_is_not_a_table_fails_clearly(tmp_path):
    source = tmp_path / "src.parquet"
    source.write_bytes(b"\x00\x01 this is not parquet")
    with pytest.raises(ingest.IngestError, match="cannot be read as parquet"):
        run_ingest(tmp_path, source)
    sheet = tmp_path / "src.xlsx"
    sheet.write_text("x")
    with pytest.raises(ingest.IngestError, match="unsupported file type '.xlsx'"):
        run_ingest(tmp_path, sheet)
    with pytest.raises(ingest.IngestError, match="does not exist"):
        run_ingest(tmp_path, tmp_path / "nowhere.csv")
    assert_nothing_written(tmp_path)


def test_parquet_source_gives_the_same_rows_as_csv(tmp_path, telco_csv):
    pq = tmp_path / "telco.parquet"
    pd.read_csv(telco_csv).to_parquet(pq, index=False)
    (tmp_path / "a").mkdir()
    result = run_ingest(tmp_path / "a", pq)
    assert len(result.valid) == 7043 and result.blank_total_charges_filled == 11


def test_stage_cli_exits_nonzero_with_message_and_writes_nothing(tmp_path, telco):
    source = write_csv(telco.drop(columns=["Churn"]), tmp_path / "src.csv")
    params = tmp_path / "params.yaml"
    params.write_text("ingest:\n  max_invalid_fraction: 0.01\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.stages.ingest", "--source", str(source), "--raw-dir",
         str(tmp_path / "raw"), "--out", str(tmp_path / "validated.parquet"), "--quarantine",
         str(tmp_path / "quarantine.csv"), "--report", str(tmp_path / "report.json"),
         "--params", str(params)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "ingest failed: source" in proc.stderr and "missing required column(s): Churn" in proc.stderr
    assert_nothing_written(tmp_path)


def test_report_counts_quarantined_rows_by_column(tmp_path, telco):
    bad = telco.copy()
    bad.loc[0, "gender"] = "X"
    run_ingest(tmp_path, write_csv(bad, tmp_path / "src.csv"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["invalid_rows"] == 1 and report["invalid_by_column"] == {"gender": 1}
