"""The digest of a model bundle: one sha256 over every file in it.

It equals what a person gets by hand:
    (cd BUNDLE && find . -type f ! -path ./registered_model_meta ! -path ./latency.json -printf '%P\\n' \\
        | LC_ALL=C sort | xargs sha256sum) | sha256sum
so a pin can be checked without this code. Two files are left out by rule:
`registered_model_meta`, because MLflow itself writes it into a version's folder whenever the
version is loaded through a `models:/` URI (into the stored artifacts themselves, on a local
artifact store), and `latency.json`, the gate's measured timings, which differ from run to run
while the verdict they led to (in gate.json, digested) does not.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20
MLFLOW_WRITES = frozenset({"registered_model_meta"})
MEASURED = frozenset({"latency.json"})
EXCLUDED = MLFLOW_WRITES | MEASURED


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of one file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def manifest(bundle: Path) -> str:
    """Return the `sha256sum` listing of every file below `bundle`, sorted by path."""
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise FileNotFoundError(f"model bundle {bundle} is not a directory")
    files = sorted(
        (p for p in bundle.rglob("*")
         if p.is_file() and p.relative_to(bundle).as_posix() not in EXCLUDED),
        key=lambda p: p.relative_to(bundle).as_posix().encode(),
    )
    if not files:
        raise FileNotFoundError(f"model bundle {bundle} holds no files")
    return "".join(f"{file_sha256(p)}  {p.relative_to(bundle).as_posix()}\n" for p in files)


def bundle_sha256(bundle: Path) -> str:
    """Return the digest of a bundle directory (sha256 of its manifest)."""
    return hashlib.sha256(manifest(bundle).encode()).hexdigest()
