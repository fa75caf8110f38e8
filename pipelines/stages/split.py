"""Stage `split`: a seeded train/test split of the validated data (stratified for classifiers).

The source rows split exactly as they would without production rows (same seed, same test
rows, so versions stay comparable). Collected production rows train, except the newest share
(the declaration's `production.holdout`), which joins the test rows: a retrained model is also
judged on what production saw lately."""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from contracts.files import atomic_write_bytes
from pipelines import declaration
from pipelines.declaration import Declaration
from pipelines.stages.ingest import AT, ORIGIN


def recent_holdout(frame: pd.DataFrame, decl: Declaration) -> pd.Series:
    """Which rows are the newest `production.holdout` share of the production rows."""
    if ORIGIN not in frame.columns:
        return pd.Series(False, index=frame.index)
    production = frame[frame[ORIGIN] == "production"]
    count = int(round(len(production) * decl.production.holdout))
    newest = production.sort_values(AT, kind="stable").tail(count).index
    return frame.index.isin(newest)


def split(frame: pd.DataFrame, decl: Declaration) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the source rows keeping each class's share equal in both parts (classifiers);
    production rows train, but for the recent holdout, which is tested."""
    if ORIGIN not in frame.columns:
        return _split(frame, decl)
    held = recent_holdout(frame, decl)
    production = (frame[ORIGIN] == "production").to_numpy()
    train, test = _split(frame[~production].reset_index(drop=True), decl)
    return (pd.concat([train, frame[production & ~held]], ignore_index=True),
            pd.concat([test, frame[held]], ignore_index=True))


def _split(frame: pd.DataFrame, decl: Declaration) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = frame[decl.target] if decl.task != "regression" else None
    if stratify is not None:
        counts = stratify.value_counts()
        if (counts < 2).any():
            rare = ", ".join(f"{c!r} ({n})" for c, n in counts[counts < 2].items())
            raise ValueError(f"{decl.target}: class(es) {rare} have fewer than 2 valid rows; a "
                             "stratified split needs at least 2 of each")
    train, test = train_test_split(frame, test_size=decl.split.test_size,
                                   random_state=decl.split.seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def describe(frame: pd.DataFrame, decl: Declaration) -> str:
    """The target's distribution in a few words."""
    if decl.task == "regression":
        return f"mean {frame[decl.target].mean():.3f}"
    shares = frame[decl.target].value_counts(normalize=True)
    return ", ".join(f"{c} {shares.get(c, 0.0):.3f}" for c in decl.classes or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declaration", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        decl = declaration.load(args.declaration)
        train, test = split(pd.read_parquet(args.data), decl)
    except ValueError as exc:
        print(f"split: {exc}", file=sys.stderr)
        return 1
    train_bytes, test_bytes = _parquet(train), _parquet(test)
    atomic_write_bytes(args.train, train_bytes)
    atomic_write_bytes(args.test, test_bytes)
    print(f"split: {decl.name}: {len(train)} train / {len(test)} test rows; {decl.target} "
          f"train [{describe(train, decl)}] test [{describe(test, decl)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
