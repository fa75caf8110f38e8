"""Stage `export`: compile the trained pipeline to ONNX for the service's hot path.

The scikit-learn model stays the reference: the stage fails, writing nothing, unless the
ONNX model gives the same labels and probabilities within 1e-5 on the whole test split (for
regression: the same values within 1e-5, relative to their size).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.files import atomic_write_bytes
from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines.stages.features import features

TOLERANCE = 1e-5
# Pinned so the compiled file does not change with skl2onnx's defaults (onnxruntime >= 1.18
# runs both).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclass
class Parity:
    """How the ONNX model compares with the scikit-learn model on some rows."""

    rows: int
    label_mismatches: int
    # Classifiers: the largest probability difference; regression: the largest difference
    # relative to the value's size (|a - b| / (1 + |b|)).
    max_gap: float
    classifier: bool = True

    @property
    def ok(self) -> bool:
        return self.label_mismatches == 0 and self.max_gap <= TOLERANCE

    def describe(self) -> str:
        if not self.classifier:
            return f"max relative value gap {self.max_gap:.2e} over {self.rows} rows"
        return (f"{self.label_mismatches} of {self.rows} labels differ, max probability gap "
                f"{self.max_gap:.2e}")


def convert(model, signature: Signature) -> bytes:
    """The pipeline as serialized ONNX: one input per feature, numbers as doubles."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    inputs = [(f.name, StringTensorType([None, 1]) if f.type == "category"
               else DoubleTensorType([None, 1])) for f in signature.features]
    # zipmap off: probabilities come back as one [rows, classes] tensor, not a list of dicts.
    options = {id(model): {"zipmap": False}} if signature.is_classifier else None
    onx = to_onnx(model, initial_types=inputs, target_opset=TARGET_OPSET, options=options)
    onx = _trees_compare_like_sklearn(_impute_in_double(onx), model)
    return _inputs_named_as_features(onx, signature).SerializeToString()


def _inputs_named_as_features(onx, signature: Signature):
    """skl2onnx turns a name that is not an identifier (`od280/od315`) into another one; ONNX
    allows any name, so the inputs get the features' names back (callers feed by name)."""
    renamed = {i.name: f.name for i, f in zip(onx.graph.input, signature.features)
               if i.name != f.name}
    if not renamed:
        return onx
    for tensor in onx.graph.input:
        tensor.name = renamed.get(tensor.name, tensor.name)
    for node in onx.graph.node:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = renamed[name]
    return onx


def _impute_in_double(onx):
    """Replace each ai.onnx.ml Imputer by IsNaN + Where on doubles.

    onnxruntime implements Imputer for float32 only, and casting the numbers to float32
    would break parity; filling NaN with the fitted medians needs nothing more than this."""
    import onnx
    from onnx import numpy_helper

    nodes = list(onx.graph.node)
    for node in nodes:
        if node.op_type != "Imputer":
            continue
        attrs = {a.name: a for a in node.attribute}
        values = np.asarray(attrs["imputed_value_floats"].floats, dtype=np.float64)
        fill = numpy_helper.from_array(values.reshape(1, -1), name=f"{node.name}_fill")
        onx.graph.initializer.append(fill)
        missing = f"{node.name}_isnan"
        at = list(onx.graph.node).index(node)
        onx.graph.node.remove(node)
        onx.graph.node.insert(at, onnx.helper.make_node(
            "Where", [missing, fill.name, node.input[0]], list(node.output), name=node.name))
        onx.graph.node.insert(at, onnx.helper.make_node(
            "IsNaN", [node.input[0]], [missing], name=f"{node.name}_missing"))
    return onx


def _trees_compare_like_sklearn(onx, model):
    """Make ONNX tree ensembles split rows exactly where scikit-learn's trees do.

    scikit-learn casts a tree's input to float32 and compares it with a float64 threshold;
    skl2onnx feeds the trees doubles and rounds thresholds to the nearest float32, so a row
    lying on a split can land on the other side. Casting the input to float32 and rounding
    each threshold down to a float32 gives the same comparison: x32 <= t64 iff
    x32 <= floor32(t64).
    """
    import onnx

    ensembles = [n for n in onx.graph.node if n.op_type.startswith("TreeEnsemble")]
    if not ensembles:
        return onx
    trees = list(np.asarray(model.steps[-1][1].estimators_).ravel())
    for node in ensembles:
        cast = onnx.helper.make_node("Cast", [node.input[0]], [f"{node.input[0]}_float32"],
                                     to=onnx.TensorProto.FLOAT, name=f"{node.name}_input")
        node.input[0] = cast.output[0]
        onx.graph.node.insert(list(onx.graph.node).index(node), cast)
        attrs = {a.name: a for a in node.attribute}
        values = list(attrs["nodes_values"].floats)
        rows = zip(attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints,
                   attrs["nodes_modes"].strings)
        for k, (tree, node_id, mode) in enumerate(rows):
            if mode == b"BRANCH_LEQ":
                exact = float(trees[tree].tree_.threshold[node_id])
                rounded = np.float32(exact)
                if float(rounded) > exact:
                    rounded = np.nextafter(rounded, np.float32(-np.inf))
                values[k] = float(rounded)
        del attrs["nodes_values"].floats[:]
        attrs["nodes_values"].floats.extend(values)
    # The float32 tree output may be declared double downstream: cast, not just rename it.
    outputs = {o for n in ensembles for o in n.output}
    doubles = {o.name for o in onx.graph.output
               if o.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE}
    for node in onx.graph.node:
        if node.op_type == "Identity" and node.input[0] in outputs and node.output[0] in doubles:
            node.op_type = "Cast"
            node.attribute.append(onnx.helper.make_attribute("to", onnx.TensorProto.DOUBLE))
    # A regressor's ensemble may itself be the graph's double output: give it a float32
    # output and cast that.
    for node in ensembles:
        for k, out in enumerate(node.output):
            if out in doubles:
                node.output[k] = f"{out}_float32"
                cast = onnx.helper.make_node("Cast", [node.output[k]], [out],
                                             to=onnx.TensorProto.DOUBLE, name=f"{node.name}_output")
                onx.graph.node.insert(list(onx.graph.node).index(node) + 1, cast)
    return onx


def onnx_predict(onnx_bytes: bytes, frame: pd.DataFrame, signature: Signature):
    """(labels, class probabilities) from onnxruntime for the feature rows in `frame`; for
    regression (None, values)."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {
        f.name: (frame[f.name].astype(str).to_numpy(dtype=object) if f.type == "category"
                 else frame[f.name].to_numpy(dtype=np.float64)).reshape(-1, 1)
        for f in signature.features
    }
    outputs = session.run(None, feeds)
    if not signature.is_classifier:
        return None, np.asarray(outputs[0], dtype=float).reshape(-1)
    labels, proba = outputs
    return np.asarray(labels).astype(str), np.asarray(proba, dtype=float)


def parity(model, onnx_bytes: bytes, frame: pd.DataFrame, signature: Signature) -> Parity:
    """Compare ONNX with scikit-learn on every row of `frame`."""
    x = features(frame, signature)
    labels, got = onnx_predict(onnx_bytes, x, signature)
    if not signature.is_classifier:
        expected = np.asarray(model.predict(x), dtype=float).reshape(-1)
        gap = np.abs(got - expected) / (1.0 + np.abs(expected))
        return Parity(rows=len(x), label_mismatches=0, max_gap=float(np.max(gap)),
                      classifier=False)
    expected_labels = np.asarray(model.predict(x)).astype(str)
    expected = model.predict_proba(x)
    return Parity(rows=len(x), label_mismatches=int((labels != expected_labels).sum()),
                  max_gap=float(np.max(np.abs(got - expected))))


def export(model_path: Path, signature_path: Path, test_path: Path, out: Path) -> Parity:
    """Convert, check parity on the test split, and write `out` only if it holds."""
    model = load_skops(model_path)
    signature = Signature.read(signature_path)
    try:
        onnx_bytes = convert(model, signature)
    except Exception as exc:  # skl2onnx raises many kinds, some with megabytes of detail
        first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise ValueError(f"{model_path} cannot be compiled to ONNX by skl2onnx "
                         f"({type(exc).__name__}: {first_line}); {out} not written") from exc
    result = parity(model, onnx_bytes, pd.read_parquet(test_path), signature)
    if not result.ok:
        raise ValueError(
            f"ONNX disagrees with {model_path} on {test_path}: {result.describe()} "
            f"(allowed {TOLERANCE:g}); {out} not written")
    atomic_write_bytes(out, onnx_bytes)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        result = export(args.model, args.signature, args.test, args.out)
    except ValueError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    print(f"export: {args.out} ({args.out.stat().st_size / 1e3:.0f} kB); parity on {result.rows} "
          f"test rows: {result.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
