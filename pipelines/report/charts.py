"""Mermaid `xychart-beta` line charts, and the resampling that feeds them.

An xychart line is a list of y values drawn at evenly spaced x positions: on a numeric x-axis
Mermaid steps from min to max by (max - min) / (n - 1), adding the step up in floating point,
so only steps that are exact binary fractions (1/16 here) give every value its position; on a
categorical axis each value sits on its own label. So curves are resampled onto a fixed grid,
scatter data (which xychart cannot draw) is binned, and since xychart has no legend, each line
has a fixed colour the caption names. Numbers are written without exponents: the grammar
reads only `[+-]digits[.digits]`.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Exact binary fractions: Mermaid's float stepping reaches 1.0 with all 17 positions.
GRID = np.linspace(0.0, 1.0, 17)
BINS = 10
BLUE, ORANGE, GREY = "#2563eb", "#f97316", "#9ca3af"
COLOUR_NAMES = {BLUE: "blue", ORANGE: "orange", GREY: "grey"}
SIZE = {"width": 560, "height": 320}


@dataclass(frozen=True)
class Series:
    """One line: what it is (for the caption), its colour, its y values."""

    label: str
    colour: str
    values: Sequence[float]
    kind: str = "line"  # or "bar"


def _quote(text: str) -> str:
    # A quoted xychart string ends at the next double quote; there is no escape.
    return '"' + text.replace('"', "'") + '"'


def _decimals(series: list[Series]) -> int:
    """Enough decimals for 4 significant digits of the largest value."""
    largest = max((abs(v) for s in series for v in s.values), default=0.0)
    if largest == 0:
        return 0
    return min(8, max(0, 3 - math.floor(math.log10(largest))))


def number(value: float, decimals: int) -> str:
    """A finite value the xychart grammar reads (no exponent, no NaN)."""
    if not math.isfinite(value):
        raise ValueError(f"a chart value must be finite, got {value}")
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def xychart(title: str, x_title: str, y_title: str, series: list[Series], *,
            x_range: tuple[float, float] | None = None, x_labels: Sequence[str] | None = None,
            y_range: tuple[float, float] | None = None) -> str:
    """A fenced ```mermaid block: one line (or bar) per series, on a numeric x range or on
    labels."""
    if (x_range is None) == (x_labels is None):
        raise ValueError("give either x_range or x_labels")
    positions = len(x_labels) if x_labels is not None else len(series[0].values)
    if any(len(s.values) != positions for s in series):
        raise ValueError("every line needs one value per x position")
    if bad := [s.label for s in series if not all(math.isfinite(v) for v in s.values)]:
        raise ValueError(f"a chart value must be finite: the line of {', '.join(bad)} is not")
    decimals = _decimals(series)
    palette = ", ".join(s.colour for s in series)
    init = {"xyChart": SIZE, "themeVariables": {"xyChart": {"plotColorPalette": palette}}}
    if x_labels is not None:
        x_axis = f"x-axis {_quote(x_title)} [{', '.join(_quote(x) for x in x_labels)}]"
    else:
        x_axis = f"x-axis {_quote(x_title)} {number(x_range[0], 6)} --> {number(x_range[1], 6)}"
    y_axis = f"y-axis {_quote(y_title)}"
    if y_range is not None:
        y_axis += f" {number(y_range[0], 6)} --> {number(y_range[1], 6)}"
    lines = ["```mermaid", f"%%{{init: {json.dumps(init)}}}%%", "xychart-beta",
             f"    title {_quote(title)}", f"    {x_axis}", f"    {y_axis}"]
    lines += [f"    {s.kind} [{', '.join(number(v, decimals) for v in s.values)}]" for s in series]
    return "\n".join(lines + ["```"])


def legend(series: list[Series]) -> str:
    """The caption that stands in for a legend: `blue: this branch · orange: main`."""
    return " · ".join(f"{COLOUR_NAMES.get(s.colour, s.colour)}: {s.label}" for s in series)


def roc_on_grid(fpr: Sequence[float], tpr: Sequence[float]) -> np.ndarray:
    """TPR at each GRID false-positive rate, linear between the curve's points (where the
    curve jumps straight up, its top)."""
    x, y = np.asarray(fpr, float), np.asarray(tpr, float)
    xs = np.unique(x)
    tops = np.array([y[x == v].max() for v in xs])
    return np.interp(GRID, xs, tops)


def precision_on_grid(recall: Sequence[float], precision: Sequence[float]) -> np.ndarray:
    """Interpolated precision at each GRID recall: the best precision at that recall or
    higher (0 past the largest recall reached)."""
    r, p = np.asarray(recall, float), np.asarray(precision, float)
    return np.array([p[r >= g].max() if (r >= g).any() else 0.0 for g in GRID])


def area(x: Sequence[float], y: Sequence[float]) -> float:
    """Trapezoid area under a curve given as points (sorted by x first)."""
    order = np.lexsort((np.asarray(y, float), np.asarray(x, float)))
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2))


def edges(*columns: Sequence[float], bins: int = BINS) -> np.ndarray:
    """Equal-width bin edges over every value given (one bin when all are equal)."""
    values = np.concatenate([np.asarray(c, float) for c in columns if len(c)])
    low, high = float(values.min()), float(values.max())
    if low == high:
        return np.array([low - 0.5, high + 0.5])
    return np.linspace(low, high, bins + 1)


def binned_means(x: Sequence[float], y: Sequence[float], bin_edges: np.ndarray
                 ) -> tuple[np.ndarray, int]:
    """Mean of y per bin of x, and how many bins had no rows (their value is interpolated
    between the neighbouring bins); ValueError when fewer than one bin has rows."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    index = np.clip(np.searchsorted(bin_edges, x, side="right") - 1, 0, len(bin_edges) - 2)
    counts = np.bincount(index, minlength=len(bin_edges) - 1)
    sums = np.bincount(index, weights=y, minlength=len(bin_edges) - 1)
    filled = counts > 0
    if not filled.any():
        raise ValueError("no rows to bin")
    centres = (bin_edges[:-1] + bin_edges[1:]) / 2
    means = np.interp(centres, centres[filled], sums[filled] / counts[filled])
    return means, int((~filled).sum())


def bin_labels(bin_edges: np.ndarray) -> list[str]:
    """Each bin's centre, with just enough decimals that no two labels are the same."""
    centres = (bin_edges[:-1] + bin_edges[1:]) / 2
    for decimals in range(0, 10):
        labels = [number(float(c), decimals) for c in centres]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(float(c)) for c in centres]
