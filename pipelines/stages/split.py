"""Stage `split`: a stratified, seeded train/test split of the validated data."""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from contracts.files import atomic_write_bytes
from pipelines import schema
from pipelines.params import load_params


def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split keeping the churn rate equal in both parts."""
    if not 0 < test_size < 1:
        raise ValueError(f"split.test_size must be between 0 and 1, got {test_size}")
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[schema.TARGET.name]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    p = load_params(args.params)["split"]
    train, test = split(pd.read_parquet(args.data), float(p["test_size"]), int(p["seed"]))
    train_bytes, test_bytes = _parquet(train), _parquet(test)
    atomic_write_bytes(args.train, train_bytes)
    atomic_write_bytes(args.test, test_bytes)
    rate = lambda f: (f[schema.TARGET.name] == schema.POSITIVE_CLASS).mean()
    print(f"split: {len(train)} train / {len(test)} test rows, churn rate "
          f"{rate(train):.3f} / {rate(test):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
