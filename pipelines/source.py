"""`make data`: put the datasets that ship inside installed packages in data/source/ as CSV.

Which datasets there are, and how each is made, is data: data/source/packaged.yaml (a file
inside an installed package, or a scikit-learn bundled dataset). Nothing is downloaded. A file
already in place is left alone. A team with its own data puts its file anywhere (tracked by git
or DVC) and names it in params.yaml's `models:`.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.files import atomic_write_bytes
from pipelines.errors import CommandError

DEFAULT_DIR = Path("data/source")
# Beside the code in every copy of the repository (the demo's clone, the tests' projects).
CATALOGUE = Path(__file__).resolve().parents[1] / DEFAULT_DIR / "packaged.yaml"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PackageFile(_Entry):
    """A file inside an installed package, found with `find_spec` and never imported."""

    package: str = Field(pattern=r"^[A-Za-z_][\w.]*$")
    path: str = Field(min_length=1)


class SklearnDataset(_Entry):
    """One of scikit-learn's bundled datasets, as a frame with its target column."""

    loader: str = Field(pattern=r"^load_\w+$")
    options: dict[str, Any] = {}
    rename: dict[str, str] = {}
    class_names: bool = False  # the target's codes written as the dataset's class names


class Dataset(_Entry):
    package_file: PackageFile | None = None
    sklearn: SklearnDataset | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Dataset:
        if (self.package_file is None) == (self.sklearn is None):
            raise ValueError("give exactly one of package_file and sklearn")
        return self


class Catalogue(_Entry):
    default: list[str] = []
    datasets: dict[str, Dataset]

    @model_validator(mode="after")
    def _defaults_known(self) -> Catalogue:
        if unknown := [n for n in self.default if n not in self.datasets]:
            raise ValueError(f"{', '.join(unknown)} not under datasets")
        return self


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    """The packaged datasets; CommandError naming the file, key and problem."""
    from pipelines.declaration import explain

    try:
        return Catalogue.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        raise CommandError(f"{path}: cannot read the dataset catalogue: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CommandError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise CommandError(explain(exc, str(path))) from None


def _entry(name: str, catalogue: Catalogue | None) -> Dataset:
    catalogue = catalogue or load_catalogue()
    if name not in catalogue.datasets:
        raise CommandError(f"no packaged dataset {name!r}: one of "
                           f"{', '.join(catalogue.datasets)}")
    return catalogue.datasets[name]


def packaged_file(name: str, catalogue: Catalogue | None = None) -> Path:
    """Where dataset `name` (a file inside an installed package) lies, without importing the
    package."""
    where = _entry(name, catalogue).package_file
    if where is None:
        raise CommandError(f"{name} is not a file inside a package")
    spec = importlib.util.find_spec(where.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {where.package!r} holding {name} is not "
                                "installed; run `make venv`")
    for location in spec.submodule_search_locations:
        path = Path(location) / where.path
        if path.is_file():
            return path
    raise FileNotFoundError(f"{where.package} is installed but holds no {where.path}")


def dataset_bytes(name: str, catalogue: Catalogue | None = None) -> bytes:
    """The CSV bytes of dataset `name`."""
    catalogue = catalogue or load_catalogue()  # read once, also for packaged_file
    entry = _entry(name, catalogue)
    if entry.package_file is not None:
        return packaged_file(name, catalogue).read_bytes()
    spec = entry.sklearn
    loader = getattr(importlib.import_module("sklearn.datasets"), spec.loader, None)
    if loader is None:
        raise CommandError(f"{name}: sklearn.datasets has no {spec.loader}")
    data = loader(as_frame=True, **spec.options)
    frame = data.frame.rename(columns=spec.rename)
    if spec.class_names:
        target = spec.rename.get("target", "target")
        frame[target] = frame[target].map(dict(enumerate(data.target_names)))
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def materialize(target: Path, name: str, catalogue: Catalogue | None = None) -> bool:
    """Write dataset `name` to `target` unless a file is already there; True if written."""
    if target.exists():
        return False
    atomic_write_bytes(target, dataset_bytes(name, catalogue))
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
                        help="which datasets of the catalogue (default: its `default`)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="default data/source")
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE,
                        help="default data/source/packaged.yaml")
    args = parser.parse_args(argv)
    try:
        catalogue = load_catalogue(args.catalogue)
        if unknown := [n for n in args.names if n not in catalogue.datasets]:
            parser.error(f"unknown dataset(s) {', '.join(unknown)}: one of "
                         f"{', '.join(catalogue.datasets)}")
        for name in args.names or catalogue.default:
            target = args.dir / name
            written = materialize(target, name, catalogue)
            print(f"{target}: {'written' if written else 'already in place'}")
        if not args.names:
            for line in restore_collected(Path(".")):
                print(line)
    except (CommandError, FileNotFoundError) as exc:
        print(f"make data: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
