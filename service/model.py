"""A verified bundle turned into something that predicts: onnxruntime on the hot path,
the scikit-learn pipeline (loaded with skops and an explicit trusted-type list) as reference.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from contracts.modelfile import UntrustedModelError, load_skops
from contracts.pin import ModelRef, Pin
from contracts.signature import Signature
from service.errors import LoadError

PARITY_ROWS = 64
PARITY_TOLERANCE = 1e-5
_ONNX_DTYPES = {
    "tensor(double)": np.float64,
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": object,
}


@dataclass(eq=False)
class LoadedModel:
    """One model version in memory, ready to predict; never mutated after loading."""

    ref: ModelRef
    pin: Pin
    signature: Signature
    reference: dict[str, Any] | None
    runtime: str
    bundle_dir: Path
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _session: Any = None
    _feeds: tuple = ()  # (input name, numpy dtype) per feature, in signature order
    _estimator: Any = None

    def predict(self, columns: Sequence[Sequence[Any]]) -> tuple[list[str] | None, np.ndarray]:
        """For rows given column by column in signature order: a classifier's labels and its
        [rows, classes] probabilities (classes in signature order); a regressor's (None, values).

        An empty number (None) reaches the model as NaN, which its imputer fills."""
        if self._session is not None:
            feeds = {name: np.asarray(col, dtype=dt).reshape(-1, 1)
                     for (name, dt), col in zip(self._feeds, columns)}
            outputs = self._session.run(None, feeds)
            if len(outputs) == 1:
                return None, outputs[0].reshape(-1)
            return outputs[0].tolist(), outputs[1]
        return _sklearn_predict(self._estimator, self.signature, columns)


def load(bundle_dir: Path, ref: ModelRef, pin: Pin) -> LoadedModel:
    """Deserialize a bundle whose digest was already verified; raise LoadError if unusable."""
    signature = _read_signature(bundle_dir)
    reference = _read_reference(bundle_dir)
    try:
        estimator = load_skops(bundle_dir / "model.skops")
    except UntrustedModelError as exc:
        raise LoadError("untrusted_types", f"{ref.uri}: {exc}") from exc
    except Exception as exc:
        raise LoadError("corrupt_artifact", f"{ref.uri}: model.skops cannot be loaded: {exc}") \
            from exc
    _check_classes(estimator, signature, ref)
    model = LoadedModel(ref=ref, pin=pin, signature=signature, reference=reference,
                        runtime="scikit-learn", bundle_dir=bundle_dir, _estimator=estimator)
    onnx_path = bundle_dir / "model.onnx"
    if onnx_path.is_file():
        session, feeds = _onnx_session(onnx_path, signature, ref)
        model._session, model._feeds, model.runtime = session, feeds, "onnxruntime"
        _check_parity(model, estimator, ref)
        model._estimator = None  # the reference has done its job; keep memory small
    return model


def _check_classes(estimator: Any, signature: Signature, ref: ModelRef) -> None:
    """The signature's task and class order must be the model's, or answers would be mislabelled."""
    classes = getattr(estimator, "classes_", None)
    if not signature.is_classifier:
        if classes is not None:
            raise LoadError("corrupt_artifact", f"{ref.uri}: the signature says regression, the "
                                                "model is a classifier")
        return
    if classes is None or [str(c) for c in classes] != list(signature.classes or []):
        raise LoadError("corrupt_artifact",
                        f"{ref.uri}: the model's classes {None if classes is None else list(classes)} "
                        f"are not the signature's {signature.classes}")


def _read_signature(bundle_dir: Path) -> Signature:
    path = bundle_dir / "signature.json"
    try:
        return Signature.read(path)
    except FileNotFoundError as exc:
        raise LoadError("corrupt_artifact", f"the bundle has no signature.json ({path})") from exc
    except Exception as exc:
        raise LoadError("corrupt_artifact", f"{path} is not a valid signature: {exc}") from exc


def _read_reference(bundle_dir: Path) -> dict[str, Any] | None:
    path = bundle_dir / "reference.json"
    if not path.is_file():
        return None  # drift is then not measured; /v1/model says so
    try:
        reference = json.loads(path.read_text())
    except ValueError as exc:
        raise LoadError("corrupt_artifact", f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(reference, dict):
        raise LoadError("corrupt_artifact", f"{path} is not a JSON object")
    return reference


def _onnx_session(path: Path, signature: Signature, ref: ModelRef):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One row at a time is the common case: thread pools cost more than they give there.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise LoadError("corrupt_artifact", f"{ref.uri}: model.onnx cannot be loaded: {exc}") \
            from exc
    inputs = {i.name: i.type for i in session.get_inputs()}
    if set(inputs) != set(signature.feature_names):
        raise LoadError("corrupt_artifact",
                        f"{ref.uri}: model.onnx inputs {sorted(inputs)} are not the signature's "
                        f"features {sorted(signature.feature_names)}")
    unknown = {n: t for n, t in inputs.items() if t not in _ONNX_DTYPES}
    if unknown:
        raise LoadError("corrupt_artifact", f"{ref.uri}: model.onnx input types {unknown}")
    outputs = [o.name for o in session.get_outputs()]
    expected = 2 if signature.is_classifier else 1
    if len(outputs) != expected:
        wanted = "a label and probabilities" if signature.is_classifier else "one value"
        raise LoadError("corrupt_artifact",
                        f"{ref.uri}: model.onnx must output {wanted}, has {outputs}")
    nullable = {f.name for f in signature.features if f.nullable and f.type != "category"}
    if bad := sorted(n for n in nullable if _ONNX_DTYPES[inputs[n]] not in (np.float64, np.float32)):
        raise LoadError("corrupt_artifact",
                        f"{ref.uri}: model.onnx takes integers for {bad}, which may be empty")
    return session, tuple((n, _ONNX_DTYPES[inputs[n]]) for n in signature.feature_names)


def probe_columns(signature: Signature, reference: dict[str, Any] | None,
                  rows: int = PARITY_ROWS) -> list[list[Any]]:
    """Deterministic rows that cover every category, the training range of each number, and
    empty values of the features that may be empty."""
    columns: list[list[Any]] = []
    numeric = (reference or {}).get("numeric", {})
    for k, f in enumerate(signature.features):
        if f.type == "category":
            cats = f.categories or []
            columns.append([cats[(i + k) % len(cats)] for i in range(rows)])
            continue
        sample = numeric.get(f.name, {}).get("sample") or []
        if sample:
            values = [sample[(i * 37 + k) % len(sample)] for i in range(rows)]
        else:
            lo = f.min if f.min is not None else 0.0
            hi = f.max if f.max is not None else lo + 100.0
            values = list(np.linspace(lo, hi, rows))
        if f.type == "integer":
            values = [int(np.rint(v)) for v in values]
        else:
            values = [float(v) for v in values]
        columns.append(values)
    for k, f in enumerate(signature.features):
        if f.nullable:
            for i in range(k % 7, rows, 7):
                columns[k][i] = "" if f.type == "category" else None
    return columns


def _check_parity(model: LoadedModel, estimator: Any, ref: ModelRef) -> None:
    columns = probe_columns(model.signature, model.reference)
    try:
        labels, scores = model.predict(columns)
    except Exception as exc:
        raise LoadError("corrupt_artifact", f"{ref.uri}: model.onnx fails to predict: {exc}") \
            from exc
    expected_labels, expected = _sklearn_predict(estimator, model.signature, columns)
    got = np.asarray(scores, dtype=float)
    if model.signature.is_classifier:
        gap = float(np.max(np.abs(got - expected)))
        what = "probability"
    else:  # relative to the value's size, as the export stage measures it
        gap = float(np.max(np.abs(got - expected) / (1.0 + np.abs(expected))))
        what = "relative value"
    if labels != expected_labels or not gap <= PARITY_TOLERANCE:
        raise LoadError("onnx_parity",
                        f"{ref.uri}: model.onnx disagrees with model.skops on probe rows "
                        f"(max {what} gap {gap:.2e}, labels equal: {labels == expected_labels})")


def _sklearn_predict(estimator: Any, signature: Signature, columns):
    import pandas as pd

    def dtype(f):
        if f.type == "category":
            return object
        return "int64" if f.type == "integer" and not f.nullable else "float64"

    frame = pd.DataFrame({f.name: pd.Series(col, dtype=dtype(f))
                          for f, col in zip(signature.features, columns)})
    if not signature.is_classifier:
        return None, np.asarray(estimator.predict(frame), dtype=float).reshape(-1)
    proba = np.asarray(estimator.predict_proba(frame), dtype=float)
    labels = [str(c) for c in estimator.classes_[np.argmax(proba, axis=1)]]
    return labels, proba
