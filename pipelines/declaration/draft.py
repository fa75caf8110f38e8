"""Draft a declaration from a data file: types, categories, ranges, emptiness, id-like columns
and the task, inferred from the values, plus what a person should check before committing."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.declaration.spec import Declaration
from pipelines.estimators import DEFAULT, DEFAULT_HYPERPARAMETERS

# A text column with more distinct values than this is free text or an identifier, not a
# category a model can one-hot encode.
MAX_CATEGORIES = 50
# An integer column with at most this many distinct values may be a coded category.
FEW_VALUES = 5
# A numeric target with at most this many distinct values is read as classes.
MAX_CLASSES = 20
# Ranges are widened by this share of the observed span, so new data slightly outside the
# training range is still accepted (the drift monitor reports it).
RANGE_MARGIN = 0.1
_ID_NAME = re.compile(r"(^|[_\-\s])(id|uuid|key)$|ID$|Id$", re.IGNORECASE)
_POSITIVE = ("1", "yes", "true", "y", "t", "positive", "pos")


class DraftError(ValueError):
    """The data cannot become a model as asked; the message says why."""


@dataclass
class Draft:
    """The drafted declaration and the notes printed beside it."""

    declaration: Declaration
    inferred: list[str] = field(default_factory=list)  # what was inferred, one line each
    check: list[str] = field(default_factory=list)  # what the user should review


def _numbers(raw: pd.Series) -> pd.Series | None:
    """The column as numbers when every non-blank cell is one, else None."""
    present = raw[raw.str.strip() != ""]
    values = pd.to_numeric(present.str.strip(), errors="coerce")
    if present.empty or values.isna().any() or not values.map(math.isfinite).all():
        return None
    return values


def _widen(low: float, high: float, integer: bool) -> tuple[float, float]:
    span = (high - low) or max(abs(high), 1.0)
    lo, hi = low - RANGE_MARGIN * span, high + RANGE_MARGIN * span
    if low >= 0 > lo:
        lo = 0.0  # a quantity never below zero stays so
    if integer:
        lo, hi = math.floor(lo), math.ceil(hi)
    return round(lo, 6), round(hi, 6)


def _id_like(name: str, raw: pd.Series, numbers: pd.Series | None) -> bool:
    present = raw[raw.str.strip() != ""]
    unique = present.nunique() == len(present) and len(present) > MAX_CATEGORIES
    if _ID_NAME.search(name) and present.nunique() > 0.9 * len(present):
        return True
    return unique and (numbers is None or (numbers % 1 == 0).all())


def infer_task(target: pd.Series) -> str:
    """binary for two values, regression for many numbers, multiclass otherwise."""
    values = target[target.str.strip() != ""]
    distinct = values.nunique()
    if distinct == 2:
        return "binary"
    numbers = _numbers(values)
    if numbers is not None and (distinct > MAX_CLASSES or (numbers % 1 != 0).any()):
        return "regression"
    if distinct > MAX_CLASSES:
        raise DraftError(f"target {target.name!r} holds {distinct} distinct text values: too many "
                         "classes for a classifier; pass --task if this is what you want")
    return "multiclass"


def positive_class(target: pd.Series) -> str:
    """The class that reads as "the event" (1, yes, true), else the rarer one."""
    counts = target[target.str.strip() != ""].value_counts()
    for c in sorted(counts.index):
        if c.strip().lower() in _POSITIVE:
            return c
    return str(counts.index[-1])


def draft(name: str, frame: pd.DataFrame, target: str, task: str | None = None,
          positive: str | None = None) -> Draft:
    """Infer a declaration for `frame` (all cells as text) predicting `target`."""
    if target not in frame.columns:
        raise DraftError(f"target {target!r} is not a column of the data (it has: "
                         f"{', '.join(map(str, frame.columns[:25]))})")
    y = frame[target].astype(str)
    values = sorted(y[y.str.strip() != ""].unique())
    if len(values) < 2:
        raise DraftError(f"target {target!r} holds a single value ({values[0]!r} in every row)"
                         if values else f"target {target!r} is empty in every row")
    task = task or infer_task(y)
    notes, check = [f"task: {task} (from the {len(values)} distinct values of {target})"], []
    blank_targets = int((y.str.strip() == "").sum())
    if blank_targets:
        check.append(f"{blank_targets} rows have an empty {target}: ingest quarantines them")
    spec: dict[str, Any] = {"name": name, "task": task, "target": target}
    if task == "regression":
        if _numbers(y) is None:
            raise DraftError(f"target {target!r} is not numeric, so it cannot be a regression "
                             "target; use --task binary or multiclass")
    else:
        if len(values) > MAX_CLASSES * 5:
            raise DraftError(f"target {target!r} holds {len(values)} distinct values: too many "
                             f"classes for a {task} model")
        if task == "binary" and len(values) != 2:
            raise DraftError(f"target {target!r} holds {len(values)} values "
                             f"({', '.join(values[:5])}...); a binary model needs exactly 2")
        if task == "multiclass" and len(values) < 3:
            raise DraftError(f"target {target!r} holds only 2 values: use --task binary")
        spec["classes"] = values
        if task == "binary":
            if positive is not None and positive not in values:
                raise DraftError(f"--positive-class {positive!r} is not a value of {target} "
                                 f"({', '.join(values)})")
            spec["positive_class"] = positive or positive_class(y)
            if positive is None:
                check.append(f"positive_class {spec['positive_class']!r}: the class whose "
                             "probability the service returns; --positive-class to choose")

    features: dict[str, Any] = {}
    ids: list[str] = []
    for column in frame.columns:
        if column == target:
            continue
        raw = frame[column].astype(str)
        numbers = _numbers(raw)
        if _id_like(str(column), raw, numbers):
            ids.append(str(column))
            continue
        nullable = bool((raw.str.strip() == "").any())
        if numbers is not None:
            integer = bool((numbers % 1 == 0).all())
            low, high = _widen(float(numbers.min()), float(numbers.max()), integer)
            feature: dict[str, Any] = {"type": "integer" if integer else "number",
                                       "min": low, "max": high}
            if integer and numbers.nunique() <= FEW_VALUES:
                shown = ", ".join(str(int(v)) for v in sorted(numbers.unique()))
                check.append(f"{column}: only the integers {shown}: a code for a category? If "
                             "so, declare it type: category with those values as text")
        else:
            categories = sorted(raw[raw.str.strip() != ""].unique())
            if len(categories) > MAX_CATEGORIES:
                ids.append(str(column))
                check.append(f"{column}: {len(categories)} distinct text values, treated as an "
                             "identifier (never a feature); declare it if it should be one")
                continue
            feature = {"type": "category", "categories": categories}
        if nullable:
            feature["nullable"] = True
            blanks = int((raw.str.strip() == "").sum())
            check.append(f"{column}: {blanks} empty cells, declared nullable (the model imputes "
                         "them); or add a cleaning rule")
        features[str(column)] = feature
    if not features:
        raise DraftError("no column besides the target and id-like columns is left as a feature")
    if ids:
        notes.append(f"id-like columns (dropped from the features): {', '.join(ids)}")
        check.append(f"id_columns {ids}: never features; rows must have them filled and unique")
    spec["id_columns"] = ids
    spec["features"] = features
    kinds = pd.Series([f["type"] for f in features.values()]).value_counts()
    notes.append("features: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    notes.append(f"ranges widened by {RANGE_MARGIN:.0%} of the observed span")
    estimator = DEFAULT[task]
    spec["train"] = {"estimator": estimator,
                     "hyperparameters": {estimator: DEFAULT_HYPERPARAMETERS[estimator]}}
    check.append("never_log: list the features the prediction log must not keep")
    check.append("gates: the default rules only demand beating the trivial baseline and the "
                 "latency and size budgets; add floors for the metrics that matter here")
    return Draft(Declaration.model_validate(spec), notes, check)
