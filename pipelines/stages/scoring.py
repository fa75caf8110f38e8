"""Each task's metrics as functions of (truth, prediction), the trivial baseline each is judged
against, and the paired bootstrap that gives every metric its interval.

A prediction is P(positive) for binary, the [rows, classes] probability matrix for
multiclass, and the predicted value for regression; the truth is 0/1, class index, or value.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import bootstrap
from sklearn import metrics as skm

Scorer = Callable[[np.ndarray, np.ndarray], float]


def scorers(task: str, threshold: float = 0.5, n_classes: int = 2) -> dict[str, Scorer]:
    """Metric name -> f(truth, prediction), in the order tables show them."""
    if task == "binary":
        label = lambda p: (p >= threshold).astype(int)
        return {
            "roc_auc": skm.roc_auc_score,
            "pr_auc": skm.average_precision_score,
            "f1": lambda y, p: skm.f1_score(y, label(p), zero_division=0),
            "precision": lambda y, p: skm.precision_score(y, label(p), zero_division=0),
            "recall": lambda y, p: skm.recall_score(y, label(p), zero_division=0),
            "accuracy": lambda y, p: skm.accuracy_score(y, label(p)),
            "log_loss": lambda y, p: skm.log_loss(y, p, labels=[0, 1]),
        }
    if task == "multiclass":
        labels = list(range(n_classes))
        argmax = lambda p: np.argmax(p, axis=1)
        return {
            "macro_f1": lambda y, p: skm.f1_score(y, argmax(p), average="macro", labels=labels,
                                                  zero_division=0),
            "balanced_accuracy": lambda y, p: _balanced_accuracy(y, argmax(p)),
            "accuracy": lambda y, p: skm.accuracy_score(y, argmax(p)),
            "log_loss": lambda y, p: skm.log_loss(y, p, labels=labels),
        }
    if task == "regression":
        return {
            "rmse": lambda y, p: float(np.sqrt(np.mean((y - p) ** 2))),
            "mae": lambda y, p: float(np.mean(np.abs(y - p))),
            "r2": lambda y, p: skm.r2_score(y, p) if len(y) > 1 else float("nan"),
        }
    raise ValueError(f"unknown task {task!r}")


def _balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    # Mean recall over the classes present in this sample (scikit-learn's definition), without
    # its warning when a resample lacks a predicted class.
    present = np.unique(y)
    return float(np.mean([np.mean(predicted[y == c] == c) for c in present]))


def interval(fn: Callable[[np.ndarray], float], rows: int, rounds: int, confidence: float,
             seed: int) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `fn(row indices)` over resampled test rows.

    Resampling row indices keeps truth and prediction paired, whatever their shapes; the same
    seed gives every metric the same resamples."""
    if rounds <= 0 or rows < 2:
        return None
    res = bootstrap((np.arange(rows),), fn, vectorized=False, n_resamples=rounds,
                    confidence_level=confidence, method="percentile",
                    random_state=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return low, high


def baseline_prediction(task: str, train_truth: np.ndarray, rows: int,
                        n_classes: int = 2) -> np.ndarray:
    """What the trivial model predicts for `rows` test rows: the training class shares (the
    majority class wins every argmax), or the training mean."""
    if task == "regression":
        return np.full(rows, float(np.mean(train_truth)))
    counts = np.bincount(train_truth.astype(int), minlength=n_classes).astype(float)
    shares = np.clip(counts / counts.sum(), 1e-6, 1.0)
    shares /= shares.sum()
    if task == "binary":
        return np.full(rows, shares[1])
    return np.tile(shares, (rows, 1))
