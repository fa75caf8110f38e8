"""The feature signature a trained model is served with (`models/<model>/signature.json`).

It is what the service knows of a model: the task, the features and their rules, the classes
of a classifier, and which features must never be written to the prediction log. It is
derived from the model's declaration by the train stage, so the service never reads training
code or the declaration itself.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.files import atomic_write_text

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
# An integer feature slices live by each of its values only when its declared range is this
# narrow (0/1 flags, small codes): more values would be more series than a dashboard can read.
MAX_SLICE_VALUES = 50


class Feature(BaseModel):
    """One input feature: its type and the values the model accepts."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["integer", "number", "category"]
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None
    # An empty value (null in a request, a blank cell in a file) is allowed and the model
    # handles it: numbers are imputed, a category becomes "no category".
    nullable: bool = False

    @model_validator(mode="after")
    def _rules_match_type(self) -> Feature:
        if self.type == "category" and not self.categories:
            raise ValueError(f"feature {self.name!r}: a category needs its allowed categories")
        if self.type != "category" and self.categories:
            raise ValueError(f"feature {self.name!r}: only a category has categories")
        if self.type == "category" and (self.min is not None or self.max is not None):
            raise ValueError(f"feature {self.name!r}: a category has no min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min:g} is above max {self.max:g}")
        return self


class SliceRules(BaseModel):
    """The declaration's slice rules that outlive the gates: the features that slice the
    labelled predictions, each slice's floors (higher is better) and ceilings (lower is better)
    on a slice metric, and how many labelled rows a slice needs before a rule judges it."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str] = Field(min_length=1)
    min_rows: int = Field(50, ge=1)
    floors: dict[str, float] = Field(default_factory=dict)
    ceilings: dict[str, float] = Field(default_factory=dict)


class Signature(BaseModel):
    """Names, order and rules of the features, and what the model predicts."""

    model_config = ConfigDict(extra="forbid")

    model: str
    task: Task = "binary"
    target: str
    # Classifiers: the classes in the order the model outputs their probabilities.
    classes: list[str] | None = None
    positive_class: str | None = None
    features: list[Feature] = Field(min_length=1)
    # Features whose values the prediction log must not keep (personal data, secrets).
    never_log: list[str] = Field(default_factory=list)
    # Days the prediction log keeps this model's predictions (None: until deleted by hand).
    retention_days: int | None = Field(None, ge=1)
    # The slice rules, so the service watches each slice's live metric against its floor.
    slices: SliceRules | None = None

    @model_validator(mode="after")
    def _task_shape(self) -> Signature:
        if self.task == "regression":
            if self.classes is not None or self.positive_class is not None:
                raise ValueError("a regression model has no classes or positive class")
        else:
            classes = self.classes or []
            if len(set(classes)) != len(classes):
                raise ValueError(f"classes {classes} repeat a class")
            if self.task == "binary":
                if len(classes) != 2:
                    raise ValueError(f"a binary classifier has exactly 2 classes, got {classes}")
                if self.positive_class not in classes:
                    raise ValueError(
                        f"positive class {self.positive_class!r} is not one of {classes}")
            else:
                if len(classes) < 3:
                    raise ValueError(f"a multiclass classifier has at least 3 classes, got "
                                     f"{classes} (two classes: use task binary)")
                if self.positive_class is not None:
                    raise ValueError("only a binary classifier has a positive class")
        names = self.feature_names
        if len(set(names)) != len(names):
            raise ValueError("feature names repeat")
        unknown = [n for n in self.never_log if n not in names]
        if unknown:
            raise ValueError(f"never_log names {unknown}, which are not features")
        if self.slices is not None and (
                unknown := [c for c in self.slices.columns if c not in names]):
            raise ValueError(f"slices names {unknown}, which are not features")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def slice_values(self) -> dict[str, list[str]]:
        """The slice columns watched live, each with its values as the gates name them (a
        category's categories; an integer's every value when its declared range holds at most
        MAX_SLICE_VALUES). Numbers and wide integers are left out: nothing declares their
        bins, and a series per value would be unbounded."""
        out: dict[str, list[str]] = {}
        by_name = {f.name: f for f in self.features}
        for column in self.slices.columns if self.slices is not None else ():
            f = by_name[column]
            if f.type == "category":
                out[column] = list(f.categories or ())
            elif f.type == "integer" and f.min is not None and f.max is not None \
                    and f.max - f.min < MAX_SLICE_VALUES:
                out[column] = [str(v) for v in range(math.ceil(f.min), math.floor(f.max) + 1)]
        return out

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    def write(self, path: Path) -> None:
        atomic_write_text(Path(path), self.model_dump_json(indent=2, exclude_none=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> Signature:
        return cls.model_validate(json.loads(Path(path).read_text()))
