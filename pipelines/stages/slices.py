"""Metrics per slice of the test rows, with bootstrap intervals, and the disparity between the
slices of each sensitive attribute: fairlearn's MetricFrame does the grouping and its
difference and ratio, fairlearn and scikit-learn the metrics.

Intervals: each slice's rows are resampled on their own (the slice's size stays what it is),
the same replicate index across slices gives one replicate of the disparity (largest minus
smallest, smallest over largest), and every interval is the percentile interval of those
replicates at the declared confidence. The replicates are computed in one vectorized pass per
slice (the same definitions, over a [rounds, rows] index matrix): calling the metric functions
once per replicate would take minutes on an ordinary test split.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy.stats import rankdata
from sklearn import metrics as skm

from pipelines.metric_names import SLICE_METRICS

Metric = Callable[[np.ndarray, np.ndarray], float]


def _defined_for_both_classes(fn: Metric) -> Metric:
    # A rate over positives (or a ranking) means nothing in a slice holding one class only.
    def metric(y: np.ndarray, p: np.ndarray) -> float:
        return float("nan") if len(np.unique(y)) < 2 else float(fn(y, p))
    return metric


def metric_functions(task: str, threshold: float) -> dict[str, Metric]:
    """Slice metric name -> f(truth, model output), for `task` (see metric_names)."""
    if task == "binary":
        label = lambda p: (p >= threshold).astype(int)
        fns: dict[str, Metric] = {
            "true_positive_rate": _defined_for_both_classes(
                lambda y, p: true_positive_rate(y, label(p), pos_label=1)),
            "false_positive_rate": _defined_for_both_classes(
                lambda y, p: false_positive_rate(y, label(p), pos_label=1)),
            "selection_rate": lambda y, p: float(selection_rate(y, label(p), pos_label=1)),
            "roc_auc": _defined_for_both_classes(skm.roc_auc_score),
            "accuracy": lambda y, p: float(skm.accuracy_score(y, label(p))),
        }
    elif task == "multiclass":  # the model output here is the predicted class index
        fns = {"accuracy": lambda y, p: float(skm.accuracy_score(y, p)),
               "balanced_accuracy": lambda y, p: float(np.mean(
                   [np.mean(p[y == c] == c) for c in np.unique(y)]))}
    else:
        fns = {"mae": lambda y, p: float(np.mean(np.abs(y - p))),
               "rmse": lambda y, p: float(np.sqrt(np.mean((y - p) ** 2)))}
    assert tuple(fns) == SLICE_METRICS[task], (tuple(fns), SLICE_METRICS[task])
    return fns


def _rate(hits: np.ndarray, over: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return hits.sum(axis=1) / over.sum(axis=1)


def _auc(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    # Mann-Whitney: the share of (positive, negative) pairs ranked right, ties counting half.
    ranks = rankdata(score, axis=1)
    pos = y.sum(axis=1)
    neg = y.shape[1] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((ranks * y).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)


def replicate_functions(task: str, threshold: float) -> dict[str, Callable]:
    """Slice metric name -> f(truth[R, n], output[R, n]) giving R replicates at once."""
    if task == "binary":
        def label(p):
            return p >= threshold
        return {
            "true_positive_rate": lambda y, p: _rate((y == 1) & label(p), y == 1),
            "false_positive_rate": lambda y, p: _rate((y == 0) & label(p), y == 0),
            "selection_rate": lambda y, p: label(p).mean(axis=1),
            "roc_auc": lambda y, p: _auc(y, p),
            "accuracy": lambda y, p: (label(p) == (y == 1)).mean(axis=1),
        }
    if task == "multiclass":
        def balanced(y, p):
            classes = np.unique(y)
            recalls = np.vstack([_rate((y == c) & (p == c), y == c) for c in classes])
            return np.nanmean(recalls, axis=0)
        return {"accuracy": lambda y, p: (y == p).mean(axis=1), "balanced_accuracy": balanced}
    return {"mae": lambda y, p: np.abs(y - p).mean(axis=1),
            "rmse": lambda y, p: np.sqrt(((y - p) ** 2).mean(axis=1))}


def _replicates(fn: Callable, rounds: int, seed: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A MetricFrame metric returning `rounds` bootstrap replicates of `fn` on a group's rows."""
    def replicate(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        idx = np.random.default_rng(seed).integers(0, len(y), size=(rounds, len(y)))
        return np.asarray(fn(y[idx], p[idx]), dtype=float)
    return replicate


def _entry(value: float, replicates: np.ndarray | None, confidence: float) -> dict | None:
    if value is None or not np.isfinite(value):
        return None
    entry = {"value": round(float(value), 6)}
    if replicates is not None:
        finite = replicates[np.isfinite(replicates)]
        if len(finite) >= 0.9 * len(replicates):  # a slice that often lacks a class has no CI
            tail = (1 - confidence) / 2 * 100
            entry["ci_low"] = round(float(np.percentile(finite, tail)), 6)
            entry["ci_high"] = round(float(np.percentile(finite, 100 - tail)), 6)
    return entry


def slice_report(column: pd.Series, kind: str, truth: np.ndarray, output: np.ndarray, *,
                 task: str, threshold: float, min_rows: int, rounds: int, confidence: float,
                 seed: int) -> dict[str, Any]:
    """One sliced column: each slice's rows and metrics, and (sensitive attributes) the
    disparity of each metric between the slices large enough to judge."""
    fns = metric_functions(task, threshold)
    groups = column.astype(str).to_numpy()
    output = np.asarray(output)
    if task == "multiclass":
        output = np.argmax(output, axis=1)
    frame = MetricFrame(metrics=fns, y_true=truth, y_pred=output, sensitive_features=groups)
    fast = replicate_functions(task, threshold)
    replicated = MetricFrame(metrics={n: _replicates(fast[n], rounds, seed) for n in fns},
                             y_true=truth, y_pred=output, sensitive_features=groups) \
        if rounds > 0 else None
    sizes = pd.Series(groups).value_counts()
    out: dict[str, Any] = {"kind": kind, "groups": {}}
    for value in sorted(sizes.index):
        entry: dict[str, Any] = {"rows": int(sizes[value])}
        if task == "binary":
            entry["positive_rate"] = round(float(truth[groups == value].mean()), 6)
        for name in fns:
            reps = replicated.by_group.loc[value, name] if replicated is not None else None
            entry[name] = _entry(frame.by_group.loc[value, name], reps, confidence)
        out["groups"][value] = entry
    if kind == "sensitive":
        out["disparity"] = _disparity(frame, replicated, sizes, fns, min_rows, confidence,
                                      truth, output, groups)
    return out


def _disparity(frame: MetricFrame, replicated: MetricFrame | None, sizes: pd.Series,
               fns: dict[str, Metric], min_rows: int, confidence: float,
               truth: np.ndarray, output: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    judged = [g for g in sizes.index if sizes[g] >= min_rows]
    out: dict[str, Any] = {}
    for name, fn in fns.items():
        present = sorted(g for g in judged if np.isfinite(frame.by_group.loc[g, name]))
        if len(present) < 2:
            out[name] = {"groups": present, "difference": None, "ratio": None}
            continue
        # fairlearn's own disparity measures, over the slices large enough to judge.
        rows = np.isin(groups, present)
        among = MetricFrame(metrics=fn, y_true=truth[rows], y_pred=output[rows],
                            sensitive_features=groups[rows])
        difference = float(among.difference(method="between_groups"))
        ratio = float(among.ratio(method="between_groups"))
        diff_reps = ratio_reps = None
        if replicated is not None:
            stacked = np.vstack([replicated.by_group.loc[g, name] for g in present])
            with np.errstate(divide="ignore", invalid="ignore"):
                diff_reps = np.nanmax(stacked, axis=0) - np.nanmin(stacked, axis=0)
                ratio_reps = np.nanmin(stacked, axis=0) / np.nanmax(stacked, axis=0)
        out[name] = {"groups": present,
                     "difference": _entry(difference, diff_reps, confidence),
                     "ratio": _entry(ratio, ratio_reps, confidence)}
    return out
