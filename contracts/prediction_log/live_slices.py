"""Live metrics per declared slice, from the labelled predictions of the prediction log.

The window is the newest `window` labels of a model in an environment (the rows the service's
live accuracy or MAE is read from), so each slice's figures are over recent traffic and the
read is bounded however long the log grows. Each labelled prediction falls in one slice per
declared slice column (its logged feature value), among the values the signature declares
(Signature.slice_values): a value outside them, or a feature the log does not keep, counts in
no slice. Per slice: how many labelled rows, and the live value of each watched metric, defined
as the gates define it per slice (pipelines/stages/slices.py): a rate over positives or a
ranking needs both classes among the slice's labels, otherwise it is NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from contracts.prediction_log.schema import feedback, predictions
from contracts.prediction_log.store import PredictionLog
from contracts.signature import Signature

# The metric every slice shows live whatever the rules name: the one feedback gives directly.
HEADLINE = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mae"}
# What can be computed live per task: each needs only the label, the answer and (roc_auc) the
# answered probability, all of which the log keeps.
COMPUTABLE = {
    "binary": ("accuracy", "true_positive_rate", "false_positive_rate", "selection_rate",
               "roc_auc"),
    "multiclass": ("accuracy", "balanced_accuracy"),
    "regression": ("mae", "rmse"),
}
NAN = float("nan")


@dataclass(frozen=True)
class SliceFigure:
    """One slice's live figures: labelled rows in the window and each watched metric (NaN when
    the slice holds no rows, or one class where the metric needs both)."""

    column: str
    value: str
    rows: int
    metrics: dict[str, float]


def watched_metrics(signature: Signature) -> tuple[str, ...]:
    """The task's headline metric, then every metric a slice floor or ceiling names."""
    rules = signature.slices
    named = [*rules.floors, *rules.ceilings] if rules is not None else []
    return tuple(m for m in dict.fromkeys([HEADLINE[signature.task], *named])
                 if m in COMPUTABLE[signature.task])


def verdict(figure: SliceFigure, metric: str, signature: Signature) -> str:
    """How a slice's live metric stands against its rule: `below floor`, `above ceiling`,
    `ok`, `too few rows` (under min_rows: reported, not judged), or `-` (no rule, or NaN)."""
    rules = signature.slices
    value = figure.metrics.get(metric, NAN)
    if rules is None or (metric not in rules.floors and metric not in rules.ceilings):
        return "-"
    if figure.rows < rules.min_rows:
        return "too few rows"
    if math.isnan(value):
        return "-"
    if metric in rules.floors and value < rules.floors[metric]:
        return "below floor"
    if metric in rules.ceilings and value > rules.ceilings[metric]:
        return "above ceiling"
    return "ok"


@dataclass(frozen=True)
class LabelledWindow:
    """The newest labels of one model: per labelled prediction its version, truth, answer,
    answered probability (binary) and the logged value of each requested column."""

    versions: np.ndarray
    truth: list[Any]
    answer: list[Any]
    probability: list[Any]
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.versions)


def read_window(store: PredictionLog, model: str, columns: list[str], window: int,
                environment: str | None = None) -> LabelledWindow:
    """The newest `window` labels of `model` (in `environment`, if given), one query: only the
    requested feature values are taken out of each row's JSON, by the database."""
    p = predictions.c
    recent = (select(feedback.c.prediction_id, feedback.c.label, feedback.c.value)
              .join(predictions, feedback.c.prediction_id == p.id)
              .where(p.model == model)
              .order_by(feedback.c.received_at.desc()).limit(window))
    if environment is not None:
        recent = recent.where(p.environment == environment)
    recent = recent.subquery()
    # The JSON is opened for the window's rows only, not for every label before the sort.
    picked = [p.features[c].label(f"c{i}") for i, c in enumerate(columns)]
    query = select(p.version, recent.c.label, recent.c.value, p.predicted_label,
                   p.predicted_value, p.output["probability"].label("probability"), *picked
                   ).join(recent, recent.c.prediction_id == p.id)
    with store.engine.connect() as connection:
        rows = connection.execute(query).all()
    # A classifier's truth and answer are labels, a regressor's values.
    return LabelledWindow(
        versions=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        truth=[r[1] if r[1] is not None else r[2] for r in rows],
        answer=[r[3] if r[3] is not None else r[4] for r in rows],
        probability=[r[5] for r in rows],
        columns={c: [r[6 + i] for r in rows] for i, c in enumerate(columns)})


def slice_name(value: Any) -> str | None:
    """A logged feature value as the gates name its slice (`astype(str)` of the column):
    integers without a decimal point; None for an empty value."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def figures(window: LabelledWindow, signature: Signature, version: int) -> list[SliceFigure]:
    """Every declared slice value of `signature` (the model `version` answered with), in
    declaration order, with its figures over that version's labelled rows in `window`."""
    mine = window.versions == version
    task = signature.task
    wanted = watched_metrics(signature)
    pick = np.flatnonzero(mine)
    if task == "regression":
        truth = np.asarray([window.truth[i] for i in pick], dtype=float)
        answer = np.asarray([window.answer[i] for i in pick], dtype=float)
        probability = None
    else:
        truth = np.asarray([window.truth[i] for i in pick], dtype=object)
        answer = np.asarray([window.answer[i] for i in pick], dtype=object)
        probability = np.asarray([_number(window.probability[i]) for i in pick], dtype=float)
    out = []
    for column, values in signature.slice_values().items():
        logged = window.columns.get(column)
        names = np.asarray([slice_name(logged[i]) for i in pick] if logged is not None
                           else [None] * len(pick), dtype=object)
        for value in values:
            rows = names == value
            n = int(rows.sum())
            measured = {m: (_metric(m, signature, truth[rows], answer[rows],
                                    None if probability is None else probability[rows])
                            if n else NAN) for m in wanted}
            out.append(SliceFigure(column, value, n, measured))
    return out


def live_slices(store: PredictionLog, signatures: dict[int, Signature], window: int,
                environment: str | None = None) -> dict[int, list[SliceFigure]]:
    """Per version (each with the signature it serves with, all of one model): its figures
    over the model's newest `window` labels; versions with no slice rules are left out."""
    watched = {v: s for v, s in signatures.items() if s.slice_values()}
    if not watched:
        return {}
    models = {s.model for s in watched.values()}
    if len(models) != 1:
        raise ValueError(f"live slices are read for one model at a time, got {sorted(models)}")
    columns = list(dict.fromkeys(c for s in watched.values() for c in s.slice_values()))
    labelled = read_window(store, models.pop(), columns, window, environment)
    return {v: figures(labelled, s, v) for v, s in watched.items()}


def _number(value: Any) -> float:
    return NAN if value is None else float(value)


def _metric(name: str, signature: Signature, truth: np.ndarray, answer: np.ndarray,
            probability: np.ndarray | None) -> float:
    if name == "mae":
        return float(np.mean(np.abs(truth - answer)))
    if name == "rmse":
        return float(np.sqrt(np.mean((truth - answer) ** 2)))
    if name == "accuracy":
        return float(np.mean(truth == answer))
    if name == "balanced_accuracy":
        # The mean recall over the classes among the slice's labels, as the gates compute it.
        return float(np.mean([np.mean(answer[truth == c] == c) for c in np.unique(truth)]))
    positive = signature.positive_class
    y, selected = truth == positive, answer == positive
    if name == "selection_rate":
        return float(np.mean(selected))
    if y.all() or not y.any():
        return NAN  # one class only: no rate over positives and negatives, no ranking
    if name == "true_positive_rate":
        return float(np.mean(selected[y]))
    if name == "false_positive_rate":
        return float(np.mean(selected[~y]))
    if name == "roc_auc":
        if probability is None or np.isnan(probability).any():
            return NAN
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, probability))
    raise ValueError(f"{name!r} is not a live slice metric of a {signature.task} model")
