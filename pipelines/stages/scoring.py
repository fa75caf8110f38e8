"""Each task's metrics as functions of (truth, prediction), the trivial baseline each is judged
against, and the paired bootstrap that gives every metric its interval.

A prediction is P(positive) for binary, the [rows, classes] probability matrix for
multiclass, and the predicted value for regression; the truth is 0/1, class index, or value.

The point estimates come from scikit-learn's functions. The bootstrap needs each metric on
hundreds of resamples, so every metric also has a vectorized form computing all replicates
from a [rounds, rows] matrix of row indices at once (the same definitions; a test holds them
equal to scikit-learn's); average precision, which has no short closed form, loops.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import bootstrap, rankdata
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


def _rate(hits: np.ndarray, over: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(hits.sum(axis=-1) / over.sum(axis=-1))


def roc_auc_rows(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC per row of [R, n] arrays (Mann-Whitney: ties count half)."""
    ranks = rankdata(score, axis=-1)
    pos = y.sum(axis=-1)
    neg = y.shape[-1] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((ranks * y).sum(axis=-1) - pos * (pos + 1) / 2) / (pos * neg)


def _log_loss(likelihood: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float64).eps
    return -np.log(np.clip(likelihood, eps, 1 - eps)).mean(axis=-1)


def vectorized(task: str, threshold: float = 0.5, n_classes: int = 2) -> dict[str, Callable]:
    """Metric name -> f(truth[R, n], prediction[R, n(, classes)]) giving R values at once."""
    if task == "binary":
        def binary(fn):
            return lambda y, p: fn(y == 1, p >= threshold)

        def f1(y, hit):
            tp = (y & hit).sum(axis=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.nan_to_num(2 * tp / (2 * tp + (~y & hit).sum(axis=-1)
                                               + (y & ~hit).sum(axis=-1)))
        return {
            "roc_auc": roc_auc_rows,
            "pr_auc": lambda y, p: np.array([skm.average_precision_score(a, b)
                                             for a, b in zip(y, p)]),
            "f1": binary(f1),
            "precision": binary(lambda y, hit: _rate(y & hit, hit)),
            "recall": binary(lambda y, hit: _rate(y & hit, y)),
            "accuracy": binary(lambda y, hit: (y == hit).mean(axis=-1)),
            "log_loss": lambda y, p: _log_loss(np.where(y == 1, p, 1 - p)),
        }
    if task == "multiclass":
        def macro_f1(y, p):
            label = np.argmax(p, axis=-1)
            scores = []
            for c in range(n_classes):
                tp = ((y == c) & (label == c)).sum(axis=-1)
                wrong = ((y != c) & (label == c)).sum(axis=-1) + ((y == c) & (label != c)).sum(-1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    scores.append(np.nan_to_num(2 * tp / (2 * tp + wrong)))
            return np.mean(scores, axis=0)

        def balanced(y, p):
            label = np.argmax(p, axis=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                recalls = [((y == c) & (label == c)).sum(-1) / (y == c).sum(-1)
                           for c in range(n_classes)]
            return np.nanmean(recalls, axis=0)
        return {
            "macro_f1": macro_f1,
            "balanced_accuracy": balanced,
            "accuracy": lambda y, p: (np.argmax(p, axis=-1) == y).mean(axis=-1),
            "log_loss": lambda y, p: _log_loss(np.take_along_axis(
                p / p.sum(axis=-1, keepdims=True), y[..., None], axis=-1)[..., 0]),
        }
    if task == "regression":
        def r2(y, p):
            total = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                return 1 - ((y - p) ** 2).sum(axis=-1) / total
        return {"rmse": lambda y, p: np.sqrt(((y - p) ** 2).mean(axis=-1)),
                "mae": lambda y, p: np.abs(y - p).mean(axis=-1), "r2": r2}
    raise ValueError(f"unknown task {task!r}")


def interval(fn: Callable[[np.ndarray], np.ndarray], rows: int, rounds: int, confidence: float,
             seed: int) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `fn(row indices[R, n])` over resampled test rows.

    Resampling row indices keeps truth and prediction paired, whatever their shapes; the same
    seed gives every metric the same resamples."""
    if rounds <= 0 or rows < 2:
        return None
    res = bootstrap((np.arange(rows),), fn, vectorized=True, n_resamples=rounds,
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
