"""Pipeline outputs shaped like the evaluate and gate stages write them (metrics.json,
gate.json, plots/*.json, ingest.json) for a binary, a multiclass and a regression model, made
from seeded random predictions, and a git repository holding them on main and on a branch."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from gitops_fixtures import git
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve
from sklearn.preprocessing import label_binarize

CLASSES = {"binary": ["No", "Yes"], "multiclass": ["class_0", "class_1", "class_2"]}
ESTIMATOR = {"binary": "logistic_regression", "multiclass": "logistic_regression",
             "regression": "ridge"}


def declaration(name: str, task: str, **changes: Any) -> dict:
    """A valid declaration of `task`; `changes` replace top-level keys."""
    doc: dict[str, Any] = {
        "name": name, "task": task, "target": "y",
        "features": {"x1": {"type": "number"},
                     "Contract": {"type": "category", "categories": ["Monthly", "Yearly"]},
                     "gender": {"type": "category", "categories": ["Female", "Male"]}},
        "train": {"estimator": ESTIMATOR[task],
                  "hyperparameters": {ESTIMATOR[task]: {"C" if task != "regression" else "alpha": 1.0}}},
        "evaluate": {"threshold": 0.5, "confidence": 0.95},
        "slices": {"sensitive": ["gender"], "segments": ["Contract"]},
    }
    if task != "regression":
        doc["classes"] = CLASSES[task]
    if task == "binary":
        doc["positive_class"] = "Yes"
    doc.update(changes)
    return doc


def _metric(value: float, width: float) -> dict:
    return {"value": round(value, 6), "ci_low": round(value - width, 6),
            "ci_high": round(value + width, 6)}


def _gate(name: str, failing: str | None, extra: list[dict] | None = None) -> dict:
    rules = [{"rule": "beats baseline (log_loss)", "value": -0.15, "threshold": 0.0,
              "passed": True, "note": "", "verdict": "pass"},
             {"rule": "model size MB", "value": 0.2, "threshold": 25.0, "passed": True,
              "note": "", "verdict": "pass"}, *(extra or [])]
    if failing:
        rules.insert(1, {"rule": failing, "value": 0.71, "threshold": 0.8, "passed": False,
                         "note": "", "verdict": "FAIL"})
    return {"model": name, "passed": failing is None, "champion": None, "rules": rules}


def binary(name: str, seed: int, signal: float, failing: str | None = None) -> dict[str, Any]:
    """Outputs of a binary model whose scores separate the classes by `signal`."""
    rng = np.random.default_rng(seed)
    y = rng.random(600) < 0.27
    score = 1 / (1 + np.exp(-(signal * y + rng.normal(0, 1, y.size) - 1)))
    fpr, tpr, thr = roc_curve(y, score)
    precision, recall, pthr = precision_recall_curve(y, score)
    predicted = score >= 0.5
    label = np.where(y, "Yes", "No")
    metrics = {"task": "binary", "rows": int(y.size), "confidence": 0.95, "threshold": 0.5,
               **{m: _metric(v, 0.02) for m, v in (
                   ("roc_auc", 0.70 + signal / 10), ("pr_auc", 0.5 + signal / 10),
                   ("f1", 0.55), ("precision", 0.6), ("recall", 0.5 + signal / 20),
                   ("accuracy", 0.8), ("log_loss", 0.45 - signal / 50))},
               "baseline": {"metric": "log_loss", "predicts": "the training class shares",
                            "value": 0.58, "difference": _metric(-0.15, 0.02)},
               "slices": {
                   "Contract": {"kind": "segment", "groups": {
                       "Monthly": {"rows": 400, "positive_rate": 0.4,
                                   "roc_auc": _metric(0.7 + signal / 20, 0.03),
                                   "true_positive_rate": _metric(0.6, 0.05)},
                       "Yearly": {"rows": 200, "positive_rate": 0.1, "roc_auc": _metric(0.75, 0.08),
                                  "true_positive_rate": _metric(0.0, 0.0)}}},
                   "gender": {"kind": "sensitive", "groups": {
                       "Female": {"rows": 290, "positive_rate": 0.28,
                                  "true_positive_rate": _metric(0.5 + signal / 20, 0.06),
                                  "selection_rate": _metric(0.22, 0.03)},
                       "Male": {"rows": 310, "positive_rate": 0.26,
                                "true_positive_rate": _metric(0.58, 0.06),
                                "selection_rate": _metric(0.23, 0.03)}},
                       "disparity": {"true_positive_rate": {
                           "groups": ["Female", "Male"],
                           "difference": _metric(0.08 - signal / 20, 0.07), "ratio": None}}}}}
    disparity = {"rule": "disparity true_positive_rate difference: gender",
                 "value": round(0.08 - signal / 20, 6), "threshold": 0.15, "passed": True,
                 "note": "interval between Female, Male", "verdict": "WARN", "level": "warn"}
    yearly = {"rule": "slice floor roc_auc: Contract=Yearly", "value": 0.75, "threshold": 0.65,
              "passed": True, "note": "interval [0.67, 0.83]; 200 rows", "verdict": "pass"}
    return {"metrics": metrics, "gate": _gate(name, failing, [disparity, yearly]), "plots": {
        "roc": [{"fpr": float(a), "tpr": float(b), "threshold": float(min(c, 1.0))}
                for a, b, c in zip(fpr, tpr, thr)],
        "prc": [{"precision": float(p), "recall": float(r), "threshold": float(t)}
                for p, r, t in zip(precision, recall, pthr)],
        "confusion": [{"actual": a, "predicted": "Yes" if p else "No"}
                      for a, p in zip(label, predicted)]},
        "ingest": {"model": name, "source": f"data/source/{name}.csv", "rows": 3000,
                   "valid_rows": 3000, "invalid_rows": 0}}


def multiclass(name: str, seed: int, signal: float) -> dict[str, Any]:
    """Outputs of a three-class model; ROC one-vs-rest micro-averaged, as evaluate writes it."""
    rng = np.random.default_rng(seed)
    classes = CLASSES["multiclass"]
    y = rng.integers(0, 3, 90)
    logits = rng.normal(0, 1, (y.size, 3)) + signal * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    fpr, tpr, thr = roc_curve(label_binarize(y, classes=[0, 1, 2]).ravel(), proba.ravel())
    predicted = proba.argmax(axis=1)
    matrix = confusion_matrix(y, predicted, labels=[0, 1, 2])
    per_class = {c: {"rows": int(matrix[i].sum()),
                     "recall": round(float(matrix[i, i] / max(matrix[i].sum(), 1)), 6),
                     "precision": round(float(matrix[i, i] / max(matrix[:, i].sum(), 1)), 6)}
                 for i, c in enumerate(classes)}
    metrics = {"task": "multiclass", "rows": int(y.size), "confidence": 0.9,
               **{m: _metric(v, 0.05) for m, v in (
                   ("macro_f1", 0.6 + signal / 10), ("balanced_accuracy", 0.6 + signal / 10),
                   ("accuracy", 0.62 + signal / 10), ("log_loss", 0.9 - signal / 10))},
               "per_class": per_class, "slices": {}}
    return {"metrics": metrics, "gate": _gate(name, None), "plots": {
        "roc": [{"fpr": float(a), "tpr": float(b), "threshold": float(min(c, 1.0))}
                for a, b, c in zip(fpr, tpr, thr)],
        "confusion": [{"actual": classes[a], "predicted": classes[p]}
                      for a, p in zip(y, predicted)]},
        "ingest": {"model": name, "source": f"data/source/{name}.csv", "rows": 450,
                   "valid_rows": 448, "invalid_rows": 2}}


def regression(name: str, seed: int, slope: float) -> dict[str, Any]:
    """Outputs of a regression model predicting `slope` x actual + the rest of the mean."""
    rng = np.random.default_rng(seed)
    actual = np.sort(rng.uniform(25, 346, 89).round())
    predicted = slope * actual + (1 - slope) * actual.mean() + rng.normal(0, 20, actual.size)
    residual = actual - predicted
    metrics = {"task": "regression", "rows": int(actual.size), "confidence": 0.95,
               "rmse": _metric(float(np.sqrt(np.mean(residual ** 2))), 7.0),
               "mae": _metric(float(np.mean(np.abs(residual))), 6.0),
               "r2": _metric(0.45, 0.15),
               "baseline": {"metric": "rmse", "predicts": "the training mean", "value": 73.2,
                            "difference": _metric(-19.4, 7.5)},
               "slices": {}}
    return {"metrics": metrics, "gate": _gate(name, None), "plots": {
        "predicted": [{"actual": float(a), "predicted": round(float(p), 6)}
                      for a, p in zip(actual, predicted)],
        "residuals": [{"predicted": round(float(p), 6), "residual": round(float(r), 6)}
                      for p, r in zip(predicted, residual)]},
        "ingest": {"model": name, "source": f"data/source/{name}.csv", "rows": 442,
                   "valid_rows": 442, "invalid_rows": 0}}


def write_model(repo: Path, name: str, outputs: dict[str, Any] | None,
                decl: dict | None = None) -> None:
    """Write a model's declaration (when given) and its pipeline outputs (when given)."""
    folder = repo / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    if decl is not None:
        (folder / "model.yaml").write_text(yaml.safe_dump(decl, sort_keys=False))
    if outputs is None:
        return
    (folder / "metrics.json").write_text(json.dumps(outputs["metrics"], indent=2))
    (folder / "gate.json").write_text(json.dumps(outputs["gate"], indent=2))
    (folder / "plots").mkdir(exist_ok=True)
    for kind, rows in outputs["plots"].items():
        (folder / "plots" / f"{kind}.json").write_text(json.dumps({kind: rows}))
    (repo / "reports" / name).mkdir(parents=True, exist_ok=True)
    (repo / "reports" / name / "ingest.json").write_text(json.dumps(outputs["ingest"]))


def write_params(repo: Path, names: list[str]) -> None:
    index = {n: {"source": f"data/source/{n}.csv"} for n in names}
    (repo / "params.yaml").write_text(yaml.safe_dump({"models": index}))


def project(root: Path) -> Path:
    """main: churn (binary), wine (multiclass), diabetes (regression), trained and committed;
    checked out on branch `change`, which has not changed anything yet."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write_params(repo, ["churn", "diabetes", "wine"])
    write_model(repo, "churn", binary("churn", 1, 1.0), declaration("churn", "binary"))
    write_model(repo, "wine", multiclass("wine", 2, 1.5), declaration("wine", "multiclass"))
    write_model(repo, "diabetes", regression("diabetes", 3, 0.5),
                declaration("diabetes", "regression"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "three trained models")
    git(repo, "checkout", "-q", "-b", "change")
    return repo
