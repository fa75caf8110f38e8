"""`mlops collect NAME [--since WHEN]`: labelled production rows become model NAME's next
training data.

Every prediction of NAME in the log that has a label (made since WHEN, or within the log's
retention) is checked against NAME's declaration, like the source data: valid rows go to the
file params.yaml names as the model's `production` data (DVC tracks it, so the next `dvc repro`
retrains on it and its hash is the new version's lineage), invalid rows to a quarantine file
with the reason each, and a report says which window it covers and what it counts.
"""
from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.files import atomic_write_text
from contracts.prediction_log.store import PredictionLog
from pipelines import declaration
from pipelines.declaration import Declaration
from pipelines.errors import CommandError
from pipelines.predictions import database
from pipelines.source import dvc_add
from pipelines.stages import ingest

# Columns a collected file has besides the features and the target.
ID, AT = "prediction_id", "predicted_at"


def production_path(repo: Path, name: str) -> Path:
    """The model's collected-rows file, as params.yaml's models.<name>.production names it."""
    entry = declaration.sources(repo).get(name) or {}
    if not entry.get("production"):
        raise CommandError(f"params.yaml's models.{name} names no `production` file for "
                           "collected rows")
    return Path(repo) / entry["production"]


def empty_frame(decl: Declaration) -> pd.DataFrame:
    """A collected file with no rows yet: its columns only."""
    return pd.DataFrame(columns=[ID, AT, *decl.feature_names, decl.target])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def to_frame(rows: list[dict[str, Any]], decl: Declaration) -> pd.DataFrame:
    """Labelled log rows as a table of text cells, the way ingest reads a source."""
    records = []
    for r in rows:
        truth = r["value"] if decl.task == "regression" else r["label"]
        records.append({ID: r["id"], AT: r["created_at"].isoformat(),
                        **{f: _text(r["features"].get(f)) for f in decl.feature_names},
                        decl.target: _text(truth)})
    return pd.DataFrame.from_records(records, columns=list(empty_frame(decl).columns))


def validate(frame: pd.DataFrame, decl: Declaration) -> ingest.Validation:
    """Check collected rows like source rows; a feature the log never keeps is named as such."""
    if frame.empty:
        return ingest.Validation(valid=frame, quarantine=frame.assign(**{ingest.REASON: []}))
    checked = ingest.validate(frame, decl.model_copy(update={"id_columns": [ID]}),
                              "the prediction log")
    for column in decl.never_log:
        checked.quarantine[ingest.REASON] = checked.quarantine[ingest.REASON].str.replace(
            f"{column}: empty", f"{column}: never logged (declare it nullable to train on "
                                "production rows)", regex=False)
    return checked


def collect(repo: Path, name: str, since: datetime | None = None,
            log: PredictionLog | None = None) -> dict[str, Any]:
    """Write model `name`'s collected rows, quarantine and report; return the report."""
    repo = Path(repo)
    decl = declaration.load_named(repo, name)
    out = production_path(repo, name)
    if log is None:
        database.require_current(database.url(repo))
        log = PredictionLog(database.url(repo))
    rows = log.labelled(name, since)
    frame = to_frame(rows, decl)
    result = validate(frame, decl)
    before = set(pd.read_csv(out, dtype=str)[ID]) if out.is_file() else set()
    # The valid rows as they were logged (text), in the collected file's column order.
    valid = frame[frame[ID].isin(set(result.valid[ID]))] if len(result.valid) \
        else empty_frame(decl)
    report = {
        "model": name,
        "collected_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "since": since.isoformat() if since else None,
        "window": {"from": rows[0]["created_at"].isoformat() if rows else None,
                   "to": rows[-1]["created_at"].isoformat() if rows else None},
        "labelled_rows": len(rows),
        "valid_rows": len(valid),
        "quarantined_rows": len(result.quarantine),
        "quarantined_by_column": result.invalid_by_column,
        "new_rows": len(set(valid[ID]) - before),
        "file": out.relative_to(repo).as_posix(),
    }
    atomic_write_text(out, valid.to_csv(index=False))
    atomic_write_text(out.with_name(out.stem + "-quarantine.csv"),
                      result.quarantine.to_csv(index=False))
    atomic_write_text(repo / "reports" / name / "collect.json", json.dumps(report, indent=2) + "\n")
    return report


def when(text: str) -> datetime:
    """An ISO date or time (UTC when no zone is given)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time "
                                         "(e.g. 2026-11-01 or 2026-11-01T12:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="the declared model(s)")
    parser.add_argument("--since", type=when, help="only predictions made at or after this time")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")


def run(args: argparse.Namespace) -> int:
    for name in args.names:
        report = collect(args.repo, name, args.since)
        dvc_add(Path(args.repo), Path(args.repo) / report["file"])
        window = report["window"]
        span = f"{window['from']} .. {window['to']}" if window["from"] else "no labelled rows yet"
        print(f"collected {name}: {report['valid_rows']} labelled rows "
              f"({report['new_rows']} new) from {span}; {report['quarantined_rows']} quarantined")
        for column, n in report["quarantined_by_column"].items():
            print(f"  quarantined for {column}: {n}")
        print(f"  -> {report['file']} (dvc add); report in reports/{name}/collect.json")
    return 0
