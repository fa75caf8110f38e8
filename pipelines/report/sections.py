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

from pipelines.report.curves import CURVES
from pipelines.report.inputs import ModelView
from pipelines.report.tables import level, metric_table, num, table, versus

MAX_CONFUSION_CLASSES = 12
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
    return "✅ passed" if gate.get("passed") and all(r.get("verdict") == "pass" for r in rules) \
        else "❌ FAILED"


def headline(view: ModelView) -> str:
    """The gate verdict in one line: passed, FAILED naming the rules, or no verdict."""
    gate = view.new.gate
    if view.problem:
        return f"**Gates: no verdict**: {view.problem.splitlines()[0]}"
    if gate is None:
        return ("**Gates: no verdict**: the pipeline stopped before the gate stage; see the "
                "job log.")
    rules = gate.get("rules") or []
    failed = [r for r in rules if r.get("verdict") != "pass"]
    if gate.get("passed") and not failed:
        return f"**Gates: passed** ({len(rules)} of {len(rules)} rules) ✅"
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
                 "✅ pass" if r.get("verdict") == "pass" else f"❌ {r.get('verdict')}",
                 str(r.get("note") or "")] for r in rules]
        # Folded away when every rule passed; open when one failed.
        opening = "<details open>" if any(r.get("verdict") != "pass" for r in rules) \
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


def slices(view: ModelView) -> list[Block]:
    """One table per sliced column: each value's rows and metrics, with the change."""
    new = (view.new.metrics or {}).get("slices") or {}
    old = (view.old.metrics or {}).get("slices") or {}
    blocks = []
    for column, values in new.items():
        fields, rows = _compare_rows(values, old.get(column) or {}, f"{column} = ")
        blocks.append(Block(f"Slices by {column} (change vs `{view.base}` in brackets)",
                            table(["slice", *fields], rows)))
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


SECTIONS: list[Section] = [gate, metrics, parameters, curves, slices, per_class, confusion, data]


def render_model(view: ModelView, sections: list[Section] = SECTIONS) -> list[Block]:
    """Every block of one model's section, in order."""
    return [block for section in sections for block in section(view)]
