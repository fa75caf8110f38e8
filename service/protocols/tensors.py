"""Open Inference Protocol tensors to columns: one named input per feature, the batch first.

Data comes as JSON (`data`, flat or nested row-major) or, with the binary tensor extension,
as raw little-endian bytes after the JSON header (`binary_data_size`; BYTES elements each
prefixed by a 4-byte length). Either way the signature's rules apply exactly as on /v1: a
JSON value through the same decoder, a binary one through the same checks in numpy.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any, Literal, Union

import msgspec
import numpy as np

from contracts.signature import Feature, Signature
from service.validation import RequestCodec, RequestInvalid

_NUMPY = {"INT64": np.dtype("<i8"), "FP64": np.dtype("<f8")}
_FLOATS = msgspec.json.Decoder(list[float | None])


def datatype(feature: Feature) -> str:
    """A feature's tensor datatype: BYTES, INT64, or FP64 (also for an integer that may be
    empty: INT64 has no NaN to say so)."""
    if feature.type == "category":
        return "BYTES"
    return "INT64" if feature.type == "integer" and not feature.nullable else "FP64"


class TensorInvalid(Exception):
    """A request the protocol refuses with 400; the message names the input and the rule."""


class InferInput(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: msgspec.Raw = msgspec.Raw()  # empty when absent (msgspec takes no Raw in a union)
    parameters: dict[str, Any] | None = None


class RequestedOutput(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct):
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


_REQUEST = msgspec.json.Decoder(InferRequest)


def parse(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes]:
    """The JSON header and the binary data after it (empty without the extension)."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise TensorInvalid(f"Inference-Header-Content-Length {header_length!r} is not a "
                                f"length within the body ({len(body)} bytes)")
        cut = int(header_length)
        head, binary = body[:cut], body[cut:]
    else:
        head, binary = body, b""
    try:
        return _REQUEST.decode(head), binary
    except msgspec.ValidationError as exc:
        raise TensorInvalid(f"not an inference request: {exc}") from None
    except msgspec.DecodeError as exc:
        what = "the body is empty" if not head.strip() else "the body is not valid JSON"
        raise TensorInvalid(f"{what} ({exc})") from None


@lru_cache(maxsize=8)
def _typed(codec: RequestCodec) -> tuple[msgspec.json.Decoder, dict[type, int], list[int],
                                         list[int]]:
    """A decoder that checks a whole JSON request in one pass: each input is a struct tagged
    by its feature's name, with that feature's datatype and element type, and no parameters
    (those carry the binary extension's sizes: the general path reads them). Also the
    features whose values need a second look (whole numbers sent as FP64, empty categories)."""
    kinds = []
    features = codec.signature.features
    for i, f in enumerate(features):
        element = codec.types[i]
        if f.type == "integer" and datatype(f) == "FP64":
            element = float | None  # checked to be whole numbers afterwards
        kinds.append(msgspec.defstruct(
            f"Input{i}", [("shape", list[int]), ("datatype", Literal[datatype(f)]),
                          ("data", list[element], []), ("parameters", None, None)],
            tag_field="name", tag=f.name, gc=False))  # acyclic: no collector work per request
    request = msgspec.defstruct("TypedInferRequest", [
        ("inputs", list[Union[tuple(kinds)]]), ("id", str | None, None),  # noqa: UP007
        ("parameters", dict[str, Any] | None, None),
        ("outputs", list[RequestedOutput] | None, None)], gc=False)
    whole = [i for i, f in enumerate(features) if f.type == "integer" and f.nullable]
    blank = [i for i, f in enumerate(features) if f.type == "category" and f.nullable]
    return (msgspec.json.Decoder(request), {k: i for i, k in enumerate(kinds)}, whole, blank)


def fast(body: bytes, codec: RequestCodec, max_rows: int
         ) -> tuple[Any, list[Any], int] | None:
    """(request, columns, rows) of a well-formed all-JSON request in one decoder pass; None
    for anything else, which `parse` and `columns` then decode and explain."""
    decoder, index, whole, blank = _typed(codec)
    try:
        request = decoder.decode(body)
    except msgspec.MsgspecError:
        return None
    inputs = request.inputs
    if len(inputs) != len(index):
        return None
    cols: list[Any] = [None] * len(index)
    shape = inputs[0].shape
    n = shape[0] if shape else 0
    shapes = ([n], [n, 1])
    for tensor in inputs:
        data = tensor.data
        if tensor.shape not in shapes or len(data) != n:
            return None
        cols[index[type(tensor)]] = data
    # As many inputs as features and none missing: each feature exactly once.
    if None in cols or not 1 <= n <= max_rows:
        return None
    features = codec.signature.features
    for i in whole:
        cols[i] = _numbers(features[i], np.array([np.nan if v is None else v for v in cols[i]],
                                                 dtype=float))
    for i in blank:
        cols[i] = ["" if v is None else v for v in cols[i]]
    return request, cols, n


def columns(request: InferRequest, binary: bytes, signature: Signature, codec: RequestCodec,
            max_rows: int) -> tuple[list[tuple[Any, ...]], int]:
    """Columns in signature order and the batch size, or TensorInvalid saying what is wrong."""
    features = {f.name: f for f in signature.features}
    given: dict[str, tuple[Any, ...]] = {}
    rows: int | None = None
    offset = 0
    for tensor in request.inputs:
        feature = features.get(tensor.name)
        if feature is None:
            raise TensorInvalid(f"input {tensor.name!r} is not a feature of {signature.model} "
                                f"(its inputs: {', '.join(features)})")
        if tensor.name in given:
            raise TensorInvalid(f"input {tensor.name!r} is given twice")
        expected = datatype(feature)
        if tensor.datatype != expected:
            raise TensorInvalid(f"input {tensor.name!r}: datatype {tensor.datatype!r}, expected "
                                f"{expected}")
        n = _batch(tensor, max_rows)
        if rows is not None and n != rows:
            raise TensorInvalid(f"input {tensor.name!r} holds {n} rows, the others {rows}")
        rows = n
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 \
                    or offset + size > len(binary):
                raise TensorInvalid(f"input {tensor.name!r}: binary_data_size {size!r} is "
                                    f"beyond the {len(binary) - offset} bytes left")
            given[tensor.name] = _binary(feature, binary[offset:offset + size], n)
            offset += size
        elif len(tensor.data):
            given[tensor.name] = _json(feature, tensor, codec, n)
        else:
            raise TensorInvalid(f"input {tensor.name!r} has no data")
    if missing := [name for name in features if name not in given]:
        raise TensorInvalid(f"input {missing[0]!r} is missing: every feature is an input "
                            f"({len(missing)} missing)")
    if offset != len(binary):
        raise TensorInvalid(f"{len(binary) - offset} bytes of binary data belong to no input")
    return [given[f.name] for f in signature.features], rows or 0


def _batch(tensor: InferInput, max_rows: int) -> int:
    shape = tensor.shape
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise TensorInvalid(f"input {tensor.name!r}: shape {shape}, expected [rows] or [rows, 1]")
    n = shape[0]
    if not 1 <= n <= max_rows:
        raise TensorInvalid(f"input {tensor.name!r}: {n} rows; a batch holds 1 to {max_rows}")
    return n


def _json(feature: Feature, tensor: InferInput, codec: RequestCodec, n: int) -> tuple[Any, ...]:
    if datatype(feature) == "FP64" and feature.type == "integer":
        return _json_floats(feature, tensor, n)
    raw = _flat(feature, bytes(tensor.data))
    try:
        values = codec.decode_column(feature.name, raw)
    except RequestInvalid as exc:
        raise TensorInvalid(f"input {feature.name!r}: {exc.message}") from None
    if len(values) != n:
        raise TensorInvalid(f"input {feature.name!r}: {len(values)} values for shape rows {n}")
    return values


def _json_floats(feature: Feature, tensor: InferInput, n: int) -> tuple[Any, ...]:
    """An integer that may be empty, sent as FP64 numbers (or null) in JSON."""
    try:
        values = _FLOATS.decode(_flat(feature, bytes(tensor.data)))
    except msgspec.MsgspecError as exc:
        raise TensorInvalid(f"input {feature.name!r}: data must be numbers ({exc})") from None
    if len(values) != n:
        raise TensorInvalid(f"input {feature.name!r}: {len(values)} values for shape rows {n}")
    return _numbers(feature, np.array([np.nan if v is None else v for v in values], dtype=float))


def _flat(feature: Feature, raw: bytes) -> bytes:
    """Nested row-major data ([[v], [v], ...]) as a flat array."""
    if not raw.lstrip()[1:].lstrip().startswith(b"["):
        return raw
    try:
        nested = msgspec.json.decode(raw, type=list[list[Any]])
    except msgspec.MsgspecError as exc:
        raise TensorInvalid(f"input {feature.name!r}: data is not an array of values "
                            f"({exc})") from None
    if any(len(row) != 1 for row in nested):
        raise TensorInvalid(f"input {feature.name!r}: nested data must be [rows, 1]")
    return msgspec.json.encode([row[0] for row in nested])


def _binary(feature: Feature, data: bytes, n: int) -> tuple[Any, ...]:
    if feature.type == "category":
        return _strings(feature, data, n)
    dtype = _NUMPY[datatype(feature)]
    if len(data) != n * dtype.itemsize:
        raise TensorInvalid(f"input {feature.name!r}: {len(data)} bytes for {n} "
                            f"{datatype(feature)} values")
    return _numbers(feature, np.frombuffer(data, dtype=dtype))


def _numbers(feature: Feature, values: np.ndarray) -> tuple[Any, ...]:
    """The signature's rules on an array of numbers; NaN is an empty value."""
    n = len(values)
    empty = np.isnan(values) if values.dtype.kind == "f" else np.zeros(n, dtype=bool)
    if empty.any() and not feature.nullable:
        raise TensorInvalid(f"input {feature.name!r}: row {int(np.argmax(empty))} is NaN, and "
                            f"{feature.name} may not be empty")
    present = values[~empty]
    if not np.isfinite(present).all():
        raise TensorInvalid(f"input {feature.name!r}: the numbers must be finite")
    if feature.type == "integer" and values.dtype.kind == "f" and \
            (bad := np.flatnonzero(~empty & (np.mod(values, 1) != 0))).size:
        raise TensorInvalid(f"input {feature.name!r}: record {int(bad[0])}: {feature.name} "
                            "must be an integer")
    for bound, op, word in ((feature.min, np.less, ">="), (feature.max, np.greater, "<=")):
        if bound is not None and (bad := np.flatnonzero(op(values, bound) & ~empty)).size:
            limit = int(bound) if feature.type == "integer" else bound
            raise TensorInvalid(f"input {feature.name!r}: record {int(bad[0])}: "
                                f"{feature.name} must be {word} {limit}")
    out = values.astype(np.int64 if feature.type == "integer" and not empty.any() else values.dtype,
                        copy=False).tolist()
    if empty.any():  # NaN is how an FP64 tensor says "empty"
        out = [None if e else (int(v) if feature.type == "integer" else v)
               for v, e in zip(out, empty.tolist())]
    return tuple(out)


def _strings(feature: Feature, data: bytes, n: int) -> tuple[str, ...]:
    allowed = set(feature.categories or ())
    if feature.nullable:
        allowed.add("")
    out, at = [], 0
    for row in range(n):
        if at + 4 > len(data):
            raise TensorInvalid(f"input {feature.name!r}: BYTES data ends before element {row}")
        (length,) = struct.unpack_from("<I", data, at)
        value = data[at + 4:at + 4 + length]
        at += 4 + length
        if len(value) != length:
            raise TensorInvalid(f"input {feature.name!r}: BYTES element {row} is cut short")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise TensorInvalid(f"input {feature.name!r}: element {row} is not UTF-8") from None
        if text not in allowed:
            raise TensorInvalid(f"input {feature.name!r}: record {row}: {text!r} is not an "
                                f"allowed category ({', '.join(feature.categories or [])})")
        out.append(text)
    if at != len(data):
        raise TensorInvalid(f"input {feature.name!r}: {len(data) - at} bytes after {n} elements")
    return tuple(out)
