"""Stage `gate`: the rules a model must pass before it may be registered.

The declaration's `gates:`: beat the trivial baseline (the interval of the difference must
exclude zero), floors and ceilings on test metrics, a maximum regression against the
production champion (the metrics in its pin: git says who the champion is), a single-row
latency budget and a size budget. Writes every rule's value, threshold and verdict to
gate.json, prints them as a table, and exits non-zero when any rule fails.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.digest import file_sha256
from contracts.files import atomic_write_text
from contracts.modelfile import load_skops
from contracts.pin import Pin
from contracts.signature import Signature
from pipelines import declaration
from pipelines.declaration.spec import Gates
from pipelines.metric_names import higher_is_better
from pipelines.stages.features import features


@dataclass
class Rule:
    """One rule's outcome."""

    rule: str
    value: float | None
    threshold: float | None
    passed: bool
    note: str = ""

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"


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


def latency_p95_ms(model, rows: pd.DataFrame, sig: Signature) -> float:
    """p95 of single-row predict wall time, in milliseconds."""
    x = features(rows, sig)
    predict = model.predict if sig.task == "regression" else model.predict_proba
    predict(x.iloc[:1])  # warm-up: first call pays for lazy imports
    times = []
    for i in range(len(x)):
        start = time.perf_counter()
        predict(x.iloc[i:i + 1])
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 95))


def run(model_path: Path, sig: Signature, metrics: dict[str, Any], test: pd.DataFrame,
        gates: Gates, champion: Pin | None) -> dict[str, Any]:
    """Evaluate every rule; the result is what gate.json holds."""
    model = load_skops(model_path)
    rules = [baseline_rule(metrics)] if gates.beat_baseline else []
    rules += bound_rules(metrics, gates)
    rules += champion_rules(metrics, gates.max_regression, champion)
    n = min(gates.latency_rows, len(test))
    p95 = latency_p95_ms(model, test.sample(n=n, random_state=0), sig)
    rules.append(Rule("latency p95 ms (1 row)", round(p95, 3), gates.latency_p95_ms,
                      p95 <= gates.latency_p95_ms))
    size = model_path.stat().st_size / 1e6
    rules.append(Rule("model size MB", round(size, 3), gates.max_model_mb,
                      size <= gates.max_model_mb))
    return {
        "model": sig.model,
        "passed": all(r.passed for r in rules),
        "model_sha256": file_sha256(model_path),
        "champion": None if champion is None or champion.is_empty else {
            "version": champion.model.version, "sha256": champion.model.sha256},
        "rules": [asdict(r) | {"verdict": r.verdict} for r in rules],
    }


def table(result: dict[str, Any]) -> str:
    """gate.json as a readable table."""
    fmt = lambda v: "-" if v is None else f"{v:.4f}"
    lines = [f"{'rule':<28} {'value':>10} {'threshold':>10}  verdict",
             f"{'-' * 28} {'-' * 10} {'-' * 10}  -------"]
    for r in result["rules"]:
        note = f"  ({r['note']})" if r["note"] else ""
        lines.append(f"{r['rule']:<28} {fmt(r['value']):>10} {fmt(r['threshold']):>10}  "
                     f"{r['verdict']}{note}")
    lines.append(f"gate: {'PASSED' if result['passed'] else 'FAILED'}")
    return "\n".join(lines)


def read_champion(path: Path) -> Pin | None:
    return Pin.read(path) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declaration", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--champion", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    decl = declaration.load(args.declaration)
    result = run(args.model, Signature.read(args.signature), json.loads(args.metrics.read_text()),
                 pd.read_parquet(args.test), decl.gates, read_champion(args.champion))
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"gate: {decl.name}")
    print(table(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
