"""The test metrics the pipeline reports, in the order every table shows them, and which way
is better. Kept free of heavy imports so the report and the promotion evidence load fast."""
from __future__ import annotations

KEY_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss")
LOWER_IS_BETTER = frozenset({"log_loss"})
HIGHER_IS_BETTER = tuple(m for m in KEY_METRICS if m not in LOWER_IS_BETTER)
