"""The test metrics each task reports, in the order every table shows them, and which way is
better. Kept free of heavy imports so the report and the promotion evidence load fast."""
from __future__ import annotations

KEY_METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss"),
    "multiclass": ("macro_f1", "balanced_accuracy", "accuracy", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
# What the slice rules can judge per slice (pipelines/stages/slices.py), per task.
SLICE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("true_positive_rate", "false_positive_rate", "selection_rate", "roc_auc",
               "accuracy"),
    "multiclass": ("accuracy", "balanced_accuracy"),
    "regression": ("mae", "rmse"),
}
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "false_positive_rate"})
# Every key metric of any task, in a stable order (tables that mix tasks sort by it).
KEY_METRICS: tuple[str, ...] = tuple(dict.fromkeys(
    m for names in KEY_METRICS_BY_TASK.values() for m in names))
# The metric that judges a model against its trivial baseline: a proper scoring rule for
# classifiers (the baseline predicts the training class shares), the error for regression
# (the baseline predicts the training mean).
BASELINE_METRIC = {"binary": "log_loss", "multiclass": "log_loss", "regression": "rmse"}
# The headline metric of a task: the one a one-line summary shows.
HEADLINE = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}


def key_metrics(task: str) -> tuple[str, ...]:
    """The key metrics of `task` ('binary', 'multiclass' or 'regression')."""
    try:
        return KEY_METRICS_BY_TASK[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(KEY_METRICS_BY_TASK)}") \
            from None


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric `name` is better."""
    return name not in LOWER_IS_BETTER


def order(name: str) -> tuple[int, str]:
    """Sort key: key metrics first in their usual order, then anything else alphabetically."""
    return (KEY_METRICS.index(name) if name in KEY_METRICS else len(KEY_METRICS), name)
