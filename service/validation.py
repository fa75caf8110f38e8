"""Request rules generated from the model's signature: types, allowed categories and ranges.

The same rules drive the decoder (msgspec, strict: no coercion, no unknown fields, no NaN or
Infinity) and the OpenAPI document, so what /schema promises is what /v1/predict enforces.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from contracts.signature import Feature, Signature

_PATH = re.compile(r" - at `\$(?:\[(\d+)\])?(?:\.(\w+))?`$")


class RequestInvalid(Exception):
    """A request body that breaks a rule; `status` is 400 (not JSON) or 422 (breaks a rule)."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass(frozen=True)
class Batch:
    """Decoded rows, column by column in signature order."""

    columns: list[tuple[Any, ...]]
    rows: int
    single: bool


class RequestCodec:
    """Decodes /v1/predict bodies for one signature: a record object, or an array of them."""

    def __init__(self, signature: Signature, max_rows: int) -> None:
        self.signature = signature
        self.max_rows = max_rows
        self._features = {f.name: f for f in signature.features}
        record = msgspec.defstruct(
            "Record", [(f.name, _field_type(f)) for f in signature.features],
            forbid_unknown_fields=True)
        batch = Annotated[list[record], msgspec.Meta(min_length=1, max_length=max_rows)]
        body = record | batch
        self._decoder = msgspec.json.Decoder(body)
        self._record = record

    def decode(self, body: bytes) -> Batch:
        """Validate and split a request body, or raise RequestInvalid naming field and rule."""
        try:
            value = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            error = self._explain(str(exc))
            raise RequestInvalid(422, error["message"], [error]) from None
        except msgspec.DecodeError as exc:
            message = "the body is not valid JSON" if body.strip() else "the body is empty"
            raise RequestInvalid(400, f"{message} ({exc})",
                                 [{"field": None, "rule": "json", "message": str(exc)}]) from None
        astuple = msgspec.structs.astuple
        if isinstance(value, self._record):
            return Batch([(v,) for v in astuple(value)], 1, True)
        return Batch(list(zip(*map(astuple, value))), len(value), False)

    def _explain(self, raw: str) -> dict[str, Any]:
        row = field = None
        text = raw
        m = _PATH.search(raw)
        if m:
            row = int(m.group(1)) if m.group(1) is not None else None
            field = m.group(2)
            text = raw[: m.start()]
        where = f"record {row}: " if row is not None else ""
        if m2 := re.match(r"Object missing required field `(\w+)`", text):
            field, rule = m2.group(1), "required"
            message = f"{field} is required"
        elif m2 := re.match(r"Object contains unknown field `(.+)`", text):
            field, rule = m2.group(1), "unknown_field"
            message = f"{field} is not a feature of {self.signature.model}"
        elif m2 := re.match(r"Invalid enum value (.+)", text):
            rule = "category"
            allowed = ", ".join(self._features[field].categories or []) if field in \
                self._features else ""
            message = f"{field}: {m2.group(1)} is not an allowed category ({allowed})"
        elif text.startswith("Number out of range"):
            rule = "finite"
            message = f"{field}: the number is out of range (must be finite)"
        elif (m2 := re.match(r"Expected `(\w+)` ([<>]=) (\S+)", text)) and field:
            rule = "minimum" if m2.group(2) == ">=" else "maximum"
            message = f"{field} must be {m2.group(2)} {m2.group(3)}"
        elif m2 := re.match(r"Expected `array` of length ([<>]=) (\d+)", text):
            rule, field = "batch_size", None
            message = (f"a batch holds at most {self.max_rows} records" if m2.group(1) == "<="
                       else "a batch needs at least one record")
        elif m2 := re.match(r"Expected `(.+)`, got `(.+)`", text):
            rule = "type"
            subject = field or ("record" if row is not None else "the body")
            message = f"{subject} must be {_kind(m2.group(1))}, got {_kind(m2.group(2))}"
        else:
            rule, message = "invalid", text
        return {"field": field, "row": row, "rule": rule, "message": where + message}


_KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean",
          "null": "null", "object": "an object", "array": "an array",
          "object | array": "a record object or an array of records"}


def _kind(name: str) -> str:
    return _KINDS.get(name, name)


def _field_type(f: Feature) -> Any:
    if f.type == "category":
        return Literal[tuple(f.categories or ())]
    bounds = {k: v for k, v in (("ge", f.min), ("le", f.max)) if v is not None}
    if f.type == "integer":
        bounds = {k: int(v) for k, v in bounds.items()}
        return Annotated[int, msgspec.Meta(**bounds)] if bounds else int
    # Without bounds a float would accept 1e999 as Infinity; the widest finite range refuses it.
    bounds.setdefault("ge", -1.7976931348623157e308)
    bounds.setdefault("le", 1.7976931348623157e308)
    return Annotated[float, msgspec.Meta(**bounds)]


def record_json_schema(signature: Signature) -> dict[str, Any]:
    """The JSON Schema of one record, as the OpenAPI document publishes it."""
    properties: dict[str, Any] = {}
    for f in signature.features:
        if f.type == "category":
            prop: dict[str, Any] = {"type": "string", "enum": list(f.categories or [])}
        else:
            prop = {"type": "integer" if f.type == "integer" else "number"}
            if f.min is not None:
                prop["minimum"] = int(f.min) if f.type == "integer" else f.min
            if f.max is not None:
                prop["maximum"] = int(f.max) if f.type == "integer" else f.max
        properties[f.name] = prop
    return {
        "type": "object",
        "title": f"{signature.model} record",
        "properties": properties,
        "required": list(signature.feature_names),
        "additionalProperties": False,
    }
