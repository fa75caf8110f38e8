"""Stage `evaluate`: test-split metrics with bootstrap intervals, the comparison with the
trivial baseline, per-slice metrics and plot data, for whichever task the model has."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from contracts.files import atomic_write_text
from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines import declaration
from pipelines.declaration.spec import Evaluate, Slices
from pipelines.metric_names import BASELINE_METRIC, key_metrics
from pipelines.stages import scoring
from pipelines.stages.features import features, target
from pipelines.stages.ingest import AT, ORIGIN
from pipelines.stages.slices import slice_report

PLOT_POINTS = 200


def truth(frame: pd.DataFrame, sig: Signature) -> np.ndarray:
    """The target as the scorers take it: values for regression, class indices otherwise."""
    y = target(frame, sig)
    if sig.task == "regression":
        return y.to_numpy(dtype=float)
    return y.map({c: i for i, c in enumerate(sig.classes or [])}).to_numpy(dtype=int)


class Outcome:
    """A model's answers on the test rows, in the form the task's scorers take."""

    def __init__(self, model, sig: Signature, frame: pd.DataFrame, threshold: float) -> None:
        self.sig = sig
        self.threshold = threshold
        x = features(frame, sig)
        self.truth = truth(frame, sig)
        if sig.task == "regression":
            self.prediction = np.asarray(model.predict(x), dtype=float)
        else:
            classes = sig.classes or []
            proba = np.asarray(model.predict_proba(x), dtype=float)
            self.prediction = (proba[:, classes.index(sig.positive_class)]
                               if sig.task == "binary" else proba)
        self.scorers = scoring.scorers(sig.task, threshold, len(sig.classes or []))
        self.vectorized = scoring.vectorized(sig.task, threshold, len(sig.classes or []))

    def __len__(self) -> int:
        return len(self.truth)


def _entry(value: float, ci: tuple[float, float] | None) -> dict[str, float]:
    entry = {"value": round(float(value), 6)}
    if ci is not None:
        entry["ci_low"], entry["ci_high"] = round(ci[0], 6), round(ci[1], 6)
    return entry


def score(outcome: Outcome, params: Evaluate) -> dict[str, dict[str, float]]:
    """Each key metric with its percentile bootstrap interval over resampled test rows."""
    y, p = outcome.truth, outcome.prediction
    out = {}
    for name, fn in outcome.scorers.items():
        fast = outcome.vectorized[name]
        ci = scoring.interval(lambda idx, axis=-1, fast=fast: fast(y[idx], p[idx]), len(y),
                              params.bootstrap_rounds, params.confidence, params.seed)
        out[name] = _entry(fn(y, p), ci)
    return out


def baseline(outcome: Outcome, train_truth: np.ndarray, params: Evaluate) -> dict[str, Any]:
    """The trivial baseline's score, and model minus baseline with its interval (paired)."""
    task = outcome.sig.task
    metric = BASELINE_METRIC[task]
    fn, fast = outcome.scorers[metric], outcome.vectorized[metric]
    y, p = outcome.truth, outcome.prediction
    b = scoring.baseline_prediction(task, train_truth, len(y), len(outcome.sig.classes or []))
    diff = lambda idx, axis=-1: fast(y[idx], p[idx]) - fast(y[idx], b[idx])
    ci = scoring.interval(diff, len(y), params.bootstrap_rounds, params.confidence, params.seed)
    kind = "the training mean" if task == "regression" else "the training class shares"
    return {"metric": metric, "predicts": kind, "value": round(float(fn(y, b)), 6),
            "difference": _entry(fn(y, p) - fn(y, b), ci)}


def slices(frame: pd.DataFrame, outcome: Outcome, params: Evaluate,
           declared: Slices) -> dict[str, Any]:
    """Each sliced column's per-slice metrics with intervals, and the disparity between the
    slices of each sensitive attribute (pipelines/stages/slices.py)."""
    out = {}
    for column in declared.columns:
        kind = "sensitive" if column in declared.sensitive else "segment"
        out[column] = slice_report(
            frame[column], kind, outcome.truth, outcome.prediction, task=outcome.sig.task,
            threshold=outcome.threshold, min_rows=declared.min_rows,
            rounds=params.bootstrap_rounds, confidence=params.confidence, seed=params.seed)
    return out


def per_class(outcome: Outcome) -> dict[str, dict[str, float]]:
    """Multiclass: each class's rows, recall and precision."""
    classes = outcome.sig.classes or []
    predicted = np.argmax(outcome.prediction, axis=1)
    recall = skm.recall_score(outcome.truth, predicted, labels=range(len(classes)), average=None,
                              zero_division=0)
    precision = skm.precision_score(outcome.truth, predicted, labels=range(len(classes)),
                                    average=None, zero_division=0)
    return {c: {"rows": int((outcome.truth == i).sum()), "recall": round(float(recall[i]), 6),
                "precision": round(float(precision[i]), 6)} for i, c in enumerate(classes)}


def _thin(records: list[dict[str, float]]) -> list[dict[str, float]]:
    if len(records) <= PLOT_POINTS:
        return records
    idx = np.unique(np.linspace(0, len(records) - 1, PLOT_POINTS).round().astype(int))
    return [records[i] for i in idx]


def _roc(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    fpr, tpr, thresholds = skm.roc_curve(y, score)
    return {"roc": _thin([{"fpr": round(float(a), 6), "tpr": round(float(b), 6),
                           "threshold": round(float(min(t, 1.0)), 6)}
                          for a, b, t in zip(fpr, tpr, thresholds)])}


def plots(outcome: Outcome) -> dict[str, Any]:
    """Plot data in the shapes `dvc plots` reads (and the report draws): ROC, precision-recall
    and confusion for classifiers; predicted vs actual and residuals for regression."""
    sig, y, p = outcome.sig, outcome.truth, outcome.prediction
    if sig.task == "regression":
        order = np.argsort(y)
        pairs = _thin([{"actual": round(float(y[i]), 6), "predicted": round(float(p[i]), 6)}
                       for i in order])
        return {
            "predicted.json": {"predicted": pairs},
            "residuals.json": {"residuals": [
                {"predicted": r["predicted"], "residual": round(r["actual"] - r["predicted"], 6)}
                for r in pairs]},
        }
    classes = sig.classes or []
    if sig.task == "binary":
        precision, recall, thresholds = skm.precision_recall_curve(y, p)
        predicted = (p >= outcome.threshold).astype(int)
        out = {
            "roc.json": _roc(y, p),
            "prc.json": {"prc": _thin([
                {"precision": round(float(a), 6), "recall": round(float(b), 6),
                 "threshold": round(float(t), 6)}
                for a, b, t in zip(precision[:-1], recall[:-1], thresholds)])},
        }
    else:
        predicted = np.argmax(p, axis=1)
        # One-vs-rest, micro-averaged: every (row, class) pair is one binary decision.
        onehot = np.eye(len(classes), dtype=int)[y]
        out = {"roc.json": _roc(onehot.ravel(), p.ravel())}
    out["confusion.json"] = {"confusion": [
        {"actual": classes[a], "predicted": classes[b]} for a, b in zip(y, predicted)]}
    return out


def evaluate(model, sig: Signature, test: pd.DataFrame, train: pd.DataFrame,
             params: Evaluate, declared: Slices) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics and plot data for `model` on the test rows."""
    outcome = Outcome(model, sig, test, params.threshold)
    result: dict[str, Any] = {"task": sig.task, "rows": len(outcome),
                              "confidence": params.confidence}
    if sig.task == "binary":
        result["threshold"] = params.threshold
    result.update(score(outcome, params))
    result["baseline"] = baseline(outcome, truth(train, sig), params)
    if sig.task == "multiclass":
        result["per_class"] = per_class(outcome)
    result["slices"] = slices(test, outcome, params, declared)
    if recent := recent_metrics(model, sig, test, params):
        result["recent"] = recent
    return result, plots(outcome)


def recent_metrics(model, sig: Signature, test: pd.DataFrame,
                   params: Evaluate) -> dict[str, Any] | None:
    """The key metrics on the recent production holdout alone (None without one)."""
    if ORIGIN not in test.columns:
        return None
    recent = test[test[ORIGIN] == "production"].reset_index(drop=True)
    if len(recent) < 2:
        return None
    at = pd.to_datetime(recent[AT], utc=True)
    return {"rows": len(recent), "from": at.min().isoformat(), "to": at.max().isoformat(),
            **score(Outcome(model, sig, recent, params.threshold), params)}


def write(result: dict[str, Any], plot_data: dict[str, Any], metrics_path: Path,
          plots_dir: Path) -> None:
    for stale in plots_dir.glob("*.json") if plots_dir.is_dir() else []:
        if stale.name not in plot_data:
            stale.unlink()
    for name, data in plot_data.items():
        atomic_write_text(plots_dir / name, json.dumps(data) + "\n")
    atomic_write_text(metrics_path, json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declaration", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    args = parser.parse_args(argv)
    decl = declaration.load(args.declaration)
    result, plot_data = evaluate(load_skops(args.model), Signature.read(args.signature),
                                 pd.read_parquet(args.test), pd.read_parquet(args.train),
                                 decl.evaluate, decl.slices)
    write(result, plot_data, args.metrics, args.plots)
    level = f"{decl.evaluate.confidence:.0%}"
    print(f"evaluate: {decl.name} on {result['rows']} test rows ({level} bootstrap intervals)")
    for name in key_metrics(result["task"]):
        m = result[name]
        shown = f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" if "ci_low" in m else ""
        print(f"  {name:<18} {m['value']:.4f}{shown}")
    b = result["baseline"]
    print(f"  vs baseline ({b['predicts']}): {b['metric']} {b['value']:.4f} -> difference "
          f"{b['difference']['value']:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
