"""The pin: the one promotable file per environment and model (`environments/<env>/<model>/model.yaml`).

It holds only immutable references (registry name + version, the bundle's sha256 and
its lineage), never an alias, so the same file always means the same bytes in service.

A pin may also run an A/B test (`ab:`): `model` is variant `a` (the control) and `ab.b` another
version of the same model (the challenger), each answering its share of the units (`ab.split`),
a unit being what the caller names in a header or a field of each record (`ab.unit`). A pin
without `ab:` reads and writes exactly as before the field existed.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.files import atomic_write_text

API_VERSION = "gitops-ml/v1"
KIND = "ModelPin"
# Used with fullmatch only: `$` in re.match also accepts a trailing newline.
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# An HTTP header name (RFC 9110 token) and a record field name: plain, so a pin cannot smuggle
# whitespace or a second header into the service's routing.
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
VARIANTS = ("a", "b")

HEADER = (
    "# What this environment serves. Written by `mlops promote`; change it only through a\n"
    "# promotion or a `git revert` of one, never by hand. Immutable references only.\n"
)


class ModelRef(BaseModel):
    """A registered model version and the digest of its bundle."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    uri: str
    sha256: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(f"model name {v!r} is not a plain registry name")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _SHA256.fullmatch(v):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return v

    @model_validator(mode="after")
    def _uri_is_immutable(self) -> ModelRef:
        expected = f"models:/{self.name}/{self.version}"
        if self.uri != expected:
            # An alias (models:/fraud@prod) or "latest" would let the bytes change under the pin.
            raise ValueError(f"uri must be the immutable {expected!r}, got {self.uri!r}")
        return self


class Lineage(BaseModel):
    """Where the model came from."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    git_commit: str
    data_hash: str
    params: dict[str, Any] = Field(default_factory=dict)


class Promotion(BaseModel):
    """Who promoted and when."""

    model_config = ConfigDict(extra="forbid")

    by: str
    at: datetime


class Challenger(BaseModel):
    """Variant `b` of an A/B test: another registered version of the pinned model."""

    model_config = ConfigDict(extra="forbid")

    model: ModelRef
    lineage: Lineage
    metrics: dict[str, float] = Field(default_factory=dict)
    promoted: Promotion  # who started the test, and when: the test's outcomes count from then


class Unit(BaseModel):
    """Where the caller names the unit an A/B test assigns (e.g. a customer id): an HTTP header,
    a field of each record, or both (the header wins for every record of its request)."""

    model_config = ConfigDict(extra="forbid")

    header: str | None = None
    field: str | None = None

    @field_validator("header")
    @classmethod
    def _header(cls, v: str | None) -> str | None:
        if v is not None and not _HEADER.fullmatch(v):
            raise ValueError(f"unit header {v!r} is not an HTTP header name")
        return v

    @field_validator("field")
    @classmethod
    def _field(cls, v: str | None) -> str | None:
        if v is not None and not _FIELD.fullmatch(v):
            raise ValueError(f"unit field {v!r} is not a plain field name")
        return v

    @model_validator(mode="after")
    def _somewhere(self) -> Unit:
        if self.header is None and self.field is None:
            raise ValueError("an A/B test needs the unit id's header, field, or both")
        return self


class Split(BaseModel):
    """How an A/B test divides the units: each variant's share and where the unit is named."""

    model_config = ConfigDict(extra="forbid")

    split: dict[str, int]  # percent of the units per variant: {a: 90, b: 10}
    unit: Unit

    @field_validator("split")
    @classmethod
    def _split(cls, v: dict[str, int]) -> dict[str, int]:
        if sorted(v) != list(VARIANTS):
            raise ValueError(f"split must name exactly the variants a and b, got {sorted(v)}")
        if any(isinstance(w, bool) or not 1 <= w <= 99 for w in v.values()):
            raise ValueError(f"each variant's share must be a whole percent from 1 to 99, got {v}")
        if sum(v.values()) != 100:
            raise ValueError(f"the split must add up to 100 percent, got {v}")
        return {name: v[name] for name in VARIANTS}


class ABTest(Split):
    """Two versions of one model, each answering its share of the units."""

    b: Challenger


class Pin(BaseModel):
    """What one environment serves; `model is None` means nothing is promoted there yet."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: str = API_VERSION
    kind: str = KIND
    environment: str
    model: ModelRef | None = None
    lineage: Lineage | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    promoted: Promotion | None = None
    shadow: ModelRef | None = None
    ab: ABTest | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Pin:
        if self.apiVersion != API_VERSION or self.kind != KIND:
            raise ValueError(f"not a {API_VERSION} {KIND}")
        if self.model is None and (self.lineage or self.promoted or self.shadow or self.ab):
            raise ValueError("a pin with no model cannot carry lineage, promotion, shadow or "
                             "an A/B test")
        if self.model is not None and (self.lineage is None or self.promoted is None):
            raise ValueError("a pinned model needs its lineage and who promoted it")
        if self.ab is not None:
            b = self.ab.b.model
            if b.name != self.model.name:
                raise ValueError(f"an A/B test compares versions of one model: b is {b.name!r}, "
                                 f"a is {self.model.name!r}")
            if b.version == self.model.version:
                raise ValueError(f"an A/B test needs two versions; both variants are "
                                 f"v{b.version}")
            if self.shadow is not None:
                # One experiment at a time: a shadow beside two variants would judge neither.
                raise ValueError("a pin runs a shadow or an A/B test, not both")
        return self

    @property
    def is_empty(self) -> bool:
        return self.model is None

    @property
    def is_ab(self) -> bool:
        return self.ab is not None

    def variant(self, name: str) -> ModelRef:
        """The model of variant `a` (the pinned model) or `b` (the challenger) of an A/B test."""
        if self.ab is None:
            raise ValueError("this pin runs no A/B test")
        if name not in VARIANTS:
            raise ValueError(f"no variant {name!r}: an A/B test has {', '.join(VARIANTS)}")
        return self.model if name == "a" else self.ab.b.model

    def to_yaml(self) -> str:
        """Render deterministically: same pin, same bytes."""
        if self.model is None:
            data = {"apiVersion": self.apiVersion, "kind": self.kind,
                    "environment": self.environment, "model": None}
            body = yaml.safe_dump(data, sort_keys=False)
            return HEADER + "# Nothing has been promoted to this environment yet.\n" + body
        data = self.model_dump(mode="json", exclude_none=False)
        if self.shadow is None:
            data.pop("shadow")
        if self.ab is None:
            data.pop("ab")  # a pin without a test is byte for byte what it was before `ab:`
        else:
            data["ab"]["unit"] = {k: v for k, v in data["ab"]["unit"].items() if v is not None}
        return HEADER + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)

    def write(self, path: Path) -> None:
        atomic_write_text(Path(path), self.to_yaml())

    @classmethod
    def parse(cls, text: str, source: str = "pin") -> Pin:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
        return cls.model_validate(data)

    @classmethod
    def read(cls, path: Path) -> Pin:
        path = Path(path)
        return cls.parse(path.read_text(), source=str(path))
