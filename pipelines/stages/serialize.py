"""skops files written byte for byte the same for the same model.

skops names the arrays inside its zip after their memory addresses and stamps each entry with
the current time, so saving one model twice gives two files (and two bundle digests). Here the
arrays are renamed after their content, object ids numbered in order of appearance, the
entries sorted and stamped with a fixed time; the file loads exactly as skops wrote it.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile

import skops.io as sio

SCHEMA = "schema.json"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def _canonical_schema(node, names: dict[str, str], ids: dict[int, int]):
    """Replace every `"file"` with its content name and every `"__id__"` (a memory address
    that marks shared objects) with its rank of first appearance."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "file" and isinstance(v, str):
                out[k] = names.get(v, v)
            elif k == "__id__" and isinstance(v, int):
                out[k] = ids.setdefault(v, len(ids) + 1)
            else:
                out[k] = _canonical_schema(v, names, ids)
        return out
    if isinstance(node, list):
        return [_canonical_schema(v, names, ids) for v in node]
    return node


def canonical_skops(data: bytes) -> bytes:
    """Rewrite skops bytes deterministically (content-named arrays, sorted, fixed times)."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        entries = {info.filename: src.read(info) for info in src.infolist()}
    schema = json.loads(entries.pop(SCHEMA))
    names = {old: f"{hashlib.sha256(body).hexdigest()[:32]}.npy" for old, body in entries.items()}
    # Arrays with equal bytes share one entry: every reference points at it.
    renamed = {names[old]: body for old, body in entries.items()}
    renamed[SCHEMA] = json.dumps(_canonical_schema(schema, names, {}), indent=2, sort_keys=True).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            dst.writestr(info, renamed[name])
    return out.getvalue()


def dumps_skops(model) -> bytes:
    """The model as canonical skops bytes."""
    return canonical_skops(sio.dumps(model))
