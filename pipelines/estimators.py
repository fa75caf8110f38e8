"""The estimators a declaration may name, per task, as import paths (so reading a declaration
imports no scikit-learn). Only estimators the export stage compiles to ONNX with parity are
listed (skl2onnx cannot convert HistGradientBoosting* inside these pipelines)."""
from __future__ import annotations

import importlib
from typing import Any

_CLASSIFIERS = {
    "logistic_regression": "sklearn.linear_model.LogisticRegression",
    "gradient_boosting": "sklearn.ensemble.GradientBoostingClassifier",
    "random_forest": "sklearn.ensemble.RandomForestClassifier",
}
ESTIMATORS: dict[str, dict[str, str]] = {
    "binary": _CLASSIFIERS,
    "multiclass": _CLASSIFIERS,
    "regression": {
        "ridge": "sklearn.linear_model.Ridge",
        "gradient_boosting": "sklearn.ensemble.GradientBoostingRegressor",
        "random_forest": "sklearn.ensemble.RandomForestRegressor",
    },
}
# What `mlops new-model` drafts: quick to train, compiles to small ONNX files.
DEFAULT = {"binary": "logistic_regression", "multiclass": "logistic_regression",
           "regression": "ridge"}
DEFAULT_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0, "max_iter": 2000},
    "ridge": {"alpha": 1.0},
    "gradient_boosting": {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 3,
                          "subsample": 0.9},
    "random_forest": {"n_estimators": 300, "max_depth": 10, "min_samples_leaf": 5},
}


def estimator_class(task: str, name: str):
    """The scikit-learn class `name` stands for in `task` (imported on use)."""
    choices = ESTIMATORS[task]
    if name not in choices:
        raise ValueError(f"estimator {name!r} is not one of {', '.join(choices)} for a {task} model")
    module, _, cls = choices[name].rpartition(".")
    return getattr(importlib.import_module(module), cls)


def make(task: str, name: str, hyperparameters: dict[str, Any] | None, seed: int):
    """An unfitted estimator; an unknown hyperparameter is named with the ones it accepts."""
    cls = estimator_class(task, name)
    accepted = cls().get_params()
    unknown = sorted(set(hyperparameters or {}) - set(accepted))
    if unknown:
        raise ValueError(f"train.hyperparameters.{name}: {', '.join(unknown)} not accepted by "
                         f"{cls.__name__} (it takes {', '.join(sorted(accepted))})")
    kwargs = dict(hyperparameters or {})
    if "random_state" in accepted:
        kwargs.setdefault("random_state", seed)
    return cls(**kwargs)
