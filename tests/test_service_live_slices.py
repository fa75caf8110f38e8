"""The service shows each declared slice's live metric beside its floor: predictions and labels
sent to the app in process, figures read back from /metrics."""
from __future__ import annotations

import pytest
from service_fixtures import in_process, sqlite_log, write_pin

pytest_plugins = ("service_fixtures",)


def test_a_slice_whose_labels_go_wrong_falls_below_its_floor_on_metrics(tmp_path,
                                                                        served_registry):
    reg = served_registry
    sig = reg.tasks["binary"].signature
    # The churn declaration's rules, carried by the bundle's signature.
    assert sig.slices.floors == {"roc_auc": 0.65} and sig.slices.min_rows == 50
    pin = write_pin(tmp_path / "model.yaml", reg, 1, environment="production")
    with in_process(tmp_path, reg, pin, database_url=sqlite_log(tmp_path / "log.db")) as svc:
        svc.wait_ready(1)
        assert svc.metric("gitops_ml_slice_floor", metric="roc_auc", column="gender") == 0.65
        assert svc.metric("gitops_ml_slice_floor", metric="roc_auc", column="Contract") == 0.65
        assert svc.metric("gitops_ml_slice_min_rows") == 50
        assert svc.metric("gitops_ml_live_slice_rows", column="gender", value="Female") == 0
        assert svc.metric("gitops_ml_live_slice_metric", column="gender", value="Female") is None

        records = reg.records(240)
        answered = svc.post("/v1/predict", json=records).json()["predictions"]
        # Women get the opposite of what the model said, men what it said.
        truth = [p["prediction"] if r["gender"] == "Male" else
                 ("No" if p["prediction"] == "Yes" else "Yes")
                 for r, p in zip(records, answered)]
        labels = [{"prediction_id": p["prediction_id"], "label": t}
                  for p, t in zip(answered, truth)]
        assert svc.post("/v1/feedback", json=labels).status_code == 200

        women = sum(r["gender"] == "Female" for r in records)
        seniors = [i for i, r in enumerate(records) if r["SeniorCitizen"] == 1]
        assert women >= 50 and len(records) - women >= 50
        rows = lambda column, value: svc.metric("gitops_ml_live_slice_rows", column=column,
                                                value=value)
        live = lambda metric, column, value: svc.metric(
            "gitops_ml_live_slice_metric", metric=metric, column=column, value=value)
        assert rows("gender", "Female") == women
        assert rows("gender", "Male") == len(records) - women
        # Every woman's churners were given the lower scores: a ranking as wrong as can be.
        assert live("roc_auc", "gender", "Female") == 0.0
        assert live("accuracy", "gender", "Female") == 0.0
        assert live("roc_auc", "gender", "Male") == 1.0
        assert live("accuracy", "gender", "Male") == 1.0
        # Another column slices the same labels its own way.
        assert rows("SeniorCitizen", "1") == len(seniors)
        assert live("accuracy", "SeniorCitizen", "1") == pytest.approx(
            sum(answered[i]["prediction"] == truth[i] for i in seniors) / len(seniors))
        assert sum(rows("Contract", c) for c in ("Month-to-month", "One year", "Two year")) \
            == len(records)

        # Nothing promoted any more: no rule and no figure of the model that left stays behind.
        write_pin(pin, None, None, environment="production")
        svc.poll_pin()
        assert svc.metric("gitops_ml_slice_floor", column="gender") is None
        assert svc.metric("gitops_ml_slice_min_rows") is None
        assert rows("gender", "Female") is None
        assert live("roc_auc", "gender", "Female") is None
