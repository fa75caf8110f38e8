"""Render the training report a reviewer reads on a pull request.

Input: the JSON of `dvc metrics diff --json BASE` and `dvc params diff --json BASE`, and the
gate verdicts in models/churn/gate.json. Output: markdown with the gate verdict first, the key
test metrics with their bootstrap intervals on the base branch and on this one, the changed
parameters, the slices, other tracked metrics and where the plots are. train.yml appends it to
$GITHUB_STEP_SUMMARY and posts it as the pull-request comment; `make report` does the same
locally (`python -m pipelines.report --help`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from contracts.files import atomic_write_text
from pipelines.errors import CommandError
from pipelines.metric_names import KEY_METRICS, LOWER_IS_BETTER

MARKER = "<!-- gitops-ml:train-report -->"
METRICS_FILE = "models/churn/metrics.json"
PLOTS = ("ROC", "Precision-Recall", "Confusion")


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{value}`"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    return f"{value:.4f}"


def _interval(point: Any, low: Any, high: Any) -> str:
    if point is None:
        return "—"
    if low is None or high is None:
        return _num(point)
    return f"{_num(point)} [{_num(low)}, {_num(high)}]"


def _load(text_or_obj: Any, what: str) -> dict:
    if isinstance(text_or_obj, dict):
        return text_or_obj
    text = (text_or_obj or "").strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{what} is not JSON ({exc.msg} at line {exc.lineno}); "
                           f"pass the output of `dvc ... diff --json`") from None
    if not isinstance(data, dict):
        raise CommandError(f"{what} must be a JSON object keyed by file, got {type(data).__name__}")
    return data


def _metric_table(entries: dict[str, dict], base: str) -> tuple[str, list[str]]:
    """Key metrics with intervals, and the names of those whose change left the base interval."""
    rows, moved = [], []
    for name in KEY_METRICS:
        def get(field: str, side: str, name: str = name) -> Any:
            return (entries.get(f"{name}.{field}") or {}).get(side)

        new, old = get("value", "new"), get("value", "old")
        if new is None and old is None:
            continue
        low, high = get("ci_low", "old"), get("ci_high", "old")
        change = "new" if old is None else ("removed" if new is None else "")
        if not change:
            delta = new - old
            better = (delta < 0) if name in LOWER_IS_BETTER else (delta > 0)
            outside = low is not None and high is not None and not (low <= new <= high)
            arrow = "▲" if delta > 0 else ("▼" if delta < 0 else "=")
            verdict = ("better" if better else "worse") if outside else "within base interval"
            if delta == 0:
                verdict = "unchanged"
            if outside:
                moved.append(name)
            change = f"{arrow} {delta:+.4f} ({verdict})"
        rows.append(f"| {name} | {_interval(old, low, high)} "
                    f"| {_interval(new, get('ci_low', 'new'), get('ci_high', 'new'))} | {change} |")
    if not rows:
        return "", moved
    head = (f"| metric | `{base}` | this branch | change |\n"
            "|---|---|---|---|\n")
    return head + "\n".join(rows), moved


def _slices_table(entries: dict[str, dict]) -> str:
    # keys look like slices.<column>.<value>.<metric>; the value itself may contain dots
    groups: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for key, entry in entries.items():
        if not key.startswith("slices."):
            continue
        column, rest = key[len("slices."):].split(".", 1)
        value, _, metric = rest.rpartition(".")
        groups[(column, value)][metric] = entry
    if not groups:
        return ""
    rows = []
    for (column, value), metrics in sorted(groups.items()):
        rows_entry, auc = metrics.get("rows", {}), metrics.get("roc_auc", {})
        rows.append(f"| {column} = {value} | {_num(rows_entry.get('new'))} "
                    f"| {_num(auc.get('old'))} | {_num(auc.get('new'))} "
                    f"| {_num((metrics.get('recall') or {}).get('new'))} |")
    return ("| slice | rows | roc_auc (base) | roc_auc | recall |\n|---|---|---|---|---|\n"
            + "\n".join(rows))


def _gate_section(gate: dict | None) -> tuple[str, str]:
    """(headline, table) for the gate verdicts."""
    if gate is None:
        return ("**Gates: no verdict** — the pipeline stopped before the gate stage; see the "
                "job log."), ""
    rules = gate.get("rules") or []
    failed = [r for r in rules if r.get("verdict") != "pass"]
    if gate.get("passed") and not failed:
        headline = f"**Gates: passed** ({len(rules)} of {len(rules)} rules) ✅"
    else:
        names = ", ".join(r.get("rule", "?") for r in failed) or "see table"
        headline = f"**Gates: FAILED** ({len(failed)} of {len(rules)} rules: {names}) ❌"
    rows = [f"| {r.get('rule', '?')} | {_num(r.get('value'))} | {_num(r.get('threshold'))} "
            f"| {'✅ pass' if r.get('verdict') == 'pass' else '❌ ' + str(r.get('verdict'))} "
            f"| {r.get('note') or ''} |" for r in rules]
    table = ("| rule | value | threshold | verdict | note |\n|---|---|---|---|---|\n"
             + "\n".join(rows)) if rows else ""
    return headline, table


def _params_table(params_diff: dict) -> str:
    rows = []
    for path, entries in sorted(params_diff.items()):
        for key, entry in sorted(entries.items()):
            old, new = _num(entry.get("old")), _num(entry.get("new"))
            rows.append(f"| {path}: `{key}` | {old} | {new} |")
    if not rows:
        return ""
    return "| parameter | base | this branch |\n|---|---|---|\n" + "\n".join(rows)


def _other_metrics(metrics_diff: dict) -> str:
    rows = []
    for path, entries in sorted(metrics_diff.items()):
        if path == METRICS_FILE:
            continue
        for key, entry in sorted(entries.items()):
            rows.append(f"| {path} | {key} | {_num(entry.get('old'))} | {_num(entry.get('new'))} |")
    if not rows:
        return ""
    return "| file | metric | base | this branch |\n|---|---|---|---|\n" + "\n".join(rows)


def render(metrics_diff: Any, params_diff: Any, gate: dict | None, *, base: str = "main",
           plots_url: str | None = None, title: str = "Model report: churn") -> str:
    """The markdown report for `dvc metrics diff --json` / `dvc params diff --json` output."""
    metrics_diff = _load(metrics_diff, "the metrics diff")
    params_diff = _load(params_diff, "the params diff")
    entries = metrics_diff.get(METRICS_FILE, {})
    headline, gate_table = _gate_section(gate)
    metric_table, moved = _metric_table(entries, base)
    parts = [MARKER, f"## {title}", "", headline, ""]
    if metric_table:
        rows = (entries.get("rows") or {}).get("new")
        about = f" on {rows} test rows" if rows else ""
        parts += [f"### Test metrics vs `{base}`{about} (95% bootstrap interval)", "",
                  metric_table, ""]
        if moved:
            parts += [f"Outside the base branch's interval: {', '.join(moved)}.", ""]
    else:
        missing = f"`{METRICS_FILE}` is missing on this branch and on `{base}`"
        parts += [f"No test metrics to compare: {missing}.", ""]
    if gate_table:
        parts += ["### Gate verdicts", "", gate_table, ""]
    params = _params_table(params_diff)
    parts += ["### Parameters changed vs `" + base + "`", "",
              params or "No parameter changed.", ""]
    slices = _slices_table(entries)
    if slices:
        parts += ["### Slices", "", slices, ""]
    others = _other_metrics(metrics_diff)
    if others:
        parts += ["### Other tracked metrics", "", others, ""]
    plots = ", ".join(PLOTS)
    where = (f"[the run's artifacts]({plots_url})" if plots_url
             else "`dvc plots diff " + base + "` (HTML in dvc_plots/)")
    parts += ["### Plots", "", f"{plots} curves for this branch against `{base}`: {where}.", ""]
    return "\n".join(parts)


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of `mlops report` / `python -m pipelines.report`."""
    parser.add_argument("--metrics-diff", type=Path, required=True,
                        help="file holding `dvc metrics diff --all --json BASE` output")
    parser.add_argument("--params-diff", type=Path, required=True,
                        help="file holding `dvc params diff --json BASE` output")
    parser.add_argument("--gate", type=Path, default=Path("models/churn/gate.json"))
    parser.add_argument("--base", default="main", help="name of the compared revision")
    parser.add_argument("--plots-url", default=None, help="where the rendered plots are")
    parser.add_argument("--out", type=Path, help="write the markdown here")
    parser.add_argument("--summary", type=Path, help="append the markdown to this file")


def run(args: argparse.Namespace) -> int:
    """Write the report to --out and/or append it to --summary ($GITHUB_STEP_SUMMARY)."""
    for path in (args.metrics_diff, args.params_diff):
        if not path.is_file():
            raise CommandError(f"{path} not found")
    gate = None
    if args.gate.is_file():
        try:
            gate = json.loads(args.gate.read_text())
        except json.JSONDecodeError as exc:
            raise CommandError(f"{args.gate} is not JSON: {exc.msg}") from None
    text = render(args.metrics_diff.read_text(), args.params_diff.read_text(), gate,
                  base=args.base, plots_url=args.plots_url)
    if args.out:
        atomic_write_text(args.out, text)
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if not args.out and not args.summary:
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point of `python -m pipelines.report`."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.report",
                                     description=__doc__.splitlines()[0])
    configure(parser)
    try:
        return run(parser.parse_args(argv))
    except CommandError as exc:
        print(f"pipelines.report: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
