"""An A/B test in the service: which variant answers each record, and one answer put back
together from the two variants' answers.

The unit id of a record is the pin's `ab.unit.header` when the request carries it, else the
record's `ab.unit.field`; `contracts.routing` (the rule every replica, the report and the tests
share) turns it into the variant. A record without one is routed at random with the split's
odds. A batch is split by variant, each part predicted by its own model in one call, and the
answers are put back in request order. Outside a test none of this runs.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts import routing
from contracts.pin import Pin
from service.inference import Answer, Predictor
from service.model import LoadedModel
from service.validation import RequestCodec

# Drawn for records without a unit id; seeded from the OS, so replicas draw independently.
_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class Routed:
    """An answer and which variant gave each row."""

    answer: Answer
    variants: list[str]   # per row, "a" or "b"
    versions: list[int]   # per row, the version that answered
    variant: str          # the request's: "a" or "b" when one variant answered all, else "mixed"
    version: int          # the version that answered every row; in a mixed batch variant a's


class ABRouter:
    """The two variants of the pinned A/B test, and the rule between them."""

    def __init__(self, pin: Pin, a: Predictor, b: Predictor, codec: RequestCodec) -> None:
        assert pin.ab is not None
        self.pin = pin
        self.predictors = {"a": a, "b": b}
        self.versions = {"a": a.model.ref.version, "b": b.model.ref.version}
        self.codec = codec
        self.header = pin.ab.unit.header
        # ASGI gives header names in lower case, as bytes.
        self._header_key = self.header.lower().encode("latin-1") if self.header else None
        self.field = pin.ab.unit.field

    @property
    def model_b(self) -> LoadedModel:
        """The challenger's model (variant b)."""
        return self.predictors["b"].model

    def header_unit(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """The unit id the request names in the unit header (None when absent or blank)."""
        key = self._header_key
        if key is None:
            return None
        raw = next((v for k, v in headers if k == key), None)
        if raw is None:
            return None
        try:
            return routing.unit_text(raw.decode("latin-1"))
        except ValueError as exc:
            raise self.codec.invalid("unit", self.header, f"{self.header}: {exc}") from None

    def choose(self, header: str | None, units: Sequence[Any] | None, rows: int,
               single: bool) -> list[str]:
        """The variant of each of `rows` records: by the header's unit for all, else by each
        record's unit field, else at random."""
        pin = self.pin
        if header is not None:
            return [routing.variant(pin, header)] * rows
        if units is None:
            return [routing.variant(pin, None, _RNG) for _ in range(rows)]
        chosen = []
        for row, value in enumerate(units):
            try:
                unit = routing.unit_text(value)
            except ValueError as exc:
                raise self.codec.invalid("unit", self.field, f"{self.field}: {exc}",
                                         None if single else row) from None
            chosen.append(routing.variant(pin, unit, _RNG))
        return chosen

    def route(self, headers: Sequence[tuple[bytes, bytes]], columns: list[tuple[Any, ...]],
              units: Sequence[Any] | None, single: bool, issue_ids: bool = True) -> Routed:
        """Predict rows (column by column) each with its variant; RequestInvalid (rule `unit`)
        for a unit id that is not one."""
        chosen = self.choose(self.header_unit(headers), units, len(columns[0]), single)
        return self.predict(columns, chosen, issue_ids)

    def predict(self, columns: list[tuple[Any, ...]], chosen: list[str],
                issue_ids: bool = True) -> Routed:
        """Predict each row with the variant `chosen` for it: one model call per variant."""
        first = chosen[0]
        if all(v == first for v in chosen):
            answer = self.predictors[first](columns, issue_ids)
            version = self.versions[first]
            return Routed(answer, chosen, [version] * len(chosen), first, version)
        parts = []
        for name in ("a", "b"):
            rows = [i for i, v in enumerate(chosen) if v == name]
            part = [tuple(column[i] for i in rows) for column in columns]
            parts.append((rows, self.predictors[name](part, issue_ids)))
        versions = [self.versions[v] for v in chosen]
        return Routed(merge(parts, len(chosen)), chosen, versions, "mixed", self.versions["a"])

    def describe(self, a: LoadedModel) -> dict[str, Any]:
        """The test as /v1/model shows it."""
        assert self.pin.ab is not None
        unit = {k: v for k, v in (("header", self.header), ("field", self.field)) if v}
        return {"split": dict(self.pin.ab.split), "unit": unit, "variants": {
            name: {"version": m.ref.version, "sha256": m.ref.sha256, "runtime": m.runtime,
                   "loaded_at": m.loaded_at.isoformat()}
            for name, m in (("a", a), ("b", self.model_b))}}


def merge(parts: list[tuple[list[int], Answer]], n: int) -> Answer:
    """One answer of `n` rows from answers to parts of them (each with its row indices)."""
    def scatter(pick) -> list[Any] | None:
        if pick(parts[0][1]) is None:
            return None
        out: list[Any] = [None] * n
        for rows, answer in parts:
            for i, value in zip(rows, pick(answer)):
                out[i] = value
        return out

    probabilities = None
    if parts[0][1].probabilities is not None:
        probabilities = np.empty((n, parts[0][1].probabilities.shape[1]))
        for rows, answer in parts:
            probabilities[rows] = answer.probabilities
    return Answer(scatter(lambda a: a.labels), scatter(lambda a: a.values), probabilities,
                  scatter(lambda a: a.ids))


def compatible(a: LoadedModel, b: LoadedModel) -> str | None:
    """Why two versions cannot share an A/B test's requests (None when they can): both must
    take the same records and answer in the same shape."""
    sa, sb = a.signature, b.signature
    if sa.task != sb.task or list(sa.classes or ()) != list(sb.classes or ()) \
            or sa.positive_class != sb.positive_class:
        return (f"v{a.ref.version} and v{b.ref.version} answer differently "
                f"({sa.task} {list(sa.classes or ())} vs {sb.task} {list(sb.classes or ())})")
    if sa.features != sb.features:
        return (f"v{a.ref.version} and v{b.ref.version} take different features: an A/B test "
                "sends the same records to both")
    return None
