"""Behavioural model tests: invariance, direction and minimum functionality on Telco data.

They run on the model `dvc repro` trained and on a gradient-boosted alternative, so a change
of estimator in the declaration is held to the same expectations.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pipeline_fixtures import with_changes

from contracts.modelfile import load_skops
from pipelines.stages.features import features
from pipelines.stages.train import fit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["configured", "gradient_boosting"])
def model(request, trained_project, splits, churn):
    if request.param == "configured":
        return load_skops(trained_project / "models/churn/model.skops")
    boosted = with_changes(churn, train={
        "estimator": "gradient_boosting", "seed": 0,
        "hyperparameters": {"gradient_boosting": {"n_estimators": 100, "max_depth": 3}}})
    return fit(boosted, splits[0])


def p_churn(model, x: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(x)[:, list(model.classes_).index("Yes")]


@pytest.fixture(scope="module")
def x_test(splits, churn) -> pd.DataFrame:
    return features(splits[1], churn.signature())


def test_longer_tenure_does_not_sharply_raise_churn_for_month_to_month(model, x_test):
    mtm = x_test[x_test["Contract"] == "Month-to-month"]
    longer = mtm.assign(tenure=np.minimum(mtm["tenure"] + 12, 72))
    rise = p_churn(model, longer) - p_churn(model, mtm)
    # Trees are not monotone, so allow a few small bumps but no general rise.
    sharp = (rise > 0.05).mean()
    assert sharp < 0.05, f"a year more tenure raised P(churn) by > 0.05 for {sharp:.1%}"
    assert rise.mean() < -0.02


def test_two_year_contract_lowers_churn_for_nearly_everyone(model, x_test):
    two_year = x_test.assign(Contract="Two year")
    lower = p_churn(model, two_year) <= p_churn(model, x_test) + 1e-9
    assert lower.mean() >= 0.95


def test_gender_does_not_move_the_prediction(model, x_test):
    flipped = x_test.assign(gender=np.where(x_test["gender"] == "Male", "Female", "Male"))
    before, after = p_churn(model, x_test), p_churn(model, flipped)
    moved = np.abs(after - before)
    assert moved.mean() < 0.01
    assert (moved > 0.05).mean() < 0.05, f"{(moved > 0.05).mean():.1%} moved by more than 0.05"
    flips = ((before >= 0.5) != (after >= 0.5)).mean()
    assert flips < 0.01, f"gender alone flips the decision for {flips:.1%}"


def test_textbook_profiles_are_classified_as_expected(model, x_test):
    base = x_test.iloc[[0]].copy()
    risky = base.assign(tenure=1, Contract="Month-to-month", InternetService="Fiber optic",
                        PaymentMethod="Electronic check", OnlineSecurity="No", TechSupport="No",
                        MonthlyCharges=95.0, TotalCharges=95.0, PaperlessBilling="Yes")
    loyal = base.assign(tenure=70, Contract="Two year", InternetService="DSL",
                        PaymentMethod="Credit card (automatic)", OnlineSecurity="Yes",
                        TechSupport="Yes", MonthlyCharges=60.0, TotalCharges=4200.0)
    assert p_churn(model, risky)[0] > 0.5
    assert p_churn(model, loyal)[0] < 0.1
