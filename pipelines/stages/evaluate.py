"""Stage `evaluate`: test-split metrics with bootstrap intervals, per-slice metrics, plots."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn import metrics as skm

from contracts.files import atomic_write_text
from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines.metric_names import KEY_METRICS
from pipelines.params import load_params
from pipelines.stages.features import features, target

PLOT_POINTS = 200


def _scorers(threshold: float) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """Metric name -> f(y_true as 0/1, P(positive))."""
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


def score(y: np.ndarray, proba: np.ndarray, threshold: float, rounds: int, confidence: float,
          seed: int) -> dict[str, dict[str, float]]:
    """Each metric with a percentile bootstrap interval over resampled test rows."""
    out: dict[str, dict[str, float]] = {}
    for name, fn in _scorers(threshold).items():
        value = float(fn(y, proba))
        entry = {"value": round(value, 6)}
        if rounds > 0:
            # Same seed per metric: every metric sees the same resamples.
            res = bootstrap((y, proba), fn, paired=True, vectorized=False, n_resamples=rounds,
                            confidence_level=confidence, method="percentile",
                            random_state=np.random.default_rng(seed))
            entry["ci_low"] = round(float(res.confidence_interval.low), 6)
            entry["ci_high"] = round(float(res.confidence_interval.high), 6)
        out[name] = entry
    return out


def slices(frame: pd.DataFrame, y: np.ndarray, proba: np.ndarray, by: list[str],
           threshold: float, min_rows: int) -> dict[str, Any]:
    """Metrics per value of each slicing column (counts only for small slices)."""
    out: dict[str, Any] = {}
    scorers = _scorers(threshold)
    for column in by:
        if column not in frame.columns:
            raise ValueError(f"evaluate.slice_by names {column!r}, which is not a column")
        out[column] = {}
        for value in sorted(frame[column].astype(str).unique()):
            mask = (frame[column].astype(str) == value).to_numpy()
            entry: dict[str, float] = {"rows": int(mask.sum()),
                                       "churn_rate": round(float(y[mask].mean()), 6)}
            if mask.sum() >= min_rows and 0 < y[mask].sum() < mask.sum():
                for name in ("roc_auc", "recall", "precision"):
                    entry[name] = round(float(scorers[name](y[mask], proba[mask])), 6)
            out[column][value] = entry
    return out


def _thin(records: list[dict[str, float]]) -> list[dict[str, float]]:
    if len(records) <= PLOT_POINTS:
        return records
    idx = np.unique(np.linspace(0, len(records) - 1, PLOT_POINTS).round().astype(int))
    return [records[i] for i in idx]


def plots(y: np.ndarray, proba: np.ndarray, threshold: float, classes: list[str],
          positive: str) -> dict[str, Any]:
    """ROC, precision-recall and confusion data in the shapes `dvc plots` reads."""
    fpr, tpr, roc_t = skm.roc_curve(y, proba)
    precision, recall, prc_t = skm.precision_recall_curve(y, proba)
    negative = next(c for c in classes if c != positive)
    name = lambda v: positive if v else negative
    predicted = proba >= threshold
    return {
        "roc.json": {"roc": _thin([
            {"fpr": round(float(a), 6), "tpr": round(float(b), 6),
             "threshold": round(float(min(t, 1.0)), 6)} for a, b, t in zip(fpr, tpr, roc_t)])},
        "prc.json": {"prc": _thin([
            {"precision": round(float(p), 6), "recall": round(float(r), 6),
             "threshold": round(float(t), 6)}
            for p, r, t in zip(precision[:-1], recall[:-1], prc_t)])},
        "confusion.json": {"confusion": [
            {"actual": name(a), "predicted": name(p)} for a, p in zip(y.astype(bool), predicted)]},
    }


def evaluate(model, signature: Signature, test: pd.DataFrame, params: dict[str, Any]):
    """Metrics and plot data for `model` on the test rows."""
    positive = list(model.classes_).index(signature.positive_class)
    proba = model.predict_proba(features(test))[:, positive]
    y = (target(test) == signature.positive_class).to_numpy().astype(int)
    threshold = float(params["threshold"])
    result = {
        "rows": int(len(test)),
        "threshold": threshold,
        **score(y, proba, threshold, int(params["bootstrap_rounds"]),
                float(params["confidence"]), int(params["seed"])),
        "slices": slices(test, y, proba, list(params.get("slice_by") or []), threshold,
                         int(params["min_slice_rows"])),
    }
    return result, plots(y, proba, threshold, signature.classes, signature.positive_class)


def write(result: dict[str, Any], plot_data: dict[str, Any], metrics_path: Path,
          plots_dir: Path) -> None:
    for name, data in plot_data.items():
        atomic_write_text(plots_dir / name, json.dumps(data) + "\n")
    atomic_write_text(metrics_path, json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params)["evaluate"]
    result, plot_data = evaluate(load_skops(args.model), Signature.read(args.signature),
                                 pd.read_parquet(args.test), params)
    write(result, plot_data, args.metrics, args.plots)
    for name in KEY_METRICS:
        m = result[name]
        interval = f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" if "ci_low" in m else ""
        print(f"  {name:<10} {m['value']:.4f}{interval}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
