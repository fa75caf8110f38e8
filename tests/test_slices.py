"""Gates that see slices: per-slice floors and disparities between the slices of a sensitive
attribute, judged on bootstrap intervals, travelling into gate.json, the model card and the
registry's refusal."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_fixtures import PEOPLE, make_people

from pipelines import declaration
from pipelines.errors import CommandError
from pipelines.registry.register import check_gate, model_card
from pipelines.stages import evaluate, export_onnx, gate, ingest, slices, train
from pipelines.stages.serialize import dumps_skops


def gated(tmp_path, *, biased: bool):
    """Train, evaluate and gate the loans model; with `biased`, the training labels of group b
    have most of their defaults flipped to "no", so the model learns to miss them."""
    decl = declaration.parse(PEOPLE, "loans.yaml")
    rows = ingest.validate(make_people().astype(str), decl).valid
    train_rows, test_rows = rows.iloc[:2000].copy(), rows.iloc[2000:].reset_index(drop=True)
    if biased:
        rng = np.random.default_rng(0)
        flip = (train_rows["group"] == "b") & (train_rows["default"] == "yes") & \
            (rng.random(len(train_rows)) < 0.6)
        train_rows.loc[flip, "default"] = "no"
    model = train.fit(decl, train_rows)
    sig = train.signature(decl, model)
    (tmp_path / "model.skops").write_bytes(dumps_skops(model))
    sig.write(tmp_path / "signature.json")
    (tmp_path / "model.onnx").write_bytes(export_onnx.convert(model, sig))
    metrics, _ = evaluate.evaluate(model, sig, test_rows, train_rows, decl.evaluate, decl.slices)
    verdict, _ = gate.run(tmp_path, sig, metrics, test_rows, decl.gates, None, decl.slices)
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "gate.json").write_text(json.dumps(verdict))
    return metrics, {r["rule"]: r for r in verdict["rules"]}, verdict


def test_a_model_biased_against_one_group_fails_its_disparity_gate_and_is_refused(tmp_path):
    metrics, rules, verdict = gated(tmp_path, biased=True)
    tpr = rules["disparity true_positive_rate difference: group"]
    assert tpr["verdict"] == "FAIL" and tpr["value"] > 0.15
    assert "between a, b" in tpr["note"]
    groups = metrics["slices"]["group"]["groups"]
    assert groups["b"]["true_positive_rate"]["ci_high"] < groups["a"]["true_positive_rate"]["ci_low"]
    assert not verdict["passed"]
    with pytest.raises(CommandError, match="refused: the gate failed: .*disparity "
                                           "true_positive_rate difference: group"):
        check_gate(tmp_path, tmp_path, None, "loans")
    card = model_card("loans", "", metrics, verdict, {})
    assert "disparity true_positive_rate difference: group" in card and "FAIL" in card


def test_an_unbiased_model_passes_and_a_small_slice_is_reported_not_judged(tmp_path):
    metrics, rules, verdict = gated(tmp_path, biased=False)
    assert rules["disparity true_positive_rate difference: group"]["verdict"] in ("pass", "WARN")
    assert rules["disparity selection_rate ratio: group"]["verdict"] in ("pass", "WARN")
    assert verdict["passed"], [r for r in verdict["rules"] if r["verdict"] == "FAIL"]
    kiosk = rules["slice floor roc_auc: site=kiosk"]
    assert kiosk["verdict"] == "report" and kiosk["value"] is None
    assert "rows < slices.min_rows 50: reported, not judged" in kiosk["note"]
    assert rules["slice floor roc_auc: site=main"]["verdict"] == "pass"
    # The small site is measured and shown, only not judged.
    assert metrics["slices"]["site"]["groups"]["kiosk"]["rows"] < 50


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_vectorized_replicates_equal_the_metric_functions(task):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2 if task == "binary" else 3, 400)
    out = {"binary": rng.random(400), "multiclass": rng.integers(0, 3, 400),
           "regression": rng.normal(size=400)}[task]
    if task == "regression":
        y = y + rng.normal(size=400)
    idx = rng.integers(0, 400, size=(4, 400))
    fast = slices.replicate_functions(task, 0.5)
    for name, fn in slices.metric_functions(task, 0.5).items():
        expected = [fn(y[i], out[i]) for i in idx]
        np.testing.assert_allclose(fast[name](y[idx], out[idx]), expected, err_msg=name)


@pytest.mark.parametrize("entry, threshold, higher, expected", [
    ({"value": 0.70, "ci_low": 0.66, "ci_high": 0.74}, 0.65, True, (True, "")),
    ({"value": 0.70, "ci_low": 0.60, "ci_high": 0.80}, 0.65, True, (True, "warn")),
    ({"value": 0.55, "ci_low": 0.50, "ci_high": 0.60}, 0.65, True, (False, "")),
    ({"value": 0.10, "ci_low": 0.02, "ci_high": 0.12}, 0.15, False, (True, "")),
    ({"value": 0.10, "ci_low": 0.02, "ci_high": 0.20}, 0.15, False, (True, "warn")),
    ({"value": 0.30, "ci_low": 0.20, "ci_high": 0.40}, 0.15, False, (False, "")),
])
def test_noise_does_not_decide_the_whole_interval_must_lie_past_the_threshold(entry, threshold,
                                                                             higher, expected):
    assert gate.judge(entry, threshold, higher) == expected
