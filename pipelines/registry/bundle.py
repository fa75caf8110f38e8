"""The model bundle: MLflow's sklearn format plus the files the service and the pin need.

One directory, one digest (contracts.digest): `mlflow models serve` can serve it, and our
service verifies every file in it before loading any. The same trained model at the same
commit gives the same bytes, so the same digest: MLflow's own time stamp and random id are
replaced by the training commit's time and an id derived from the model file.
"""
from __future__ import annotations

import shutil
import uuid
import warnings
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import yaml

from contracts.digest import file_sha256
from contracts.files import atomic_write_text
from contracts.modelfile import TRUSTED_TYPES, load_skops
from contracts.signature import Signature
from pipelines.stages.features import features

# Files of a trained model's folder that travel with it (model.onnx when exported).
COMPANIONS = ("signature.json", "reference.json", "metrics.json", "gate.json", "latency.json",
              "model.onnx")
MODEL_FILE = "model.skops"
# The distributions that load and run a bundle's model (MLflow adds itself). Named here rather
# than left to MLflow's inference, which loads the model in a subprocess (seconds per bundle)
# and lists whatever that process imported, the test runner included.
RUNTIME_DISTRIBUTIONS = ("scikit-learn", "skops", "numpy", "pandas", "scipy")
# Namespace of the uuid5 that names a bundle's MLflow model after its model file.
_UUID_NAMESPACE = uuid.UUID("6f1c3e1e-3d0b-4f39-9d3b-2f7c9a6a1d52")


def build(models_dir: Path, example: pd.DataFrame, dst: Path, card: str,
          created: datetime | None = None) -> Path:
    """Write the bundle for the model in `models_dir` into `dst` (which must not exist).

    `created` stands in for MLflow's creation time (default: the epoch), so a rebuild of the
    same model gives the same bytes."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    sig = Signature.read(models_dir / "signature.json")
    model = load_skops(models_dir / MODEL_FILE)
    x = features(example, sig)
    predict = model.predict if sig.task == "regression" else model.predict_proba
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold NaN; the service validates that.
        warnings.simplefilter("ignore", UserWarning)
        mlflow_signature = infer_signature(x, predict(x))
        mlflow.sklearn.save_model(
            model, str(dst), serialization_format="skops",
            skops_trusted_types=list(TRUSTED_TYPES), signature=mlflow_signature,
            input_example=x.head(3), pip_requirements=runtime_requirements(),
            pyfunc_predict_fn="predict" if sig.task == "regression" else "predict_proba")
    # The pipeline's canonical skops bytes instead of MLflow's fresh (time-stamped) dump.
    shutil.copyfile(models_dir / MODEL_FILE, dst / MODEL_FILE)
    for name in COMPANIONS:
        if (models_dir / name).is_file():
            shutil.copyfile(models_dir / name, dst / name)
    atomic_write_text(dst / "MODEL_CARD.md", card)
    _pin_mlmodel(dst, created)
    return dst


def runtime_requirements() -> list[str]:
    """The bundle's pip requirements: each runtime distribution at its installed version."""
    return [f"{name}=={version(name)}" for name in RUNTIME_DISTRIBUTIONS]


def _pin_mlmodel(dst: Path, created: datetime | None) -> None:
    """Replace the random and time-dependent fields MLflow writes into MLmodel."""
    path = dst / "MLmodel"
    meta = yaml.safe_load(path.read_text())
    when = (created or datetime.fromtimestamp(0, UTC)).astimezone(UTC)
    meta["utc_time_created"] = when.strftime("%Y-%m-%d %H:%M:%S.%f")
    meta["model_uuid"] = uuid.uuid5(_UUID_NAMESPACE, file_sha256(dst / MODEL_FILE)).hex
    meta["model_size_bytes"] = sum(p.stat().st_size for p in dst.rglob("*")
                                   if p.is_file() and p.name != "MLmodel")
    atomic_write_text(path, yaml.safe_dump(meta, sort_keys=True, default_flow_style=False))
