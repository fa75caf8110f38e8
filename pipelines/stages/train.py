"""Stage `train`: fit the declared model, save it with skops, write its signature and reference."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.files import atomic_write_bytes, atomic_write_text
from contracts.signature import Signature
from pipelines import declaration, estimators
from pipelines.declaration import Declaration
from pipelines.stages.features import build_pipeline, features, target
from pipelines.stages.serialize import dumps_skops

QUANTILES = np.linspace(0, 1, 101)


def fit(decl: Declaration, frame: pd.DataFrame):
    """Fit the pipeline on the training rows with the estimator the declaration names."""
    sig = decl.signature()
    estimator = estimators.make(decl.task, decl.train.estimator, decl.hyperparameters,
                                decl.train.seed)
    return build_pipeline(sig, estimator).fit(features(frame, sig), target(frame, sig))


def signature(decl: Declaration, model) -> Signature:
    """The declared feature rules, and the classes in the order the model outputs them."""
    classes = [str(c) for c in model.classes_] if decl.task != "regression" else None
    return decl.signature(classes)


def reference(frame: pd.DataFrame, model, sig: Signature, sample_size: int,
              seed: int) -> dict[str, Any]:
    """What the training data (and the model's answers on it) looked like, for drift detection."""
    x = features(frame, sig)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(x), size=min(sample_size, len(x)), replace=False))
    numeric = {}
    categorical = {}
    for f in sig.features:
        if f.type == "category":
            shares = x[f.name].value_counts(normalize=True)
            categorical[f.name] = {
                "frequencies": {c: round(float(shares.get(c, 0.0)), 6) for c in f.categories}}
            continue
        col = x[f.name].to_numpy(dtype=float)
        present = col[np.isfinite(col)]
        numeric[f.name] = {
            "sample": [round(float(v), 6) for v in col[take] if np.isfinite(v)],
            "quantiles": [round(float(v), 6) for v in np.quantile(present, QUANTILES)],
            "mean": float(present.mean()),
            "std": float(present.std()),
            "missing_rate": round(float(1 - len(present) / len(col)), 6),
        }
    return {"rows": int(len(x)), "numeric": numeric, "categorical": categorical,
            "prediction": _prediction_reference(model, x, sig, take)}


def _prediction_reference(model, x: pd.DataFrame, sig: Signature, take) -> dict[str, Any]:
    if sig.task == "regression":
        values = np.asarray(model.predict(x), dtype=float)
        return {"mean": float(values.mean()), "std": float(values.std()),
                "value_sample": [round(float(v), 6) for v in values[take]]}
    proba = model.predict_proba(x)
    classes = [str(c) for c in model.classes_]
    predicted = np.asarray(classes)[np.argmax(proba, axis=1)]
    out: dict[str, Any] = {"class_shares": {
        c: round(float((predicted == c).mean()), 6) for c in classes}}
    if sig.task == "binary":
        positive = proba[:, classes.index(sig.positive_class)]
        out["positive_rate"] = round(float((positive >= 0.5).mean()), 6)
        out["probability_sample"] = [round(float(v), 6) for v in positive[take]]
    return out


def run(decl: Declaration, train_path: Path, model_path: Path, signature_path: Path,
        reference_path: Path) -> Any:
    """Fit on `train_path` and write the three outputs (nothing is written if fitting fails)."""
    frame = pd.read_parquet(train_path)
    model = fit(decl, frame)
    sig = signature(decl, model)
    ref = reference(frame, model, sig, decl.train.reference_sample_size, decl.train.seed)
    model_bytes = dumps_skops(model)
    atomic_write_bytes(model_path, model_bytes)
    sig.write(signature_path)
    atomic_write_text(reference_path, json.dumps(ref) + "\n")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declaration", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        decl = declaration.load(args.declaration)
        run(decl, args.train, args.model, args.signature, args.reference)
    except ValueError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    print(f"train: {decl.name}: {decl.train.estimator} on {args.train} -> {args.model} "
          f"({args.model.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
