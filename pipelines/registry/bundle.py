"""The model bundle: MLflow's sklearn format plus the files the service and the pin need.

One directory, one digest (contracts.digest): `mlflow models serve` can serve it, and our
service verifies every file in it before loading any.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd

from contracts.modelfile import TRUSTED_TYPES, load_skops
from pipelines.stages.features import features

# Files of a trained model's folder that travel with it (model.onnx when exported).
COMPANIONS = ("signature.json", "reference.json", "metrics.json", "gate.json", "model.onnx")


def build(models_dir: Path, example: pd.DataFrame, dst: Path, card: str) -> Path:
    """Write the bundle for the model in `models_dir` into `dst` (which must not exist)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    model = load_skops(models_dir / "model.skops")
    x = features(example)
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold NaN; the service validates that.
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(x, model.predict_proba(x))
    mlflow.sklearn.save_model(
        model,
        str(dst),
        serialization_format="skops",
        skops_trusted_types=list(TRUSTED_TYPES),
        signature=signature,
        input_example=x.head(3),
        pyfunc_predict_fn="predict_proba",
    )
    for name in COMPANIONS:
        if (models_dir / name).is_file():
            shutil.copy2(models_dir / name, dst / name)
    (dst / "MODEL_CARD.md").write_text(card)
    return dst
