"""The compiled model agrees with the scikit-learn model for every task and estimator, or the
export stage fails and writes nothing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_fixtures import TREES, prepared, with_changes

from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines.stages import export_onnx, ingest, train
from pipelines.stages.features import features
from pipelines.stages.serialize import dumps_skops


def stage_on(decl, train_rows: pd.DataFrame, test_rows: pd.DataFrame, tmp_path: Path,
             model=None) -> tuple[int, Path]:
    model = model if model is not None else train.fit(decl, train_rows)
    (tmp_path / "model.skops").write_bytes(dumps_skops(model))
    train.signature(decl, model).write(tmp_path / "signature.json")
    test_rows.to_parquet(tmp_path / "test.parquet")
    out = tmp_path / "model.onnx"
    code = export_onnx.main(["--model", str(tmp_path / "model.skops"),
                             "--signature", str(tmp_path / "signature.json"),
                             "--test", str(tmp_path / "test.parquet"), "--out", str(out)])
    return code, out


@pytest.mark.parametrize("task, estimator", [
    ("binary", None), ("binary", "gradient_boosting"), ("binary", "random_forest"),
    ("multiclass", None), ("multiclass", "gradient_boosting"), ("multiclass", "random_forest"),
    ("regression", None), ("regression", "gradient_boosting"), ("regression", "random_forest"),
])
def test_every_task_and_estimator_exports_with_parity(tmp_path, task, estimator, capsys):
    decl, train_rows, test_rows = prepared(task, estimator)
    code, out = stage_on(decl, train_rows, test_rows, tmp_path)
    assert code == 0, capsys.readouterr().err
    model, sig = load_skops(tmp_path / "model.skops"), Signature.read(tmp_path / "signature.json")
    x = features(test_rows, sig)
    labels, got = export_onnx.onnx_predict(out.read_bytes(), x, sig)
    if task == "regression":
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)
    else:
        assert list(labels) == [str(v) for v in model.predict(x)]
        assert np.max(np.abs(got - model.predict_proba(x))) <= 1e-5


def test_tree_thresholds_split_telco_rows_exactly_where_sklearn_does(tmp_path, telco, churn):
    # Rows lying on a split threshold are where float32/float64 handling differs.
    rows = ingest.validate(telco, churn).valid.sample(n=1500, random_state=0)
    decl = with_changes(churn, train={"estimator": "gradient_boosting",
                                      "hyperparameters": {"gradient_boosting": TREES["gradient_boosting"]}})
    code, out = stage_on(decl, rows.iloc[:1000], rows.iloc[1000:], tmp_path)
    assert code == 0 and out.exists()


def test_export_stage_fails_cleanly_when_the_model_cannot_be_compiled(tmp_path, capsys):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from pipelines.stages.features import build_pipeline, target

    decl, train_rows, test_rows = prepared("binary")
    sig = decl.signature()
    model = build_pipeline(sig, HistGradientBoostingClassifier(max_iter=10)).fit(
        features(train_rows, sig), target(train_rows, sig))
    code, out = stage_on(decl, train_rows, test_rows, tmp_path, model=model)
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "cannot be compiled to ONNX" in err and len(err) < 1000


def test_parity_reports_label_and_probability_gaps():
    decl, train_rows, test_rows = prepared("multiclass")
    strong = train.fit(decl, train_rows)
    weak = train.fit(with_changes(decl, train={"estimator": "logistic_regression",
                                               "hyperparameters": {"logistic_regression": {"C": 0.001}}}),
                     train_rows)
    sig = train.signature(decl, strong)
    same = export_onnx.parity(strong, export_onnx.convert(strong, sig), test_rows, sig)
    assert same.ok and same.rows == len(test_rows) and same.max_gap < 1e-9
    other = export_onnx.parity(strong, export_onnx.convert(weak, sig), test_rows, sig)
    assert not other.ok and other.max_gap > 1e-3 and other.label_mismatches > 0
