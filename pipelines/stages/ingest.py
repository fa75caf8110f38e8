"""Stage `ingest`: validate every row of a model's source against its declaration.

Declared cleaning rules run first (on the raw text); then every id column, feature and the
target is checked against its declared type, allowed categories, range and emptiness. Valid
rows go to a typed parquet file, invalid rows to a quarantine CSV with the reason per row.
Too many invalid rows, a missing column or an unreadable file fail the stage with a message
naming the problem, and then nothing at all is written.

Labelled production rows (`mlops collect`) are validated the same way and, when the
declaration's `production.combine` is `append`, join the source rows; every valid row says
where it came from (`_origin`: source or production) and when it was predicted (`_at`), so the
split can hold the newest production rows out for evaluation.
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
from pipelines import declaration
from pipelines.declaration import Declaration
from pipelines.declaration.spec import FeatureSpec

REASON = "_reason"
ORIGIN, AT = "_origin", "_at"
PRODUCTION_ID, PRODUCTION_AT = "prediction_id", "predicted_at"


class IngestError(Exception):
    """The source cannot become a training set; the message says why."""


@dataclass
class Validation:
    """Outcome of validating one source table."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    invalid_by_column: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    filled_by_rule: list[dict] = field(default_factory=list)
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
        raise IngestError(f"source {path} does not exist (run `make data`, or fix "
                          "params.yaml's models.<name>.source)")
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


def _check_columns(frame: pd.DataFrame, decl: Declaration, source: str) -> list[str]:
    required = [*decl.id_columns, *decl.features, decl.target]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise IngestError(
            f"source {source} is missing required column(s): {', '.join(missing)} "
            f"(it has: {', '.join(map(str, frame.columns[:25]))})")
    return [str(c) for c in frame.columns if c not in set(required)]


def _blank(raw: pd.Series) -> pd.Series:
    return raw.str.strip() == ""


def _numeric(name: str, raw: pd.Series, spec: FeatureSpec) -> tuple[pd.Series, pd.Series]:
    """Parse a numeric column; return (values, reason-or-empty per row)."""
    values = pd.to_numeric(raw.str.strip(), errors="coerce")
    reasons = pd.Series("", index=raw.index, dtype=object)
    blank = _blank(raw)
    kind = "an integer" if spec.type == "integer" else "a number"
    bad = ~blank & (values.isna() | ~np.isfinite(values.fillna(0)))
    reasons[bad] = f"{name}: " + ("'" + raw[bad] + f"' is not {kind}")
    if not spec.nullable:
        reasons[blank] = f"{name}: empty"
        bad |= blank
    if spec.type == "integer":
        frac = ~bad & ~blank & (values.fillna(0) % 1 != 0)
        reasons[frac] = f"{name}: " + ("'" + raw[frac] + "' is not an integer")
        bad |= frac
    if spec.min is not None:
        low = ~bad & (values < spec.min)
        reasons[low] = f"{name}: below the minimum {spec.min:g}"
        bad |= low
    if spec.max is not None:
        high = ~bad & (values > spec.max)
        reasons[high] = f"{name}: above the maximum {spec.max:g}"
    return values.where(~blank), reasons


def _category(name: str, raw: pd.Series, allowed: list[str], nullable: bool) -> pd.Series:
    reasons = pd.Series("", index=raw.index, dtype=object)
    blank = _blank(raw)
    unknown = ~raw.isin(allowed) & ~(blank & nullable)
    shown = ", ".join(allowed)
    reasons[unknown & blank] = f"{name}: empty"
    reasons[unknown & ~blank] = (f"{name}: unknown category '" + raw[unknown & ~blank]
                                 + f"' (allowed: {shown})")
    return reasons


def _clean(frame: pd.DataFrame, decl: Declaration) -> tuple[pd.DataFrame, list[dict]]:
    """Apply the declared cleaning rules to the raw text; return it and what each rule did."""
    frame = frame.copy()
    applied = []
    for rule in decl.cleaning:
        raw = frame[rule.column].astype(str)
        match = _blank(raw)
        for column, value in rule.when.items():
            match &= frame[column].astype(str).str.strip() == value
        frame.loc[match, rule.column] = str(rule.fill_blank)
        condition = " and ".join(f"{c} = {v!r}" for c, v in rule.when.items()) or "always"
        applied.append({"column": rule.column, "fill_blank": rule.fill_blank,
                        "when": condition, "filled": int(match.sum())})
    return frame, applied


def validate(frame: pd.DataFrame, decl: Declaration, source: str = "source") -> Validation:
    """Validate every row; never raises for bad rows, only for a bad table."""
    extra = _check_columns(frame, decl, source)
    frame = frame.reset_index(drop=True)
    cleaned, applied = _clean(frame, decl)
    typed = pd.DataFrame(index=frame.index)
    per_column: dict[str, pd.Series] = {}

    if decl.id_columns:
        ids = cleaned[decl.id_columns].astype(str).apply(lambda c: c.str.strip())
        for column in decl.id_columns:
            reasons = pd.Series("", index=frame.index, dtype=object)
            reasons[ids[column] == ""] = f"{column}: empty"
            per_column[column] = reasons
            typed[column] = ids[column]
        duplicate = ids.duplicated() & (ids != "").all(axis=1)
        first = decl.id_columns[0]
        per_column[first] = per_column[first].where(
            ~duplicate, f"{', '.join(decl.id_columns)}: duplicate of an earlier row")

    for name, spec in decl.features.items():
        raw = cleaned[name].astype(str)
        if spec.type == "category":
            per_column[name] = _category(name, raw, spec.categories or [], spec.nullable)
            typed[name] = raw.where(~_blank(raw), "")
        else:
            typed[name], per_column[name] = _numeric(name, raw, spec)

    raw_target = cleaned[decl.target].astype(str)
    if decl.task == "regression":
        target_spec = FeatureSpec(type="number")
        typed[decl.target], per_column[decl.target] = _numeric(decl.target, raw_target,
                                                               target_spec)
    else:
        per_column[decl.target] = _category(decl.target, raw_target, decl.classes or [], False)
        typed[decl.target] = raw_target

    reason_frame = pd.DataFrame(per_column)
    broken = reason_frame != ""
    invalid = broken.any(axis=1)
    joined = ["; ".join(x for x in row if x) for row in reason_frame[invalid].itertuples(index=False)]
    quarantine = frame[invalid].copy()
    quarantine[REASON] = joined
    valid = typed[~invalid].copy()
    for name, spec in decl.features.items():
        if spec.type == "integer" and not valid[name].isna().any():
            valid[name] = valid[name].astype("int64")
        elif spec.type != "category":
            valid[name] = valid[name].astype("float64")
    if decl.task == "regression":
        valid[decl.target] = valid[decl.target].astype("float64")

    counts = {c: int(n) for c, n in broken.sum().items()}
    examples = {c: str(reason_frame.loc[broken[c], c].iloc[0]) for c, n in counts.items() if n}
    return Validation(
        valid=valid.reset_index(drop=True),
        quarantine=quarantine.reset_index(drop=True),
        invalid_by_column={c: n for c, n in counts.items() if n},
        examples=examples,
        filled_by_rule=applied,
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
        f"schema, above max_invalid_fraction = {max_invalid_fraction:g}. By column: {by_column}"
    )


def production_rows(path: Path, decl: Declaration) -> Validation | None:
    """The collected production rows, validated (None when there are none)."""
    if not path.is_file() or len(path.read_text().splitlines()) < 2:
        return None
    frame = read_source(path)
    result = validate(frame, decl.model_copy(update={"id_columns": [PRODUCTION_ID]}), str(path))
    predicted_at = dict(zip(frame[PRODUCTION_ID], frame[PRODUCTION_AT]))
    result.valid[AT] = pd.to_datetime(result.valid[PRODUCTION_ID].map(predicted_at), utc=True,
                                      errors="coerce")
    return result


def combined(source: Validation, production: Validation | None, decl: Declaration) -> pd.DataFrame:
    """The training set: source rows, and production rows when the declaration appends them."""
    rows = source.valid.assign(**{ORIGIN: "source", AT: pd.NaT})
    rows[AT] = pd.to_datetime(rows[AT], utc=True)
    if production is None or decl.production.combine == "none" or production.valid.empty:
        return rows
    extra = production.valid.drop(columns=[PRODUCTION_ID]).assign(**{ORIGIN: "production"})
    return pd.concat([rows, extra], ignore_index=True)


def run(decl: Declaration, source: Path, out: Path, quarantine: Path, report: Path,
        production: Path | None = None) -> Validation:
    """Validate `source` (and the collected `production` rows) and write the three outputs,
    all or none."""
    frame = read_source(source)
    result = validate(frame, decl, str(source))
    if result.invalid_fraction > decl.max_invalid_fraction:
        raise IngestError(failure_message(result, decl.max_invalid_fraction))
    collected = production_rows(production, decl) if production is not None else None
    rows = combined(result, collected, decl)
    parquet = io.BytesIO()
    rows.to_parquet(parquet, index=False)
    summary = {
        "model": decl.name,
        "source": str(source),
        "rows": result.rows,
        "valid_rows": len(result.valid),
        "invalid_rows": len(result.quarantine),
        "invalid_fraction": round(result.invalid_fraction, 6),
        "invalid_by_column": result.invalid_by_column,
        "cleaning": result.filled_by_rule,
        "extra_columns_ignored": result.extra_columns,
        "production_rows": 0 if collected is None else collected.rows,
        "production_valid_rows": 0 if collected is None else len(collected.valid),
        "production_used": int((rows[ORIGIN] == "production").sum()),
    }
    bad = result.quarantine if collected is None or collected.quarantine.empty else pd.concat(
        [result.quarantine.assign(**{ORIGIN: "source"}),
         collected.quarantine.assign(**{ORIGIN: "production"})], ignore_index=True)
    # Everything is rendered in memory first; only then does anything touch the disk.
    atomic_write_bytes(out, parquet.getvalue())
    atomic_write_text(quarantine, bad.to_csv(index=False))
    atomic_write_text(report, json.dumps(summary, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declaration", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quarantine", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--production", type=Path,
                        help="labelled production rows collected by `mlops collect`")
    args = parser.parse_args(argv)
    try:
        decl = declaration.load(args.declaration)
        result = run(decl, args.source, args.out, args.quarantine, args.report, args.production)
    except (IngestError, declaration.DeclarationError) as exc:
        print(f"ingest failed: {exc}", file=sys.stderr)
        return 1
    filled = ", ".join(f"{r['filled']} blank {r['column']} filled ({r['when']})"
                       for r in result.filled_by_rule)
    print(f"ingest: {decl.name}: {len(result.valid)} valid rows, {len(result.quarantine)} "
          f"quarantined ({result.invalid_fraction:.2%}){'; ' + filled if filled else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
