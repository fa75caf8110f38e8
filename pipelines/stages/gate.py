"""Stage `gate`: the rules a model must pass before it may be registered.

The declaration's `gates:`: beat the trivial baseline (the interval of the difference must
exclude zero), floors and ceilings on test metrics, a maximum regression against the
production champion (the metrics in its pin: git says who the champion is), CPU-time budgets
for single rows and batches on the runtime that will serve (pipelines/stages/latency.py), and
a size budget. Writes every rule's threshold and verdict to gate.json, the measured latency
figures to latency.json (kept out of the bundle digest: they differ run to run, the verdict
does not), prints them as a table, and exits non-zero when any rule fails.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.digest import file_sha256
from contracts.files import atomic_write_text
from contracts.modelfile import load_skops
from contracts.pin import Pin
from contracts.signature import Signature
from pipelines import declaration
from pipelines.declaration.spec import Gates, Latency, SliceGates, Slices
from pipelines.metric_names import higher_is_better
from pipelines.stages import latency


@dataclass
class Rule:
    """One rule's outcome."""

    rule: str
    value: float | None
    threshold: float | None
    passed: bool
    note: str = ""
    # "warn": passed, but the interval reaches past the threshold; "report": not judged.
    level: str = ""

    @property
    def verdict(self) -> str:
        if not self.passed:
            return "FAIL"
        return {"warn": "WARN", "report": "report"}.get(self.level, "pass")


def baseline_rule(metrics: dict[str, Any]) -> Rule:
    """The model must beat the trivial baseline: the whole interval of (model - baseline) on
    the baseline metric lies on the better side of zero."""
    b = metrics["baseline"]
    name, diff = b["metric"], b["difference"]
    better = higher_is_better(name)
    side = "above" if better else "below"
    note = f"baseline ({b['predicts']}) {name} {b['value']:.4f}; model minus baseline "
    if "ci_low" in diff:
        edge = diff["ci_low"] if better else diff["ci_high"]
        note += f"[{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}] must lie {side} 0"
    else:
        edge = diff["value"]
        note += f"{edge:+.4f} must lie {side} 0 (no interval: bootstrap_rounds is 0)"
    passed = edge > 0 if better else edge < 0
    return Rule(f"beats baseline ({name})", round(float(diff["value"]), 6), 0.0, passed, note)


def bound_rules(metrics: dict[str, Any], gates: Gates) -> list[Rule]:
    """Floors (value >= floor) and ceilings (value <= ceiling) on point estimates."""
    rules = []
    for name, floor in gates.floors.items():
        value = float(metrics[name]["value"])
        rules.append(Rule(f"floor {name}", value, float(floor), value >= float(floor)))
    for name, ceiling in gates.ceilings.items():
        value = float(metrics[name]["value"])
        rules.append(Rule(f"ceiling {name}", value, float(ceiling), value <= float(ceiling)))
    return rules


def champion_rules(metrics: dict[str, Any], max_regression: dict[str, float],
                   champion: Pin | None) -> list[Rule]:
    """The challenger may be at most `max_regression` worse than the champion's pinned metrics."""
    rules = []
    for name, allowed in max_regression.items():
        value = float(metrics[name]["value"])
        label = f"vs champion {name}"
        if champion is None or champion.is_empty:
            rules.append(Rule(label, value, None, True, "no champion in production yet"))
        elif name not in champion.metrics:
            rules.append(Rule(label, value, None, True,
                              f"champion v{champion.model.version} has no {name} in its pin"))
        else:
            best = float(champion.metrics[name])
            if higher_is_better(name):
                threshold, passed = best - float(allowed), value >= best - float(allowed)
            else:
                threshold, passed = best + float(allowed), value <= best + float(allowed)
            rules.append(Rule(label, value, round(threshold, 6), passed,
                              f"champion v{champion.model.version} = {best:.4f}"))
    return rules


def judge(entry: dict[str, float], threshold: float, higher_better: bool) -> tuple[bool, str]:
    """(passed, level) of a slice statistic against its threshold, on its interval: fail when
    the whole interval lies past the threshold, warn when part of it does, pass otherwise."""
    low, high = entry.get("ci_low", entry["value"]), entry.get("ci_high", entry["value"])
    if higher_better:
        return (False, "") if high < threshold else (True, "warn" if low < threshold else "")
    return (False, "") if low > threshold else (True, "warn" if high > threshold else "")


def _interval(entry: dict[str, float]) -> str:
    if "ci_low" not in entry:
        return "no interval"
    return f"interval [{entry['ci_low']:.4f}, {entry['ci_high']:.4f}]"


def slice_rules(metrics: dict[str, Any], rules: SliceGates, declared: Slices) -> list[Rule]:
    """Floors and ceilings per slice, and disparities between the slices of sensitive
    attributes, each judged on its bootstrap interval (see `judge`)."""
    out: list[Rule] = []
    reports = metrics.get("slices") or {}
    bounds = [(m, v, True) for m, v in rules.floors.items()] + \
             [(m, v, False) for m, v in rules.ceilings.items()]
    for column in declared.columns:
        for value, entry in (reports.get(column) or {}).get("groups", {}).items():
            for metric, threshold, higher in bounds:
                name = f"slice {'floor' if higher else 'ceiling'} {metric}: {column}={value}"
                stat = entry.get(metric)
                if entry["rows"] < declared.min_rows or stat is None:
                    why = (f"{entry['rows']} rows < slices.min_rows {declared.min_rows}"
                           if entry["rows"] < declared.min_rows else "undefined in this slice")
                    out.append(Rule(name, None, threshold, True, f"{why}: reported, not judged",
                                    "report"))
                    continue
                passed, level = judge(stat, threshold, higher)
                out.append(Rule(name, stat["value"], threshold, passed,
                                f"{_interval(stat)}; {entry['rows']} rows", level))
    for d in rules.disparities:
        for column in d.columns if d.columns is not None else declared.sensitive:
            stat = ((reports.get(column) or {}).get("disparity") or {}).get(d.metric) or {}
            if d.max_difference is not None:
                kind, threshold, higher = "difference", d.max_difference, False
            else:
                kind, threshold, higher = "ratio", d.min_ratio, True
            name = f"disparity {d.metric} {kind}: {column}"
            entry = stat.get(kind)
            if entry is None:
                out.append(Rule(name, None, threshold, True, "fewer than two slices with "
                                f"{declared.min_rows}+ rows: reported, not judged", "report"))
                continue
            passed, level = judge(entry, threshold, higher)
            out.append(Rule(name, entry["value"], threshold, passed,
                            f"{_interval(entry)} between {', '.join(stat['groups'])}", level))
    return out


def latency_rules(measured: dict[str, Any], budgets: Latency) -> list[Rule]:
    """CPU-time budgets per call, single row and batch; the values live in latency.json."""
    rules = []
    shapes = (("single_row", "1 row", budgets.single_row),
              (f"batch_{budgets.batch_rows}", f"{budgets.batch_rows} rows", budgets.batch))
    for key, label, budget in shapes:
        cpu = measured[key]["cpu_ms"]
        for p, limit in (("p95", budget.p95_ms), ("p99", budget.p99_ms)):
            rules.append(Rule(f"latency {p} cpu ms ({label})", None, limit, cpu[p] <= limit,
                              f"{measured['runtime']}; measured in latency.json"))
    return rules


def run(model_dir: Path, sig: Signature, metrics: dict[str, Any], test: pd.DataFrame,
        gates: Gates, champion: Pin | None,
        declared: Slices | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate every rule: (what gate.json holds, what latency.json holds)."""
    model_path = Path(model_dir) / "model.skops"
    model = load_skops(model_path)
    rules = [baseline_rule(metrics)] if gates.beat_baseline else []
    rules += bound_rules(metrics, gates)
    rules += champion_rules(metrics, gates.max_regression, champion)
    rules += slice_rules(metrics, gates.slices, declared or Slices())
    runtime, predict = latency.predictor(model_dir, sig, model)
    measured = {"runtime": runtime, "judged": "cpu_ms",
                **latency.measure(predict, test, sig, calls=gates.latency.calls,
                                  rounds=gates.latency.rounds,
                                  batch_rows=gates.latency.batch_rows)}
    rules += latency_rules(measured, gates.latency)
    size = model_path.stat().st_size / 1e6
    rules.append(Rule("model size MB", round(size, 3), gates.max_model_mb,
                      size <= gates.max_model_mb))
    verdict = {
        "model": sig.model,
        "passed": all(r.passed for r in rules),
        "model_sha256": file_sha256(model_path),
        "champion": None if champion is None or champion.is_empty else {
            "version": champion.model.version, "sha256": champion.model.sha256},
        "rules": [asdict(r) | {"verdict": r.verdict} for r in rules],
    }
    return verdict, measured


def with_measurements(verdict: dict[str, Any], measured: dict[str, Any] | None) -> list[dict]:
    """gate.json's rules with the measured latency filled in from latency.json."""
    rules = [dict(r) for r in verdict["rules"]]
    for r in rules:
        if r["value"] is None and r["rule"].startswith("latency ") and measured:
            p, label = r["rule"].split()[1], r["rule"].split("(")[1].rstrip(")")
            key = "single_row" if label == "1 row" else f"batch_{label.split()[0]}"
            r["value"] = measured.get(key, {}).get("cpu_ms", {}).get(p)
            wall = measured.get(key, {}).get("wall_ms", {}).get(p)
            if wall is not None:
                r["note"] = f"{measured['runtime']}; wall {wall:.4f} ms"
    return rules


def table(result: dict[str, Any], measured: dict[str, Any] | None = None) -> str:
    """gate.json (with latency.json's figures when given) as a readable table."""
    fmt = lambda v: "-" if v is None else f"{v:.4f}"
    lines = [f"{'rule':<34} {'value':>10} {'threshold':>10}  verdict",
             f"{'-' * 34} {'-' * 10} {'-' * 10}  -------"]
    for r in with_measurements(result, measured):
        note = f"  ({r['note']})" if r["note"] else ""
        lines.append(f"{r['rule']:<34} {fmt(r['value']):>10} {fmt(r['threshold']):>10}  "
                     f"{r['verdict']}{note}")
    warned = sum(r["verdict"] == "WARN" for r in result["rules"])
    lines.append(f"gate: {'PASSED' if result['passed'] else 'FAILED'}"
                 + (f" ({warned} warning{'s' * (warned != 1)})" if warned else ""))
    return "\n".join(lines)


def read_champion(path: Path) -> Pin | None:
    return Pin.read(path) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declaration", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="the trained model's folder (model.skops, model.onnx, signature.json)")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--champion", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--latency", type=Path, required=True, help="where the figures go")
    args = parser.parse_args(argv)
    decl = declaration.load(args.declaration)
    result, measured = run(args.model_dir, Signature.read(args.model_dir / "signature.json"),
                           json.loads(args.metrics.read_text()), pd.read_parquet(args.test),
                           decl.gates, read_champion(args.champion), decl.slices)
    atomic_write_text(args.latency, json.dumps(measured, indent=2) + "\n")
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"gate: {decl.name}")
    print(table(result, measured))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
