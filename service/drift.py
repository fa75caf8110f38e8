"""Drift of live inputs against the training reference, over a sliding window of rows.

Numeric features: the two-sample Kolmogorov-Smirnov statistic (scipy) against the
reference sample. Categorical features: the population stability index against the
reference shares. Rows are only recorded on the request path; the statistics are computed
when metrics are read, so their cost does not grow with traffic.
"""
from __future__ import annotations

from collections import deque
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
                cats = list(f.categories or [])
                shares = categorical_ref[f.name].get("frequencies", {})
                expected = np.array([float(shares.get(c, 0.0)) for c in cats])
                total = expected.sum()
                expected = expected / total if total > 0 else np.full(len(cats), 1 / len(cats))
                self._categorical.append((i, f.name, {c: k for k, c in enumerate(cats)},
                                          np.maximum(expected, PSI_FLOOR)))
            elif f.type != "category" and numeric_ref.get(f.name, {}).get("sample"):
                sample = np.asarray(numeric_ref[f.name]["sample"], dtype=float)
                self._numeric.append((i, f.name, sample[np.isfinite(sample)]))
        # Rows are kept as tuples and turned into arrays only when statistics are read:
        # appending is far cheaper than writing into arrays on every request.
        self._rows: deque[tuple[Any, ...]] = deque(maxlen=window)

    @property
    def rows(self) -> int:
        return len(self._rows)

    def observe(self, columns: list[tuple[Any, ...]]) -> None:
        """Record rows (given column by column, in signature order) into the window."""
        self._rows.extend(zip(*columns))

    def statistics(self) -> dict[tuple[str, str], float]:
        """(feature, test) -> statistic over the window; empty until `min_rows` rows."""
        rows = list(self._rows)
        n = len(rows)
        if n < self.min_rows:
            return {}
        out: dict[tuple[str, str], float] = {}
        for i, name, sample in self._numeric:
            values = np.fromiter((r[i] for r in rows), dtype=float, count=n)
            out[(name, "ks")] = float(ks_2samp(values, sample).statistic)
        for i, name, codes, expected in self._categorical:
            counts = np.bincount([codes[r[i]] for r in rows], minlength=len(expected))
            actual = np.maximum(counts / n, PSI_FLOOR)
            out[(name, "psi")] = float(np.sum((actual - expected) * np.log(actual / expected)))
        return out
