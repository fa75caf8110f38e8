"""Stage `train`: fit the model, save it with skops, write its signature and reference."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from contracts.files import atomic_write_bytes, atomic_write_text
from contracts.signature import Signature
from pipelines import schema
from pipelines.params import load_params
from pipelines.stages.features import build_pipeline, features, make_estimator, target

QUANTILES = np.linspace(0, 1, 101)


def train(frame: pd.DataFrame, params: dict[str, Any]):
    """Fit the pipeline on the training rows with the estimator params.yaml chooses."""
    name = params["estimator"]
    hyper = (params.get("hyperparameters") or {}).get(name, {})
    pipeline = build_pipeline(make_estimator(name, hyper, int(params["seed"])))
    return pipeline.fit(features(frame), target(frame))


def signature(model) -> Signature:
    """The declared feature rules, and the classes as the model orders them."""
    return Signature(
        model="churn",
        target=schema.TARGET.name,
        classes=[str(c) for c in model.classes_],
        positive_class=schema.POSITIVE_CLASS,
        features=[c.as_feature() for c in schema.FEATURES],
    )


def reference(frame: pd.DataFrame, model, sample_size: int, seed: int) -> dict[str, Any]:
    """What the training data looked like, for drift detection in the service."""
    x = features(frame)
    rng = np.random.default_rng(seed)
    take = rng.choice(len(x), size=min(sample_size, len(x)), replace=False)
    take.sort()
    numeric = {}
    for name in schema.NUMERIC:
        col = x[name].to_numpy(dtype=float)
        numeric[name] = {
            "sample": [round(float(v), 6) for v in col[take]],
            "quantiles": [round(float(v), 6) for v in np.quantile(col, QUANTILES)],
            "mean": float(col.mean()),
            "std": float(col.std()),
        }
    categorical = {}
    for column in schema.FEATURES:
        if column.type != "category":
            continue
        shares = x[column.name].value_counts(normalize=True)
        categorical[column.name] = {
            "frequencies": {c: round(float(shares.get(c, 0.0)), 6) for c in column.categories}
        }
    positive = list(model.classes_).index(schema.POSITIVE_CLASS)
    proba = model.predict_proba(x)[:, positive]
    return {
        "rows": int(len(x)),
        "numeric": numeric,
        "categorical": categorical,
        "prediction": {
            "positive_rate": round(float((proba >= 0.5).mean()), 6),
            "probability_sample": [round(float(v), 6) for v in proba[take]],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params)["train"]
    frame = pd.read_parquet(args.train)
    model = train(frame, params)
    ref = reference(frame, model, int(params["reference_sample_size"]), int(params["seed"]))
    atomic_write_bytes(args.model, sio.dumps(model))
    signature(model).write(args.signature)
    atomic_write_text(args.reference, json.dumps(ref) + "\n")
    print(f"train: {params['estimator']} on {len(frame)} rows -> {args.model} "
          f"({args.model.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
