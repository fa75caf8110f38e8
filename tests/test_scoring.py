"""Each task's metrics: the vectorized replicates the bootstrap uses equal scikit-learn's own
functions, and the interval brackets the point estimate."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.stages import scoring


def outputs(task: str, rng) -> tuple[np.ndarray, np.ndarray]:
    if task == "binary":
        y = rng.integers(0, 2, 300)
        return y, np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    if task == "multiclass":
        y = rng.integers(0, 3, 300)
        p = rng.random((300, 3)) + np.eye(3)[y]
        return y, p / p.sum(axis=1, keepdims=True)
    y = rng.normal(10, 3, 300)
    return y, y + rng.normal(0, 1, 300)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_vectorized_replicates_equal_the_scikit_learn_metrics(task):
    rng = np.random.default_rng(11)
    y, p = outputs(task, rng)
    idx = rng.integers(0, len(y), size=(5, len(y)))
    fast = scoring.vectorized(task, 0.5, 3)
    for name, fn in scoring.scorers(task, 0.5, 3).items():
        np.testing.assert_allclose(fast[name](y[idx], p[idx]), [fn(y[i], p[i]) for i in idx],
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_interval_brackets_the_estimate_and_a_seed_repeats_it():
    rng = np.random.default_rng(3)
    y, p = outputs("binary", rng)
    auc = scoring.vectorized("binary")["roc_auc"]
    stat = lambda idx, axis=-1: auc(y[idx], p[idx])
    low, high = scoring.interval(stat, len(y), 200, 0.9, seed=1)
    point = scoring.scorers("binary")["roc_auc"](y, p)
    assert low < point < high and high - low < 0.2
    assert scoring.interval(stat, len(y), 200, 0.9, seed=1) == (low, high)
    assert scoring.interval(stat, len(y), 0, 0.9, seed=1) is None
