"""The parts of one model's section of the report, in the order a reviewer reads them.

A section is a function from the model's view to a list of blocks (a title and markdown); it
returns no block when it has nothing to say. SECTIONS is the order. A new part of the report
(e.g. one block per sensitive attribute, from the slice rules in gate.json) is one more
function in that list; nothing else changes.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.report.charts import BLUE, ORANGE, Series, legend, xychart
from pipelines.report.curves import CURVES
from pipelines.report.inputs import ModelView
from pipelines.report.tables import interval, level, metric_table, num, table, versus

MAX_CONFUSION_CLASSES = 12
MARKS = {"pass": "✅ ", "WARN": "⚠️ ", "report": "ℹ️ ", "FAIL": "❌ "}
MAX_VALUE_CHARS = 60


@dataclass(frozen=True)
class Block:
    """One titled part of a model's section (no title: it follows the heading directly)."""

    title: str | None
    body: str
    chart: bool = False


Section = Callable[[ModelView], list[Block]]


def verdict(view: ModelView) -> str:
    """The gate verdict in two words: ✅ passed, ❌ FAILED or no verdict."""
    gate = view.new.gate
    if view.problem or gate is None:
        return "no verdict"
    rules = gate.get("rules") or []
    return "✅ passed" if gate.get("passed") and not any(r.get("verdict") == "FAIL"
                                                         for r in rules) else "❌ FAILED"


def headline(view: ModelView) -> str:
    """The gate verdict in one line: passed, FAILED naming the rules, or no verdict."""
    gate = view.new.gate
    if view.problem:
        return f"**Gates: no verdict**: {view.problem.splitlines()[0]}"
    if gate is None:
        return ("**Gates: no verdict**: the pipeline stopped before the gate stage; see the "
                "job log.")
    rules = gate.get("rules") or []
    failed = [r for r in rules if r.get("verdict") == "FAIL"]
    if gate.get("passed") and not failed:
        warned = [r for r in rules if r.get("verdict") == "WARN"]
        judged = [r for r in rules if r.get("verdict") != "report"]
        note = (f"; {len(warned)} warning{'s' * (len(warned) != 1)}: "
                f"{', '.join(str(r.get('rule')) for r in warned)}" if warned else "")
        return f"**Gates: passed** ({len(judged)} of {len(judged)} judged rules{note}) ✅"
    names = ", ".join(str(r.get("rule", "?")) for r in failed) or "see the table"
    return f"**Gates: FAILED** ({len(failed)} of {len(rules)} rules: {names}) ❌"


def gate(view: ModelView) -> list[Block]:
    """The verdict, then every rule (folded away when all passed)."""
    blocks = [Block(None, headline(view))]
    if view.problem and "\n" in view.problem:
        blocks.append(Block(None, "```\n" + view.problem.split("\n", 1)[1] + "\n```"))
    rules = (view.new.gate or {}).get("rules") or []
    if rules:
        rows = [[str(r.get("rule", "?")), num(r.get("value")), num(r.get("threshold")),
                 MARKS.get(str(r.get("verdict")), "❌ ") + str(r.get("verdict")),
                 str(r.get("note") or "")] for r in rules]
        # Folded away when every rule passed; open when one failed or warned.
        opening = "<details open>" if any(r.get("verdict") in ("FAIL", "WARN") for r in rules) \
            else "<details>"
        rules_table = table(["rule", "value", "threshold", "verdict", "note"], rows)
        body = f"{opening}<summary>Gate rules</summary>\n\n{rules_table}\n\n</details>"
        blocks.append(Block(None, body))
    return blocks


def metrics(view: ModelView) -> list[Block]:
    """Key metrics of the task with their intervals, here and on the base branch."""
    new, old = view.new.metrics, view.old.metrics
    if not new or not view.task:
        return []
    text, moved = metric_table(view.task, new, old, view.base)
    rows = f" on {new['rows']} test rows" if new.get("rows") else ""
    parts = [text] if text else ["No key metric of this task in metrics.json."]
    if old is None:
        parts.append(f"`{view.base}` has no metrics for this model: it is new here.")
    if moved:
        parts.append(f"Outside the base branch's interval: {', '.join(moved)}.")
    baseline = new.get("baseline") or {}
    diff = baseline.get("difference") or {}
    if baseline.get("metric") and diff.get("value") is not None:
        parts.append(f"Trivial baseline ({baseline.get('predicts', 'a constant')}): "
                     f"{baseline['metric']} {num(baseline.get('value'))}; model minus baseline "
                     f"{num(diff['value'])} [{num(diff.get('ci_low'))}, "
                     f"{num(diff.get('ci_high'))}].")
    return [Block(f"Test metrics vs `{view.base}`{rows} ({level(new.get('confidence'))} "
                  "intervals)", "\n\n".join(parts))]


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict) and doc:
        out: dict[str, Any] = {}
        for key, value in doc.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): doc}


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    text = text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"
    return f"`{text}`"


def parameters(view: ModelView) -> list[Block]:
    """The keys of the declaration (and the params.yaml entry) that changed."""
    title = f"Declaration changes vs `{view.base}`"
    if view.old_declaration is None:
        return [Block(title, "A new model: its declaration is added on this branch.")]
    pairs = [("", view.old_declaration, view.declaration),
             (f"params.yaml models.{view.name}.", view.old_source, view.source)]
    rows = []
    for prefix, old, new in pairs:
        flat_old, flat_new = _flat(old or {}), _flat(new or {})
        for key in sorted(set(flat_old) | set(flat_new)):
            if flat_old.get(key) != flat_new.get(key):
                rows.append([f"`{prefix}{key}`", _shown(flat_old.get(key)),
                             _shown(flat_new.get(key))])
    if not rows:
        return [Block(title, "No key of its declaration or params.yaml entry changed (its data "
                             "changed, or code every model runs through).")]
    return [Block(title, table(["key", f"`{view.base}`", "this branch"], rows))]


def curves(view: ModelView) -> list[Block]:
    """One chart per plot file this branch has, with the base branch's line beside it."""
    blocks = []
    for kind, draw in CURVES.items():
        rows = view.new.plots.get(kind)
        if not rows:
            continue
        try:
            chart = draw(rows, view.old.plots.get(kind), view.base)
        except (ValueError, KeyError, TypeError) as exc:
            blocks.append(Block(kind, f"Cannot draw plots/{kind}.json: {exc}."))
            continue
        blocks.append(Block(chart.title, f"{chart.mermaid}\n\n{chart.caption}", chart=True))
    return blocks


def _compare_rows(new: dict, old: dict, label: str) -> tuple[list[str], list[list[str]]]:
    fields = sorted({k for entry in new.values() if isinstance(entry, dict) for k in entry},
                    key=lambda k: (k != "rows", k))
    rows = [[f"{label}{key}", *(versus((entry or {}).get(f), (old.get(key) or {}).get(f))
                                for f in fields)] for key, entry in new.items()]
    return fields, rows


def _metric_cell(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "—"
    return interval(entry.get("value"), entry.get("ci_low"), entry.get("ci_high"))


def _slice_table(report: dict[str, Any], old: dict[str, Any], column: str) -> str:
    groups = report.get("groups") or {}
    names = [k for k in next(iter(groups.values()), {}) if k not in ("rows", "positive_rate")]
    header = ["slice", "rows", *(["positive rate"] if any("positive_rate" in g for g in
                                                          groups.values()) else []), *names]
    rows = []
    for value, entry in groups.items():
        before = ((old.get("groups") or {}).get(value) or {})
        cells = [f"{column} = {value}", versus(entry.get("rows"), before.get("rows"))]
        if "positive_rate" in entry:
            cells.append(num(entry["positive_rate"]))
        rows.append(cells + [_metric_cell(entry.get(n)) for n in names])
    return table(header, rows)


def _rules_about(view: ModelView, column: str) -> list[dict]:
    rules = (view.new.gate or {}).get("rules") or []
    return [r for r in rules if str(r.get("rule", "")).endswith(f": {column}")
            or f": {column}=" in str(r.get("rule", ""))]


def fairness(view: ModelView) -> list[Block]:
    """One block per sensitive attribute: each group's metrics with intervals, the disparity
    verdicts, and the judged metric per group drawn as bars (this branch) and a line (base)."""
    new = (view.new.metrics or {}).get("slices") or {}
    old = (view.old.metrics or {}).get("slices") or {}
    blocks = []
    for column, report in new.items():
        if not isinstance(report, dict) or report.get("kind") != "sensitive":
            continue
        parts = [_slice_table(report, old.get(column) or {}, column)]
        rules = [r for r in _rules_about(view, column) if str(r["rule"]).startswith("disparity")]
        if rules:
            parts.append(table(["rule", "value", "threshold", "verdict", "note"], [
                [str(r["rule"]), num(r.get("value")), num(r.get("threshold")),
                 MARKS.get(str(r.get("verdict")), "") + str(r.get("verdict")),
                 str(r.get("note") or "")] for r in rules]))
        metric = next((str(r["rule"]).split()[1] for r in rules), None) or next(
            (n for n in ("true_positive_rate", "accuracy", "mae")
             if n in next(iter(report["groups"].values()), {})), None)
        chart = _fairness_chart(column, metric, report, old.get(column) or {}, view.base)
        if chart:
            parts.append(chart)
        blocks.append(Block(f"Fairness: {column} (sensitive attribute)", "\n\n".join(parts),
                            chart=bool(chart)))
    return blocks


def _fairness_chart(column: str, metric: str | None, report: dict, old: dict, base: str) -> str:
    if metric is None:
        return ""
    groups = [g for g, e in report["groups"].items() if isinstance(e.get(metric), dict)]
    if not groups:
        return ""
    series = [Series("this branch", BLUE, [report["groups"][g][metric]["value"] for g in groups],
                     "bar")]
    before = [((old.get("groups") or {}).get(g) or {}).get(metric) for g in groups]
    if all(isinstance(b, dict) for b in before):
        series.append(Series(f"`{base}`", ORANGE, [b["value"] for b in before]))
    return (xychart(f"{metric} by {column}", column, metric, series, x_labels=groups) + "\n"
            + legend(series))


def slices(view: ModelView) -> list[Block]:
    """One table per business segment column: each value's rows and metrics with intervals."""
    new = (view.new.metrics or {}).get("slices") or {}
    old = (view.old.metrics or {}).get("slices") or {}
    blocks = []
    for column, report in new.items():
        if not isinstance(report, dict) or report.get("kind") == "sensitive":
            continue
        parts = [_slice_table(report, old.get(column) or {}, column)]
        verdicts = [r for r in _rules_about(view, column) if r.get("verdict") != "pass"]
        if verdicts:
            parts.append("\n".join(f"- {MARKS.get(str(r['verdict']), '')}{r['rule']}: "
                                    f"{r.get('note') or ''}" for r in verdicts))
        blocks.append(Block(f"Segments by {column}", "\n\n".join(parts)))
    return blocks


def per_class(view: ModelView) -> list[Block]:
    """Multiclass: each class's rows, recall and precision, with the change."""
    new = (view.new.metrics or {}).get("per_class") or {}
    if not new:
        return []
    fields, rows = _compare_rows(new, (view.old.metrics or {}).get("per_class") or {}, "")
    return [Block(f"Per class (change vs `{view.base}` in brackets)",
                  table(["class", *fields], rows))]


def _counts(rows: list[dict] | None) -> Counter:
    return Counter((str(r.get("actual")), str(r.get("predicted"))) for r in rows or [])


def confusion(view: ModelView) -> list[Block]:
    """The confusion matrix of the test rows, with the change in each cell."""
    new, old = _counts(view.new.plots.get("confusion")), _counts(view.old.plots.get("confusion"))
    classes = (view.declaration or {}).get("classes") or sorted({c for pair in new for c in pair})
    classes = [str(c) for c in classes]
    if not new or len(classes) > MAX_CONFUSION_CLASSES:
        return []
    rows = [[f"**{a}**", *(versus(new[(a, p)], old[(a, p)] if old else None) for p in classes)]
            for a in classes]
    return [Block(f"Confusion matrix (rows: actual, columns: predicted; change vs "
                  f"`{view.base}` in brackets)", table(["actual \\ predicted", *classes], rows))]


def data(view: ModelView) -> list[Block]:
    """The source rows ingest read, kept and quarantined."""
    new, old = view.new.ingest, view.old.ingest or {}
    if not new:
        return []
    cells = [versus(new.get(k), old.get(k)) for k in ("rows", "valid_rows", "invalid_rows")]
    return [Block(f"Data (change vs `{view.base}` in brackets)",
                  table(["source", "rows read", "valid", "quarantined"],
                        [[f"`{new.get('source', '?')}`", *cells]]))]


SECTIONS: list[Section] = [gate, metrics, parameters, curves, fairness, slices, per_class,
                           confusion, data]


def render_model(view: ModelView, sections: list[Section] = SECTIONS) -> list[Block]:
    """Every block of one model's section, in order."""
    return [block for section in sections for block in section(view)]
