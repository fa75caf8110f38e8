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

_AT = re.compile(r" - at `\$(.*)`$")
_STEP = re.compile(r"\[(\d+)\]|\.([^.\[]+)")


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
    # An A/B test's unit field, per record as received (None where absent); None outside a
    # test or when the unit field is not in the body's records.
    units: tuple[Any, ...] | None = None


class RequestCodec:
    """Decodes request data for one signature, with the same rules whatever its shape: a
    record object or an array of them (/v1), one feature's values (a tensor), or rows of
    values in a given column order (a data frame split into columns and rows).

    With `unit_field` (an A/B test's), /v1 records may also carry that field although it is no
    feature: it is taken out of the record (`Batch.units`) before the model sees it. When the
    signature declares a feature of that name it stays a feature, and its values are the units.
    """

    def __init__(self, signature: Signature, max_rows: int,
                 unit_field: str | None = None) -> None:
        self.signature = signature
        self.max_rows = max_rows
        self.unit_field = unit_field
        self._features = {f.name: f for f in signature.features}
        self._index = {f.name: i for i, f in enumerate(signature.features)}
        self.types = [_field_type(f) for f in signature.features]
        # Field names need not be Python identifiers: the struct's own names are positional
        # and renamed to the features' names on the wire.
        record = msgspec.defstruct(
            "Record", [(f"f{i}", t) for i, t in enumerate(self.types)],
            rename={f"f{i}": f.name for i, f in enumerate(signature.features)},
            forbid_unknown_fields=True)
        batch = Annotated[list[record], msgspec.Meta(min_length=1, max_length=max_rows)]
        self._decoder = msgspec.json.Decoder(record | batch)
        self._records = msgspec.json.Decoder(batch)
        self._record = record
        self._unit_feature = self._index.get(unit_field) if unit_field else None
        self._extra = unit_field is not None and self._unit_feature is None
        if self._extra:
            # Any JSON value: routing.unit_text says which are unit ids, with its own refusal.
            record = msgspec.defstruct(
                "Record", [*((f"f{i}", t) for i, t in enumerate(self.types)), ("unit", Any, None)],
                rename={**{f"f{i}": f.name for i, f in enumerate(signature.features)},
                        "unit": unit_field},
                forbid_unknown_fields=True)
            batch = Annotated[list[record], msgspec.Meta(min_length=1, max_length=max_rows)]
            self._decoder = msgspec.json.Decoder(record | batch)
            self._record = record
        self._columns: dict[int, msgspec.json.Decoder] = {}
        self._rows: dict[tuple[str, ...], msgspec.json.Decoder] = {}
        # An empty category reaches the model as "", which encodes as no category.
        self._blank = [i for i, f in enumerate(signature.features)
                       if f.type == "category" and f.nullable]

    def decode(self, body: bytes) -> Batch:
        """Validate and split a /v1 body, or raise RequestInvalid naming field and rule."""
        value = self._run(self._decoder, body, self._record_path)
        astuple = msgspec.structs.astuple
        single = isinstance(value, self._record)
        if single:
            columns = [(v,) for v in astuple(value)]
        else:
            columns = list(zip(*map(astuple, value)))
        if self.unit_field is None:
            return Batch(self._unblank(columns), 1 if single else len(value), single)
        units = columns.pop() if self._extra else None
        columns = self._unblank(columns)
        if not self._extra:
            units = columns[self._unit_feature]
        return Batch(columns, len(units), single, units)

    def feature_units(self, columns: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
        """The unit field's values when the signature declares it as a feature (the protocols
        without room for an extra field route by these), else None."""
        return columns[self._unit_feature] if self._unit_feature is not None else None

    def decode_records(self, data: bytes) -> list[tuple[Any, ...]]:
        """Columns of a JSON array of record objects."""
        value = self._run(self._records, data, self._record_path)
        return self._unblank(list(zip(*map(msgspec.structs.astuple, value))))

    def decode_column(self, name: str, data: bytes) -> tuple[Any, ...]:
        """One feature's values from a JSON array (its rules apply to every element)."""
        i = self._index[name]
        decoder = self._columns.get(i)
        if decoder is None:
            decoder = self._columns[i] = msgspec.json.Decoder(list[self.types[i]])
        values = self._run(decoder, data, lambda steps: _column_path(steps, name))
        if i in self._blank:
            return tuple("" if v is None else v for v in values)
        return tuple(values)

    def decode_rows(self, names: tuple[str, ...], data: bytes) -> list[tuple[Any, ...]]:
        """Columns in signature order from a JSON array of rows, each holding the values of
        `names` (every feature exactly once, any order) in that order."""
        if missing := [n for n in self.signature.feature_names if n not in names]:
            raise self.invalid("required", missing[0], f"{missing[0]} is required")
        if unknown := [n for n in names if n not in self._index]:
            raise self.invalid("unknown_field", unknown[0],
                               f"{unknown[0]} is not a feature of {self.signature.model}")
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise self.invalid("duplicate", twice, f"{twice} is given twice")
        decoder = self._rows.get(names)
        if decoder is None:
            row = tuple[tuple(self.types[self._index[n]] for n in names)]
            decoder = self._rows[names] = msgspec.json.Decoder(
                Annotated[list[row], msgspec.Meta(min_length=1, max_length=self.max_rows)])
        rows = self._run(decoder, data, lambda steps: _row_path(steps, names))
        by_name = dict(zip(names, zip(*rows)))
        return self._unblank([by_name[n] for n in self.signature.feature_names])

    def invalid(self, rule: str, field: str | None, message: str,
                row: int | None = None) -> RequestInvalid:
        """A 422 naming the field and the rule it breaks."""
        where = f"record {row}: " if row is not None else ""
        return RequestInvalid(422, where + message, [
            {"field": field, "row": row, "rule": rule, "message": where + message}])

    def _unblank(self, columns: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        for i in self._blank:
            columns[i] = tuple("" if v is None else v for v in columns[i])
        return columns

    def _run(self, decoder: msgspec.json.Decoder, body: bytes, locate) -> Any:
        try:
            return decoder.decode(body)
        except msgspec.ValidationError as exc:
            error = self._explain(str(exc), locate)
            raise RequestInvalid(422, error["message"], [error]) from None
        except msgspec.DecodeError as exc:
            message = "the body is not valid JSON" if body.strip() else "the body is empty"
            raise RequestInvalid(400, f"{message} ({exc})",
                                 [{"field": None, "rule": "json", "message": str(exc)}]) from None

    @staticmethod
    def _record_path(steps: list[tuple[str, str]]) -> tuple[int | None, str | None]:
        row = next((int(i) for i, _ in steps if i), None)
        field = next((name for _, name in steps if name), None)
        return row, field

    def _explain(self, raw: str, locate) -> dict[str, Any]:
        row = field = None
        text = raw
        m = _AT.search(raw)
        if m:
            row, field = locate(_STEP.findall(m.group(1)))
            text = raw[: m.start()]
        where = f"record {row}: " if row is not None else ""
        if m2 := re.match(r"Object missing required field `(.+)`$", text):
            field, rule = m2.group(1), "required"
            message = f"{field} is required"
        elif m2 := re.match(r"Object contains unknown field `(.+)`$", text):
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
        elif (m2 := re.match(r"Expected `(.+)` ([<>]=) (\S+)$", text)) and field:
            rule = "minimum" if m2.group(2) == ">=" else "maximum"
            message = f"{field} must be {m2.group(2)} {m2.group(3)}"
        elif m2 := re.match(r"Expected `array` of length ([<>]=) (\d+)", text):
            rule = "batch_size"
            if field is None or row is None:
                field = None
                message = (f"a batch holds at most {self.max_rows} records" if m2.group(1) == "<="
                           else "a batch needs at least one record")
            else:
                message = f"{field}: wrong number of values"
        elif m2 := re.match(r"Expected `array` of length (\d+)", text):
            rule = "row_length"
            message = f"a row holds {m2.group(1)} values, one per column"
        elif m2 := re.match(r"Expected `(.+)`, got `(.+)`", text):
            rule = "type"
            subject = field or ("record" if row is not None else "the body")
            message = f"{subject} must be {_kind(m2.group(1))}, got {_kind(m2.group(2))}"
        else:
            rule, message = "invalid", text
        return {"field": field, "row": row, "rule": rule, "message": where + message}


def _column_path(steps: list[tuple[str, str]], name: str) -> tuple[int | None, str]:
    return (int(steps[0][0]) if steps and steps[0][0] else None), name


def _row_path(steps: list[tuple[str, str]], names: tuple[str, ...]) -> tuple[int | None, str | None]:
    indices = [int(i) for i, _ in steps if i]
    row = indices[0] if indices else None
    field = names[indices[1]] if len(indices) > 1 and indices[1] < len(names) else None
    return row, field


_KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean",
          "null": "null", "object": "an object", "array": "an array",
          "object | array": "a record object or an array of records"}


def _kind(name: str) -> str:
    if name in _KINDS:
        return _KINDS[name]
    return " or ".join(_KINDS.get(part, part) for part in name.split(" | "))


def _field_type(f: Feature) -> Any:
    kind = _value_type(f)
    return (kind | None) if f.nullable else kind


def _value_type(f: Feature) -> Any:
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
        if f.nullable:
            prop["type"] = [prop["type"], "null"]
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        properties[f.name] = prop
    return {
        "type": "object",
        "title": f"{signature.model} record",
        "properties": properties,
        "required": list(signature.feature_names),
        "additionalProperties": False,
    }
