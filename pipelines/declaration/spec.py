"""A model's declaration (`models/<name>/model.yaml`): everything that makes it this model.

The task, the target, the schema of every feature, the cleaning rules, the estimator, the
evaluation and the gates. The pipeline stages read it; the service gets what it needs from the
signature derived from it. Adding a model is adding one of these files, never Python.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.signature import Feature, Signature, SliceRules, Task
from pipelines.estimators import ESTIMATORS
from pipelines.metric_names import SLICE_METRICS, key_metrics

API_VERSION = "gitops-ml/v1"
KIND = "ModelDeclaration"
# A model name becomes a Kubernetes name prefix, a registry name and a folder name: a DNS-1123
# label, short enough that `<name>-gitops-ml-canary` still fits in 63 characters.
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 40


def check_name(name: str) -> str:
    """Return `name` if it is a valid model name; ValueError saying why not otherwise."""
    if not NAME.fullmatch(name or ""):
        raise ValueError(
            f"model name {name!r} is not a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (it names Kubernetes objects)")
    if len(name) > MAX_NAME:
        raise ValueError(f"model name {name!r} is longer than {MAX_NAME} characters "
                         "(it prefixes Kubernetes object names, which stop at 63)")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureSpec(_Strict):
    """One feature's rules, as declared (the name is its key)."""

    type: Literal["integer", "number", "category"]
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    description: str | None = None

    @field_validator("categories")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("categories repeat")
        return v


class CleaningRule(_Strict):
    """Write `fill_blank` into a blank cell of `column`, only on rows matching `when`.

    `when` compares the source's raw text (before any parsing), column by column. A blank
    cell no rule fills stays blank, and is invalid unless the feature is nullable."""

    column: str
    fill_blank: str | float | int
    when: dict[str, str] = Field(default_factory=dict)


class Split(_Strict):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42


class Train(_Strict):
    estimator: str
    # Per estimator, so switching `estimator` is a one-line change.
    hyperparameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seed: int = 42
    # Training distribution kept for drift detection: sampled rows per numeric feature.
    reference_sample_size: int = Field(2000, ge=10)


class Evaluate(_Strict):
    # Binary only: P(positive) at or above it predicts the positive class.
    threshold: float = Field(0.5, gt=0, lt=1)
    bootstrap_rounds: int = Field(300, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 7


class Slices(_Strict):
    """Columns whose values split the test rows into slices that are measured and judged."""

    # Attributes of people the model must treat alike (fairness): disparity rules apply
    # between their values, and floors per value.
    sensitive: list[str] = Field(default_factory=list)
    # Business segments: floors apply per value.
    segments: list[str] = Field(default_factory=list)
    # A slice with fewer test rows is reported, never judged: its metric would be noise.
    min_rows: int = Field(50, ge=1)

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.sensitive, *self.segments]))


class Production(_Strict):
    """What happens to labelled production rows (`mlops collect`) and for how long they stay."""

    # Appended to the declared source for training, or not used.
    combine: Literal["append", "none"] = "append"
    # The newest share of collected rows never trains: it judges a retrained model on recent
    # data (the "recent" metrics of metrics.json).
    holdout: float = Field(0.2, ge=0, lt=1)
    # Days the prediction log keeps this model's predictions; `mlops prune` deletes the rest.
    retention_days: int | None = Field(90, ge=1)


class Budget(_Strict):
    """Milliseconds of CPU time per call a model may cost, at two percentiles."""

    p95_ms: float = Field(gt=0)
    p99_ms: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Budget:
        if self.p99_ms < self.p95_ms:
            raise ValueError(f"p99_ms {self.p99_ms:g} is below p95_ms {self.p95_ms:g}")
        return self


class Latency(_Strict):
    """What one request may cost the runtime that serves (see pipelines/stages/latency.py)."""

    single_row: Budget = Field(default_factory=lambda: Budget(p95_ms=10, p99_ms=25))
    batch_rows: int = Field(100, ge=2)
    batch: Budget = Field(default_factory=lambda: Budget(p95_ms=50, p99_ms=100))
    # Timed calls per round, and rounds (each percentile is the median over rounds).
    calls: int = Field(200, ge=20)
    rounds: int = Field(5, ge=1)


class Disparity(_Strict):
    """How far apart a metric may be between the slices of sensitive attributes."""

    metric: str
    max_difference: float | None = Field(None, ge=0)
    min_ratio: float | None = Field(None, gt=0, le=1)
    # Default: every sensitive attribute.
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Disparity:
        if (self.max_difference is None) == (self.min_ratio is None):
            raise ValueError(f"disparity of {self.metric}: give exactly one of max_difference "
                             "and min_ratio")
        return self


class SliceGates(_Strict):
    """Rules on slices, each judged on the slice's bootstrap interval: a rule fails when the
    whole interval lies past its threshold, warns when only part of it does, passes
    otherwise; a slice under slices.min_rows is reported, not judged."""

    floors: dict[str, float] = Field(default_factory=dict)
    ceilings: dict[str, float] = Field(default_factory=dict)
    disparities: list[Disparity] = Field(default_factory=list)


class Gates(_Strict):
    # The model must beat the trivial baseline (the training class shares, or the training
    # mean) with the interval of the difference excluding zero.
    beat_baseline: bool = True
    # Point estimates on the test split: floors for metrics where higher is better, ceilings
    # where lower is.
    floors: dict[str, float] = Field(default_factory=dict)
    ceilings: dict[str, float] = Field(default_factory=dict)
    # How much worse than the production champion (its pin's metrics) a metric may be.
    max_regression: dict[str, float] = Field(default_factory=dict)
    latency: Latency = Field(default_factory=Latency)
    max_model_mb: float = Field(25.0, gt=0)
    slices: SliceGates = Field(default_factory=SliceGates)


class Declaration(_Strict):
    """The declaration of one model."""

    apiVersion: Literal["gitops-ml/v1"] = API_VERSION
    kind: Literal["ModelDeclaration"] = KIND
    name: str
    description: str = ""
    task: Task
    target: str
    # Classifiers: the target values, in a fixed order; binary: which one is "positive".
    classes: list[str] | None = None
    positive_class: str | None = None
    # Columns of the source that identify a row: checked for blanks and duplicates, never
    # features.
    id_columns: list[str] = Field(default_factory=list)
    # Features the prediction log must not keep.
    never_log: list[str] = Field(default_factory=list)
    features: dict[str, FeatureSpec] = Field(min_length=1)
    cleaning: list[CleaningRule] = Field(default_factory=list)
    # Share of source rows allowed to fail the schema (they are quarantined); above it the
    # ingest stage fails and names the columns.
    max_invalid_fraction: float = Field(0.01, ge=0, le=1)
    split: Split = Field(default_factory=Split)
    train: Train
    evaluate: Evaluate = Field(default_factory=Evaluate)
    slices: Slices = Field(default_factory=Slices)
    gates: Gates = Field(default_factory=Gates)
    production: Production = Field(default_factory=Production)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> Declaration:
        features = list(self.features)
        columns = set(features) | set(self.id_columns) | {self.target}
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed under features")
        if both := sorted(set(self.id_columns) & set(features)):
            raise ValueError(f"id_columns {both} are also listed under features")
        if self.target in self.id_columns:
            raise ValueError(f"target {self.target!r} is also listed under id_columns")
        if unknown := [c for c in self.never_log if c not in self.features]:
            raise ValueError(f"never_log names {unknown}, which are not features")
        if self.task == "regression":
            if self.classes is not None or self.positive_class is not None:
                raise ValueError("a regression model has no classes or positive_class")
        else:
            if not self.classes:
                raise ValueError(f"a {self.task} model declares its classes (the target values)")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"classes {self.classes} repeat a value")
            if self.task == "binary":
                if len(self.classes) != 2:
                    raise ValueError(f"a binary model has exactly 2 classes, got {self.classes}")
                if self.positive_class not in self.classes:
                    raise ValueError(f"positive_class {self.positive_class!r} is not one of "
                                     f"the classes {self.classes}")
            else:
                if len(self.classes) < 3:
                    raise ValueError(f"a multiclass model has at least 3 classes, got "
                                     f"{self.classes}; with two, use task: binary")
                if self.positive_class is not None:
                    raise ValueError("only a binary model has a positive_class")
        for i, rule in enumerate(self.cleaning):
            if rule.column not in self.features:
                raise ValueError(f"cleaning[{i}].column {rule.column!r} is not a feature")
            if unknown := [c for c in rule.when if c not in columns]:
                raise ValueError(f"cleaning[{i}].when names {unknown}, which are not declared "
                                 "columns")
        if self.train.estimator not in ESTIMATORS[self.task]:
            raise ValueError(f"train.estimator {self.train.estimator!r} is not one of "
                             f"{', '.join(ESTIMATORS[self.task])} for a {self.task} model")
        if unknown := [c for c in self.slices.columns if c not in self.features]:
            raise ValueError(f"slices names {unknown}, which are not features")
        known = key_metrics(self.task)
        for field in ("floors", "ceilings", "max_regression"):
            if unknown := [m for m in getattr(self.gates, field) if m not in known]:
                raise ValueError(f"gates.{field} names {unknown}; a {self.task} model reports "
                                 f"{', '.join(known)}")
        per_slice = SLICE_METRICS[self.task]
        rules = self.gates.slices
        named = [*rules.floors, *rules.ceilings, *(d.metric for d in rules.disparities)]
        if unknown := [m for m in named if m not in per_slice]:
            raise ValueError(f"gates.slices names {unknown}; a {self.task} model's slices "
                             f"report {', '.join(per_slice)}")
        if (rules.floors or rules.ceilings) and not self.slices.columns:
            raise ValueError("gates.slices has floors or ceilings but slices names no column")
        for i, d in enumerate(rules.disparities):
            columns = d.columns if d.columns is not None else self.slices.sensitive
            if not columns:
                raise ValueError(f"gates.slices.disparities[{i}]: no sensitive attribute to "
                                 "compare (declare slices.sensitive)")
            if outside := [c for c in columns if c not in self.slices.sensitive]:
                raise ValueError(f"gates.slices.disparities[{i}].columns {outside} are not "
                                 "listed in slices.sensitive")
        return self

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters of the chosen estimator."""
        return dict(self.train.hyperparameters.get(self.train.estimator) or {})

    def signature(self, classes: list[str] | None = None) -> Signature:
        """The service's view of this model (`classes`: in the fitted model's order)."""
        return Signature(
            model=self.name, task=self.task, target=self.target,
            classes=None if self.task == "regression" else list(classes or self.classes or []),
            positive_class=self.positive_class,
            features=[Feature(name=n, type=f.type, categories=f.categories, min=f.min,
                              max=f.max, nullable=f.nullable) for n, f in self.features.items()],
            never_log=list(self.never_log), retention_days=self.production.retention_days,
            slices=SliceRules(columns=self.slices.columns, min_rows=self.slices.min_rows,
                              floors=dict(self.gates.slices.floors),
                              ceilings=dict(self.gates.slices.ceilings))
            if self.slices.columns else None)
