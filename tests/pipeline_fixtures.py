"""Fixtures for the pipeline tests: the churn declaration, and datasets the tests make for each
task (a binary, a multiclass and a regression one) with a known signal in them.

Loaded as a pytest plugin (conftest.py); modules import only the helpers
(`from pipeline_fixtures import make_binary`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import declaration
from pipelines.declaration import Declaration
from pipelines.stages import ingest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def churn() -> Declaration:
    """The committed churn declaration."""
    return declaration.load(ROOT / "models/churn/model.yaml")


def with_changes(decl: Declaration, **changes) -> Declaration:
    """A copy of `decl` with top-level keys replaced, validated again."""
    return Declaration.model_validate({**decl.model_dump(), **changes})


def make_binary(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Card transactions: fraud ("yes"/"no") rises with the amount, falls with the account's
    age, and is likelier through the web; some amounts are missing; an id per row."""
    rng = np.random.default_rng(seed)
    amount = np.round(rng.gamma(2.0, 60.0, rows), 2)
    age = rng.integers(0, 3000, rows)
    channel = rng.choice(["web", "app", "store"], rows, p=[0.4, 0.4, 0.2])
    score = 0.012 * amount - 0.0012 * age + np.where(channel == "web", 1.0, -0.5) - 1.0
    fraud = np.where(rng.random(rows) < 1 / (1 + np.exp(-score)), "yes", "no")
    frame = pd.DataFrame({"transaction_id": [f"T{i:06d}" for i in range(rows)],
                          "amount": amount.astype(str), "account_age_days": age,
                          "channel": channel, "fraud": fraud})
    frame.loc[rng.random(rows) < 0.03, "amount"] = ""
    return frame


def make_multiclass(rows: int = 600, seed: int = 1) -> pd.DataFrame:
    """Customers in three tiers decided by spend and visits, with some noise, per region."""
    rng = np.random.default_rng(seed)
    spend = np.round(rng.normal(100, 30, rows), 2)
    visits = rng.integers(0, 30, rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    score = spend / 30 + visits / 6 + rng.normal(0, 0.7, rows)
    tier = np.select([score < 4.5, score < 6.5], ["bronze", "silver"], "gold")
    return pd.DataFrame({"spend": spend, "visits": visits, "region": region, "tier": tier})


def make_regression(rows: int = 800, seed: int = 2) -> pd.DataFrame:
    """Flat prices: linear in size and rooms, shifted by city, plus noise."""
    rng = np.random.default_rng(seed)
    size = np.round(rng.uniform(20, 200, rows), 1)
    rooms = rng.integers(1, 7, rows)
    city = rng.choice(["lyon", "nantes", "paris"], rows)
    price = (3.0 * size + 12.0 * rooms + np.select([city == "paris", city == "lyon"], [150, 60], 0)
             + rng.normal(0, 20, rows))
    return pd.DataFrame({"size_m2": size, "rooms": rooms, "city": city,
                         "price_k": np.round(price, 2)})


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


DECLARATIONS = {
    "binary": ("name: fraud\ntask: binary\ntarget: fraud\nclasses: ['no', 'yes']\n"
               "positive_class: 'yes'\nid_columns: [transaction_id]\nmax_invalid_fraction: 0.05\n"
               "features:\n  amount: {type: number, min: 0, nullable: true}\n"
               "  account_age_days: {type: integer, min: 0}\n"
               "  channel: {type: category, categories: [app, store, web]}\n"
               "train: {estimator: logistic_regression}\n", make_binary),
    "multiclass": ("name: tiers\ntask: multiclass\ntarget: tier\n"
                   "classes: [bronze, gold, silver]\n"
                   "features:\n  spend: {type: number}\n  visits: {type: integer, min: 0}\n"
                   "  region: {type: category, categories: [east, north, south, west]}\n"
                   "train: {estimator: logistic_regression}\n", make_multiclass),
    "regression": ("name: flats\ntask: regression\ntarget: price_k\n"
                   "features:\n  size_m2: {type: number, min: 0}\n  rooms: {type: integer}\n"
                   "  city: {type: category, categories: [lyon, nantes, paris]}\n"
                   "train: {estimator: ridge}\n", make_regression),
}
TREES = {"gradient_boosting": {"n_estimators": 30, "max_depth": 3},
         "random_forest": {"n_estimators": 30, "max_depth": 8}}


def prepared(task: str, estimator: str | None = None):
    """(declaration, train rows, test rows) for a task, optionally with a tree estimator."""
    text, make = DECLARATIONS[task]
    decl = declaration.parse(text, f"{task}.yaml")
    if estimator:
        decl = with_changes(decl, train={"estimator": estimator,
                                         "hyperparameters": {estimator: TREES[estimator]}})
    rows = ingest.validate(make().astype(str), decl).valid
    return decl, rows.iloc[: len(rows) * 3 // 4], rows.iloc[len(rows) * 3 // 4:]


def make_people(rows: int = 3000, seed: int = 3) -> pd.DataFrame:
    """Loan defaults that depend on income and debt alike for both groups of a sensitive
    attribute; `site` has one site too small to judge."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.normal(50, 15, rows), 2)
    debt = np.round(rng.uniform(0, 40, rows), 2)
    group = rng.choice(["a", "b"], rows)
    site = rng.choice(["main", "annex", "kiosk"], rows, p=[0.6, 0.39, 0.01])
    score = 0.12 * debt - 0.08 * income + 2.0
    default = np.where(rng.random(rows) < 1 / (1 + np.exp(-score)), "yes", "no")
    return pd.DataFrame({"income": income, "debt": debt, "group": group, "site": site,
                         "default": default})


PEOPLE = ("name: loans\ntask: binary\ntarget: default\nclasses: ['no', 'yes']\n"
          "positive_class: 'yes'\n"
          "features:\n  income: {type: number}\n  debt: {type: number}\n"
          "  group: {type: category, categories: [a, b]}\n"
          "  site: {type: category, categories: [annex, kiosk, main]}\n"
          "train: {estimator: logistic_regression}\n"
          "evaluate: {bootstrap_rounds: 200}\n"
          "slices: {sensitive: [group], segments: [site], min_rows: 50}\n"
          "gates:\n  slices:\n    floors: {roc_auc: 0.6}\n    disparities:\n"
          "      - {metric: true_positive_rate, max_difference: 0.15}\n"
          "      - {metric: selection_rate, min_ratio: 0.8}\n")
