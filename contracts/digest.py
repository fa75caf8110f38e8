"""The digest of a model bundle: one sha256 over every file in it.

It equals what a person gets by hand:
    (cd BUNDLE && find . -type f ! -path ./registered_model_meta ! -path ./latency.json -printf '%P\\n' \\
        | LC_ALL=C sort | xargs sha256sum) | sha256sum
so a pin can be checked without this code. Two files are left out by rule:
`registered_model_meta`, because MLflow itself writes it into a version's folder whenever the
version is loaded through a `models:/` URI (into the stored artifacts themselves, on a local
artifact store), and `latency.json`, the gate's measured timings, which differ from run to run
while the verdict they led to (in gate.json, digested) does not.

A file name holding a newline could forge manifest lines (two different bundles, one
digest), and sha256sum escapes control characters and backslashes, so the command above
would no longer agree: a bundle with such a name has no digest at all.
"""
from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

_CHUNK = 1 << 20
MLFLOW_WRITES = frozenset({"registered_model_meta"})
MEASURED = frozenset({"latency.json"})
EXCLUDED = MLFLOW_WRITES | MEASURED


class UnsafeFileNameError(ValueError):
    """A bundle file name that a manifest line cannot hold unambiguously."""


def check_file_name(rel: str) -> str:
    """Return `rel` (a path inside a bundle) or raise UnsafeFileNameError if it holds a
    control character (newline included), a byte that is not UTF-8, or a backslash."""
    # Cs: bytes that are not UTF-8 come back as lone surrogates (surrogateescape).
    bad = sorted({c for c in rel if unicodedata.category(c) in ("Cc", "Cs") or c == "\\"})
    if bad:
        raise UnsafeFileNameError(
            f"bundle file name {rel!r} holds {', '.join(repr(c) for c in bad)}: control "
            "characters and backslashes are refused, they would make the digest ambiguous")
    return rel


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of one file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def manifest(bundle: Path) -> str:
    """Return the `sha256sum` listing of every file below `bundle`, sorted by path; raise
    UnsafeFileNameError if a file name could blur the listing's lines."""
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise FileNotFoundError(f"model bundle {bundle} is not a directory")
    found = {check_file_name(p.relative_to(bundle).as_posix()): p for p in bundle.rglob("*")
             if p.is_file() and p.relative_to(bundle).as_posix() not in EXCLUDED}
    if not found:
        raise FileNotFoundError(f"model bundle {bundle} holds no files")
    names = sorted(found, key=str.encode)
    return "".join(f"{file_sha256(found[name])}  {name}\n" for name in names)


def bundle_sha256(bundle: Path) -> str:
    """Return the digest of a bundle directory (sha256 of its manifest)."""
    return hashlib.sha256(manifest(bundle).encode()).hexdigest()
