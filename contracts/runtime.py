"""How a model's ONNX file runs: the onnxruntime settings and the input path the service uses,
shared so the latency gate times exactly what will serve.

Rows arrive column by column in signature order (as the service decodes a request); each
column becomes one [rows, 1] tensor of the dtype the ONNX input declares.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from contracts.signature import Signature

ONNX_DTYPES = {
    "tensor(double)": np.float64,
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": object,
}


class RuntimeMismatch(ValueError):
    """The ONNX file's inputs or outputs do not fit the signature."""


def onnx_session(model: bytes | str):
    """An onnxruntime session with the service's settings: one thread, run in the caller.

    One row at a time is the common case, and thread pools cost more than they give there;
    with one thread the work also runs on the calling thread, so its CPU time is measurable."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """A session plus the dtype of each feature's tensor, checked against the signature."""

    def __init__(self, session, signature: Signature) -> None:
        inputs = {i.name: i.type for i in session.get_inputs()}
        if set(inputs) != set(signature.feature_names):
            raise RuntimeMismatch(f"model.onnx inputs {sorted(inputs)} are not the signature's "
                                  f"features {sorted(signature.feature_names)}")
        unknown = {n: t for n, t in inputs.items() if t not in ONNX_DTYPES}
        if unknown:
            raise RuntimeMismatch(f"model.onnx input types {unknown}")
        outputs = [o.name for o in session.get_outputs()]
        expected = 2 if signature.is_classifier else 1
        if len(outputs) != expected:
            kind = "a label and probabilities" if expected == 2 else "one value per row"
            raise RuntimeMismatch(f"model.onnx must output {kind}, has {outputs}")
        self.session = session
        self.names = signature.feature_names
        self.dtypes = tuple(ONNX_DTYPES[inputs[n]] for n in self.names)

    def run(self, columns: Sequence[Sequence[Any]]) -> list[np.ndarray]:
        """The model's outputs for rows given column by column in signature order."""
        feeds = {name: np.asarray(col, dtype=dt).reshape(-1, 1)
                 for name, col, dt in zip(self.names, columns, self.dtypes)}
        return self.session.run(None, feeds)
