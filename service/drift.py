"""Drift of live inputs against the training reference, over a sliding window of rows.

Numeric features: the two-sample Kolmogorov-Smirnov statistic (scipy) against the
reference sample. Categorical features: the population stability index against the
reference shares. Empty values (a nullable feature's None or "") are left out of both.
The model's answers drift too, by task: the KS statistic of a binary classifier's positive
probability or a regressor's value against its answers on the training rows, the PSI of a
multiclass classifier's predicted classes against their training shares.
Requests are only recorded on the request path, as they came (column by column); the rows
and the statistics are formed when metrics are read, so their cost does not grow with traffic.
"""
from __future__ import annotations

from collections import deque
from itertools import chain
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

from contracts.signature import Signature

# Shares below this are floored so a category absent on one side gives a large, finite PSI.
PSI_FLOOR = 1e-4


class DriftMonitor:
    """A ring buffer of recent rows and the drift statistics it implies."""

    def __init__(self, signature: Signature, reference: dict[str, Any], window: int,
                 min_rows: int) -> None:
        self.window = window
        self.min_rows = min_rows
        numeric_ref = reference.get("numeric", {})
        categorical_ref = reference.get("categorical", {})
        self._numeric: list[tuple[int, str, np.ndarray]] = []
        self._categorical: list[tuple[int, str, dict[str, int], np.ndarray]] = []
        for i, f in enumerate(signature.features):
            if f.type == "category" and f.name in categorical_ref:
                shares = categorical_ref[f.name].get("frequencies", {})
                self._categorical.append((i, f.name, *_shares(list(f.categories or []), shares)))
            elif f.type != "category" and numeric_ref.get(f.name, {}).get("sample"):
                self._numeric.append((i, f.name, _finite(numeric_ref[f.name]["sample"])))
        self._answer = len(signature.features)  # the index that names the answers
        prediction = reference.get("prediction") or {}
        self._answer_ks: np.ndarray | None = None
        self._answer_psi: tuple[dict[str, int], np.ndarray] | None = None
        if signature.task == "multiclass" and prediction.get("class_shares"):
            self._answer_psi = _shares(list(signature.classes or []), prediction["class_shares"])
        else:
            key = "value_sample" if signature.task == "regression" else "probability_sample"
            if prediction.get(key):
                self._answer_ks = _finite(prediction[key])
        # What the model was asked, as it came: (columns, answers) per call, newest last,
        # with as many of the oldest dropped as leaves `window` rows or more. Keeping a call's
        # columns costs one append; rows are formed only when statistics are read.
        self._calls: deque[tuple[list[Any], list[Any]]] = deque()
        self._held = 0

    @property
    def rows(self) -> int:
        return min(self._held, self.window)

    def observe(self, columns: list[Any], answers: list[Any]) -> None:
        """Record rows (given column by column, in signature order) and the model's answer
        for each (binary: P(positive); multiclass: the class; regression: the value)."""
        calls = self._calls
        calls.append((columns, answers))
        self._held += len(answers)
        while self._held - len(calls[0][1]) >= self.window:
            self._held -= len(calls.popleft()[1])

    def _window(self, i: int) -> list[Any]:
        """The window's values of feature `i` (the answers when `i` is the feature count)."""
        calls = self._calls
        if i == self._answer:
            values = list(chain.from_iterable(answers for _, answers in calls))
        else:
            values = list(chain.from_iterable(columns[i] for columns, _ in calls))
        return values[-self.window:]

    def statistics(self) -> dict[tuple[str, str], float]:
        """(feature, test) -> statistic over the window; empty until `min_rows` rows."""
        if self.rows < self.min_rows:
            return {}
        out: dict[tuple[str, str], float] = {}
        for i, name, sample in self._numeric:
            if (stat := _ks(self._window(i), sample)) is not None:
                out[(name, "ks")] = stat
        for i, name, codes, expected in self._categorical:
            if (stat := _psi(self._window(i), codes, expected)) is not None:
                out[(name, "psi")] = stat
        return out

    def answer_statistic(self) -> tuple[str, float] | None:
        """(test, statistic) of the model's answers over the window; None until `min_rows`."""
        if self.rows < self.min_rows:
            return None
        answers = self._window(self._answer)
        if self._answer_ks is not None:
            stat = _ks(answers, self._answer_ks)
            return None if stat is None else ("ks", stat)
        if self._answer_psi is not None:
            stat = _psi(answers, *self._answer_psi)
            return None if stat is None else ("psi", stat)
        return None


def _finite(values: list[Any]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def _shares(categories: list[str], shares: dict[str, float]) -> tuple[dict[str, int], np.ndarray]:
    """Codes of the categories, and their reference shares (normalized, floored)."""
    expected = np.array([float(shares.get(c, 0.0)) for c in categories])
    total = expected.sum()
    expected = expected / total if total > 0 else np.full(len(categories), 1 / len(categories))
    return {c: k for k, c in enumerate(categories)}, np.maximum(expected, PSI_FLOOR)


def _ks(values: list[Any], sample: np.ndarray) -> float | None:
    live = np.array([v for v in values if v is not None], dtype=float)
    live = live[np.isfinite(live)]
    if not len(live) or not len(sample):
        return None
    return float(ks_2samp(live, sample).statistic)


def _psi(values: list[Any], codes: dict[str, int], expected: np.ndarray) -> float | None:
    known = [codes[v] for v in values if v in codes]  # an empty category is not a share
    if not known:
        return None
    actual = np.maximum(np.bincount(known, minlength=len(expected)) / len(known), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
