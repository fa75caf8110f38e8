"""Markdown tables and the number formats every section of the report shares."""
from __future__ import annotations

import math
from typing import Any

from pipelines.metric_names import LOWER_IS_BETTER, key_metrics


def num(value: Any) -> str:
    """A value as a table cell: 4 decimals for floats, `code` for text, — for nothing."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{value}`"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    return f"{value:.4f}"


def interval(point: Any, low: Any, high: Any) -> str:
    """`point [low, high]`, or the point alone when the interval is unknown."""
    if point is None:
        return "—"
    if low is None or high is None:
        return num(point)
    return f"{num(point)} [{num(low)}, {num(high)}]"


def level(confidence: Any) -> str:
    """The interval's confidence level as a percentage (0.95 -> 95%), from metrics.json."""
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool):
        return "bootstrap"
    return f"{confidence * 100:g}% bootstrap"


def versus(new: Any, old: Any) -> str:
    """A cell showing this branch's value and, when the base differs, the change."""
    if new is None:
        return f"— (base {num(old)})" if old is not None else "—"
    if not isinstance(new, (int, float)) or not isinstance(old, (int, float)) or new == old:
        return num(new)
    delta = new - old
    return f"{num(new)} ({delta:+d})" if isinstance(delta, int) else f"{num(new)} ({delta:+.4f})"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table; pipes inside cells are escaped."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def _field(metrics: dict | None, name: str, field: str) -> Any:
    entry = (metrics or {}).get(name)
    return entry.get(field) if isinstance(entry, dict) else None


def change(name: str, new: Any, old: Any, low: Any, high: Any) -> tuple[str, bool]:
    """The change column of one metric, and whether it left the base branch's interval."""
    if old is None:
        return ("new" if new is not None else "—"), False
    if new is None:
        return "removed", False
    delta = new - old
    if delta == 0:
        return "= (unchanged)", False
    outside = low is not None and high is not None and not (low <= new <= high)
    better = (delta < 0) if name in LOWER_IS_BETTER else (delta > 0)
    verdict = ("better" if better else "worse") if outside else "within base interval"
    return f"{'▲' if delta > 0 else '▼'} {delta:+.4f} ({verdict})", outside


def metric_table(task: str, new: dict | None, old: dict | None, base: str) -> tuple[str, list[str]]:
    """Key metrics of `task` with intervals on both sides, and those that left the base
    interval; an empty table when neither side has any."""
    rows, moved = [], []
    for name in key_metrics(task):
        value_new, value_old = _field(new, name, "value"), _field(old, name, "value")
        if value_new is None and value_old is None:
            continue
        cell, outside = change(name, value_new, value_old, _field(old, name, "ci_low"),
                               _field(old, name, "ci_high"))
        if outside:
            moved.append(name)
        rows.append([name,
                     interval(value_old, _field(old, name, "ci_low"), _field(old, name, "ci_high")),
                     interval(value_new, _field(new, name, "ci_low"), _field(new, name, "ci_high")),
                     cell])
    if not rows:
        return "", moved
    return table(["metric", f"`{base}`", "this branch", "change"], rows), moved
