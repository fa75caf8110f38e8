"""The feature signature a trained model is served with (`models/<model>/signature.json`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.files import atomic_write_text


class Feature(BaseModel):
    """One input feature: its type and the values the model accepts."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["integer", "number", "category"]
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _rules_match_type(self) -> Feature:
        if self.type == "category" and not self.categories:
            raise ValueError(f"feature {self.name!r}: a category needs its allowed categories")
        if self.type != "category" and self.categories:
            raise ValueError(f"feature {self.name!r}: only a category has categories")
        return self


class Signature(BaseModel):
    """Names, order and rules of the features, and what the model predicts."""

    model_config = ConfigDict(extra="forbid")

    model: str
    target: str
    classes: list[str] = Field(min_length=2, max_length=2)
    positive_class: str
    features: list[Feature] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive_is_a_class(self) -> Signature:
        if self.positive_class not in self.classes:
            raise ValueError(f"positive class {self.positive_class!r} is not one of {self.classes}")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def write(self, path: Path) -> None:
        atomic_write_text(Path(path), self.model_dump_json(indent=2, exclude_none=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> Signature:
        return cls.model_validate(json.loads(Path(path).read_text()))
