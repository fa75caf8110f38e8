"""Stage `ingest`: copy the source in, validate every row against the declared schema.

Valid rows go to a typed parquet file, invalid rows to a quarantine CSV with the reason
per row. Too many invalid rows, a missing column or an unreadable file fail the stage
with a message naming the problem, and then nothing at all is written.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.files import atomic_write_bytes, atomic_write_text
from pipelines import schema
from pipelines.params import load_params

REASON = "_reason"


class IngestError(Exception):
    """The source cannot become a training set; the message says why."""


@dataclass
class Validation:
    """Outcome of validating one source table."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    invalid_by_column: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    blank_total_charges_filled: int = 0
    extra_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.valid) + len(self.quarantine)

    @property
    def invalid_fraction(self) -> float:
        return len(self.quarantine) / self.rows if self.rows else 0.0


def read_source(path: Path) -> pd.DataFrame:
    """Read a CSV or parquet file with every value as text, so validation sees it raw."""
    if not path.is_file():
        raise IngestError(f"source {path} does not exist (run `make data`, or fix ingest.source)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            frame = frame.astype(object).where(frame.notna(), "").astype(str)
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        else:
            raise IngestError(f"source {path}: unsupported file type {suffix!r}; use .csv or .parquet")
    except IngestError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a wrong file
        raise IngestError(f"source {path} cannot be read as {suffix[1:]}: {exc}") from exc
    if frame.empty:
        raise IngestError(f"source {path} holds no rows")
    return frame


def _check_columns(frame: pd.DataFrame, source: str) -> list[str]:
    missing = [c.name for c in schema.COLUMNS if c.name not in frame.columns]
    if missing:
        raise IngestError(
            f"source {source} is missing required column(s): {', '.join(missing)} "
            f"(it has: {', '.join(map(str, frame.columns[:25]))})"
        )
    declared = {c.name for c in schema.COLUMNS}
    return [str(c) for c in frame.columns if c not in declared]


def _numeric(raw: pd.Series, column: schema.Column) -> tuple[pd.Series, pd.Series]:
    """Parse a numeric column; return (values, reason-or-empty per row)."""
    text = raw.str.strip()
    values = pd.to_numeric(text, errors="coerce")
    reasons = pd.Series("", index=raw.index, dtype=object)
    kind = "an integer" if column.type == "integer" else "a number"
    bad = values.isna() | ~np.isfinite(values.fillna(0))
    reasons[bad] = f"{column.name}: " + ("'" + raw[bad] + f"' is not {kind}")
    if column.type == "integer":
        frac = ~bad & (values.fillna(0) % 1 != 0)
        reasons[frac] = f"{column.name}: " + ("'" + raw[frac] + "' is not an integer")
        bad |= frac
    if column.min is not None:
        low = ~bad & (values < column.min)
        reasons[low] = f"{column.name}: below the minimum {column.min:g}"
        bad |= low
    if column.max is not None:
        high = ~bad & (values > column.max)
        reasons[high] = f"{column.name}: above the maximum {column.max:g}"
    return values, reasons


def _category(raw: pd.Series, column: schema.Column) -> pd.Series:
    reasons = pd.Series("", index=raw.index, dtype=object)
    unknown = ~raw.isin(column.categories)
    allowed = ", ".join(column.categories)
    reasons[unknown] = f"{column.name}: unknown category '" + raw[unknown] + f"' (allowed: {allowed})"
    return reasons


def validate(frame: pd.DataFrame, source: str = "source") -> Validation:
    """Validate every row; never raises for bad rows, only for a bad table."""
    extra = _check_columns(frame, source)
    frame = frame.reset_index(drop=True)
    typed = pd.DataFrame(index=frame.index)
    per_column: dict[str, pd.Series] = {}

    ids = frame[schema.ID.name].astype(str).str.strip()
    id_reasons = pd.Series("", index=frame.index, dtype=object)
    id_reasons[ids == ""] = f"{schema.ID.name}: empty"
    id_reasons[(ids != "") & ids.duplicated()] = f"{schema.ID.name}: duplicate of an earlier row"
    per_column[schema.ID.name] = id_reasons
    typed[schema.ID.name] = ids

    # The Telco export leaves TotalCharges blank for customers in their first month
    # (tenure 0): nothing billed yet, so the rule makes that 0.0. Blank anywhere else is invalid.
    total = frame["TotalCharges"].astype(str)
    tenure_zero = frame["tenure"].astype(str).str.strip() == "0"
    blank_new = (total.str.strip() == "") & tenure_zero
    filled = total.where(~blank_new, "0")

    for column in (*schema.FEATURES, schema.TARGET):
        raw = filled if column.name == "TotalCharges" else frame[column.name].astype(str)
        if column.type in ("integer", "number"):
            values, reasons = _numeric(raw, column)
            typed[column.name] = values  # cast to int64 once the invalid rows are out
        else:
            reasons = _category(raw, column)
            typed[column.name] = raw
        per_column[column.name] = reasons

    reason_frame = pd.DataFrame(per_column)
    broken = reason_frame != ""
    invalid = broken.any(axis=1)
    joined = ["; ".join(x for x in row if x) for row in reason_frame[invalid].itertuples(index=False)]

    quarantine = frame[invalid].copy()
    quarantine[REASON] = joined
    valid = typed[~invalid].copy()
    for column in schema.FEATURES:
        if column.type == "integer":
            valid[column.name] = valid[column.name].astype("int64")
        elif column.type == "number":
            valid[column.name] = valid[column.name].astype("float64")

    counts = {c: int(n) for c, n in broken.sum().items()}
    examples = {c: str(reason_frame.loc[broken[c], c].iloc[0]) for c, n in counts.items() if n}
    return Validation(
        valid=valid.reset_index(drop=True),
        quarantine=quarantine.reset_index(drop=True),
        invalid_by_column={c: n for c, n in counts.items() if n},
        examples=examples,
        blank_total_charges_filled=int((blank_new & ~invalid).sum()),
        extra_columns=extra,
    )


def failure_message(result: Validation, max_invalid_fraction: float) -> str:
    """The message for a table with too many invalid rows, naming columns and counts."""
    by_column = "; ".join(
        f"{c}: {n} row(s), e.g. {result.examples[c]!r}"
        for c, n in sorted(result.invalid_by_column.items(), key=lambda kv: -kv[1])
    )
    return (
        f"{len(result.quarantine)} of {result.rows} rows ({result.invalid_fraction:.1%}) fail the "
        f"schema, above ingest.max_invalid_fraction = {max_invalid_fraction:g}. By column: {by_column}"
    )


def run(source: Path, raw_dir: Path, out: Path, quarantine: Path, report: Path,
        max_invalid_fraction: float) -> Validation:
    """Validate `source` and write the four outputs, all or none."""
    frame = read_source(source)
    result = validate(frame, str(source))
    if result.invalid_fraction > max_invalid_fraction:
        raise IngestError(failure_message(result, max_invalid_fraction))

    parquet = io.BytesIO()
    result.valid.to_parquet(parquet, index=False)
    summary = {
        "rows": result.rows,
        "valid_rows": len(result.valid),
        "invalid_rows": len(result.quarantine),
        "invalid_fraction": round(result.invalid_fraction, 6),
        "invalid_by_column": result.invalid_by_column,
        "blank_total_charges_filled": result.blank_total_charges_filled,
        "extra_columns_ignored": result.extra_columns,
    }
    # Everything is rendered in memory first; only then does anything touch the disk.
    atomic_write_bytes(raw_dir / source.name, source.read_bytes())
    atomic_write_bytes(out, parquet.getvalue())
    atomic_write_text(quarantine, result.quarantine.to_csv(index=False))
    atomic_write_text(report, json.dumps(summary, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quarantine", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    limit = float(load_params(args.params)["ingest"]["max_invalid_fraction"])
    try:
        result = run(args.source, args.raw_dir, args.out, args.quarantine, args.report, limit)
    except IngestError as exc:
        print(f"ingest failed: {exc}", file=sys.stderr)
        return 1
    print(f"ingest: {len(result.valid)} valid rows, {len(result.quarantine)} quarantined "
          f"({result.invalid_fraction:.2%}), {result.blank_total_charges_filled} blank "
          "TotalCharges of new customers set to 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
