"""The compiled model agrees with the scikit-learn model, or the stage fails."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines.stages import export_onnx
from pipelines.stages.features import build_pipeline, features, target


@pytest.mark.slow
def test_exported_onnx_matches_sklearn_on_the_whole_test_split(trained_project):
    models = trained_project / "models" / "churn"
    test = pd.read_parquet(trained_project / "data" / "split" / "test.parquet")
    model = load_skops(models / "model.skops")
    signature = Signature.read(models / "signature.json")
    x = features(test)
    labels, proba = export_onnx.onnx_predict((models / "model.onnx").read_bytes(), x, signature)
    assert len(labels) == len(test) > 1000
    assert list(labels) == [str(v) for v in model.predict(x)]
    assert np.max(np.abs(proba - model.predict_proba(x))) <= 1e-5


def _stage_on(estimator, telco, tmp_path):
    from pipelines.stages import ingest
    from pipelines.stages.train import signature

    data = ingest.validate(telco).valid.sample(n=1500, random_state=0)
    train, test = data.iloc[:1000], data.iloc[1000:]
    model = build_pipeline(estimator).fit(features(train), target(train))
    (tmp_path / "model.skops").write_bytes(sio.dumps(model))
    signature(model).write(tmp_path / "signature.json")
    test.to_parquet(tmp_path / "test.parquet")
    out = tmp_path / "model.onnx"
    code = export_onnx.main(["--model", str(tmp_path / "model.skops"),
                             "--signature", str(tmp_path / "signature.json"),
                             "--test", str(tmp_path / "test.parquet"), "--out", str(out)])
    return code, out


@pytest.mark.parametrize("estimator", [
    RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0),
    GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0),
], ids=["random_forest", "gradient_boosting"])
def test_tree_ensembles_split_rows_exactly_where_sklearn_does(tmp_path, telco, estimator,
                                                               capsys):
    # Rows lying on a split threshold are where float32/float64 handling differs.
    code, out = _stage_on(estimator, telco, tmp_path)
    assert code == 0, capsys.readouterr().err
    assert out.exists() and "labels equal" in capsys.readouterr().out


def test_export_stage_fails_cleanly_when_the_model_cannot_be_compiled(tmp_path, telco, capsys):
    from sklearn.ensemble import HistGradientBoostingClassifier

    code, out = _stage_on(HistGradientBoostingClassifier(max_iter=10), telco, tmp_path)
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "cannot be compiled to ONNX" in err and len(err) < 1000


def test_parity_reports_label_and_probability_gaps(telco):
    from sklearn.linear_model import LogisticRegression

    from pipelines.stages import ingest
    from pipelines.stages.train import signature

    data = ingest.validate(telco).valid.sample(n=1200, random_state=1)
    train, test = data.iloc[:800], data.iloc[800:]
    strong = build_pipeline(LogisticRegression(max_iter=2000)).fit(features(train),
                                                                   target(train))
    weak = build_pipeline(LogisticRegression(C=0.001, max_iter=2000)).fit(features(train),
                                                                          target(train))
    sig = signature(strong)
    same = export_onnx.parity(strong, export_onnx.convert(strong, sig), test, sig)
    assert same.ok and same.rows == len(test) and same.max_probability_gap < 1e-9
    other = export_onnx.parity(strong, export_onnx.convert(weak, sig), test, sig)
    assert not other.ok and other.max_probability_gap > 1e-3
