"""The model: preprocessing for a signature's features plus the declared estimator.

Everything here is driven by the signature (derived from the declaration), so the same code
builds every model: numbers are scaled (imputed first when one may be empty), categories are
one-hot encoded over their declared values (a blank or unknown one encodes as all zeros).
"""
from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from contracts.signature import Signature


def numeric(signature: Signature) -> list[str]:
    return [f.name for f in signature.features if f.type != "category"]


def categorical(signature: Signature) -> list[str]:
    return [f.name for f in signature.features if f.type == "category"]


def build_pipeline(signature: Signature, estimator) -> Pipeline:
    """Scale the numbers, one-hot the categories (the declared ones, in declared order)."""
    nullable_numbers = any(f.nullable for f in signature.features if f.type != "category")
    numbers = (Pipeline([("impute", SimpleImputer(strategy="median")),
                         ("scale", StandardScaler())]) if nullable_numbers else StandardScaler())
    parts = []
    if numeric(signature):
        parts.append(("numeric", numbers, numeric(signature)))
    if categorical(signature):
        categories = [list(f.categories or []) for f in signature.features if f.type == "category"]
        # Fixed categories, not learned ones: a category absent from one training split must
        # still have its column, so every model of a declaration has the same inputs.
        parts.append(("categorical", OneHotEncoder(categories=categories, handle_unknown="ignore",
                                                   sparse_output=False), categorical(signature)))
    pre = ColumnTransformer(parts, verbose_feature_names_out=False)
    return Pipeline([("preprocess", pre), ("model", estimator)])


def features(frame: pd.DataFrame, signature: Signature) -> pd.DataFrame:
    """The feature columns in declared order, with their declared dtypes.

    An empty value of a nullable number is NaN (an integer column then becomes float64), of a
    nullable category the empty string."""
    out = frame[signature.feature_names].copy()
    for f in signature.features:
        column = out[f.name]
        if f.type == "category":
            out[f.name] = column.where(column.notna(), "").astype(str)
        elif f.type == "integer" and not column.isna().any():
            out[f.name] = column.astype("int64")
        else:
            out[f.name] = column.astype("float64")
    return out


def target(frame: pd.DataFrame, signature: Signature) -> pd.Series:
    """The target column: text for a classifier, float64 for regression."""
    column = frame[signature.target]
    return column.astype("float64") if signature.task == "regression" else column.astype(str)
