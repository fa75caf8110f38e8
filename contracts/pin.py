"""The pin: the one promotable file per environment and model (`environments/<env>/<model>/model.yaml`).

It holds only immutable references (registry name + version, the bundle's sha256 and
its lineage), never an alias, so the same file always means the same bytes in service.
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
            # An alias (models:/churn@prod) or "latest" would let the bytes change under the pin.
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

    @model_validator(mode="after")
    def _consistent(self) -> Pin:
        if self.apiVersion != API_VERSION or self.kind != KIND:
            raise ValueError(f"not a {API_VERSION} {KIND}")
        if self.model is None and (self.lineage or self.promoted or self.shadow):
            raise ValueError("a pin with no model cannot carry lineage, promotion or shadow")
        if self.model is not None and (self.lineage is None or self.promoted is None):
            raise ValueError("a pinned model needs its lineage and who promoted it")
        return self

    @property
    def is_empty(self) -> bool:
        return self.model is None

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
