"""One inline chart per plot file the evaluate stage writes, this branch against the base.

models/<name>/plots/<kind>.json holds `{"<kind>": [rows]}`. Each kind with a chart here is
drawn when this branch has it: roc (binary, and one-vs-rest micro-averaged for multiclass),
prc (binary), predicted and residuals (regression). A new kind is one function in CURVES.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipelines.report import charts
from pipelines.report.charts import BLUE, GREY, ORANGE, Series, legend, xychart

Rows = list[dict]


@dataclass(frozen=True)
class Chart:
    """A titled chart and the sentence that says which line is which."""

    title: str
    mermaid: str
    caption: str


def _column(rows: Rows, key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None]


def _sides(new: Rows, old: Rows | None, base: str, draw: Callable[[Rows], list[float]]
           ) -> list[Series]:
    lines = [Series("this branch", BLUE, draw(new))]
    if old:
        lines.append(Series(f"`{base}`", ORANGE, draw(old)))
    return lines


def roc(new: Rows, old: Rows | None, base: str) -> Chart:
    """ROC: true-positive rate against false-positive rate, and the chance diagonal."""
    def draw(rows: Rows) -> list[float]:
        return list(charts.roc_on_grid(_column(rows, "fpr"), _column(rows, "tpr")))
    lines = _sides(new, old, base, draw) + [Series("chance", GREY, list(charts.GRID))]
    areas = [f"{side} {charts.area(_column(rows, 'fpr'), _column(rows, 'tpr')):.4f}"
             for side, rows in (("this branch", new), (f"`{base}`", old)) if rows]
    mermaid = xychart("ROC", "false positive rate", "true positive rate", lines,
                      x_range=(0, 1), y_range=(0, 1))
    return Chart("ROC", mermaid, f"{legend(lines)}. Area under each curve: {', '.join(areas)}.")


def prc(new: Rows, old: Rows | None, base: str) -> Chart:
    """Precision against recall (interpolated precision on a fixed recall grid)."""
    def draw(rows: Rows) -> list[float]:
        return list(charts.precision_on_grid(_column(rows, "recall"), _column(rows, "precision")))
    lines = _sides(new, old, base, draw)
    mermaid = xychart("Precision-Recall", "recall", "precision", lines, x_range=(0, 1),
                      y_range=(0, 1))
    return Chart("Precision-recall", mermaid,
                 f"{legend(lines)}. Each point is the best precision at that recall or higher.")


def _binned(new: Rows, old: Rows | None, base: str, x: str, y: str
            ) -> tuple[list[Series], np.ndarray, int]:
    """Each side's mean y per bin of x (bins shared by both sides), the bin edges, and how
    many bins on either side had no rows."""
    bin_edges = charts.edges(*(_column(rows, x) for rows in (new, old) if rows))
    empty = 0

    def draw(rows: Rows) -> list[float]:
        nonlocal empty
        means, missing = charts.binned_means(_column(rows, x), _column(rows, y), bin_edges)
        empty += missing
        return list(means)
    return _sides(new, old, base, draw), bin_edges, empty


def _gaps(empty: int) -> str:
    return (f" Bins without rows ({empty}) are interpolated from their neighbours."
            if empty else "")


def predicted(new: Rows, old: Rows | None, base: str) -> Chart:
    """Mean prediction per bin of the actual value, and the mean actual value itself."""
    lines, bin_edges, empty = _binned(new, old, base, "actual", "predicted")
    labels = charts.bin_labels(bin_edges)
    truth, _ = charts.binned_means(_column(new, "actual"), _column(new, "actual"), bin_edges)
    lines.append(Series("the actual values (where a perfect model's line lies)", GREY,
                        list(truth)))
    mermaid = xychart("Predicted vs actual", "actual (bin centre)", "mean predicted", lines,
                      x_labels=labels)
    return Chart("Predicted vs actual", mermaid,
                 f"{legend(lines)}. Test rows are grouped into {len(labels)} equal-width bins "
                 f"of the actual value; each point is the bin's mean.{_gaps(empty)}")


def residuals(new: Rows, old: Rows | None, base: str) -> Chart:
    """Mean residual (actual - predicted) per bin of the prediction, and zero."""
    lines, bin_edges, empty = _binned(new, old, base, "predicted", "residual")
    labels = charts.bin_labels(bin_edges)
    lines.append(Series("zero (no bias)", GREY, [0.0] * len(labels)))
    mermaid = xychart("Residuals", "predicted (bin centre)", "mean residual", lines,
                      x_labels=labels)
    return Chart("Residuals", mermaid,
                 f"{legend(lines)}. Residual = actual − predicted; test rows are grouped into "
                 f"{len(labels)} equal-width bins of the prediction; each point is the bin's "
                 f"mean.{_gaps(empty)}")


# Plot file stem -> its chart, in the order the report draws them.
CURVES: dict[str, Callable[[Rows, Rows | None, str], Chart]] = {
    "roc": roc, "prc": prc, "predicted": predicted, "residuals": residuals}
