"""The model: preprocessing for the declared features plus the estimator params.yaml names."""
from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines import schema

# Only estimators the export stage compiles to ONNX with parity (skl2onnx cannot convert
# HistGradientBoostingClassifier inside this pipeline).
ESTIMATORS = {
    "logistic_regression": LogisticRegression,
    "gradient_boosting": GradientBoostingClassifier,
    "random_forest": RandomForestClassifier,
}


def make_estimator(name: str, hyperparameters: dict[str, Any], seed: int):
    """The estimator called `name`, with its hyperparameters from params.yaml."""
    if name not in ESTIMATORS:
        raise ValueError(f"train.estimator {name!r} is not one of: {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name](random_state=seed, **(hyperparameters or {}))


def build_pipeline(estimator) -> Pipeline:
    """Scale the numbers, one-hot the categories (the declared ones, in declared order)."""
    categories = [list(c.categories) for c in schema.FEATURES if c.type == "category"]
    pre = ColumnTransformer(
        [
            ("numeric", StandardScaler(), schema.NUMERIC),
            # Fixed categories, not learned ones: a category absent from one training split
            # must still have its column, so every model has the same inputs.
            ("categorical", OneHotEncoder(categories=categories, handle_unknown="ignore",
                                          sparse_output=False), schema.CATEGORICAL),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", pre), ("model", estimator)])


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns in declared order, with their declared dtypes."""
    out = frame[schema.FEATURE_NAMES].copy()
    for c in schema.FEATURES:
        if c.type == "integer":
            out[c.name] = out[c.name].astype("int64")
        elif c.type == "number":
            out[c.name] = out[c.name].astype("float64")
        else:
            out[c.name] = out[c.name].astype(str)
    return out


def target(frame: pd.DataFrame) -> pd.Series:
    return frame[schema.TARGET.name].astype(str)
