"""Stage `gate`: the rules a model must pass before it may be registered.

Floors on test metrics, a maximum regression against the production champion (the
metrics in its pin: git says who the champion is), a single-row latency budget and a size
budget. Writes every rule's value, threshold and verdict to gate.json, prints them as a
table, and exits non-zero when any rule fails.
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
from pipelines.metric_names import HIGHER_IS_BETTER
from pipelines.params import load_params
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


def floor_rules(metrics: dict[str, Any], floors: dict[str, float]) -> list[Rule]:
    rules = []
    for name, floor in (floors or {}).items():
        if name not in HIGHER_IS_BETTER:
            raise ValueError(f"gates.floors.{name}: only {', '.join(HIGHER_IS_BETTER)} have floors")
        value = float(metrics[name]["value"])
        rules.append(Rule(f"floor {name}", value, float(floor), value >= float(floor)))
    return rules


def champion_rules(metrics: dict[str, Any], max_regression: dict[str, float],
                   champion: Pin | None) -> list[Rule]:
    """Challenger may be at most `max_regression` worse than the champion's pinned metrics."""
    rules = []
    for name, allowed in (max_regression or {}).items():
        value = float(metrics[name]["value"])
        label = f"vs champion {name}"
        if champion is None or champion.is_empty:
            rules.append(Rule(label, value, None, True, "no champion in production yet"))
        elif name not in champion.metrics:
            rules.append(Rule(label, value, None, True,
                              f"champion v{champion.model.version} has no {name} in its pin"))
        else:
            threshold = float(champion.metrics[name]) - float(allowed)
            rules.append(Rule(label, value, round(threshold, 6), value >= threshold,
                              f"champion v{champion.model.version} = {champion.metrics[name]:.4f}"))
    return rules


def latency_p95_ms(model, rows: pd.DataFrame) -> float:
    """p95 of single-row predict_proba wall time, in milliseconds."""
    x = features(rows)
    model.predict_proba(x.iloc[:1])  # warm-up: first call pays for lazy imports
    times = []
    for i in range(len(x)):
        start = time.perf_counter()
        model.predict_proba(x.iloc[i:i + 1])
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 95))


def run(model_path: Path, metrics: dict[str, Any], test: pd.DataFrame, gates: dict[str, Any],
        champion: Pin | None) -> dict[str, Any]:
    """Evaluate every rule; the result is what gate.json holds."""
    model = load_skops(model_path)
    rules = floor_rules(metrics, gates.get("floors", {}))
    rules += champion_rules(metrics, gates.get("max_regression", {}), champion)
    n = min(int(gates.get("latency_rows", 200)), len(test))
    p95 = latency_p95_ms(model, test.sample(n=n, random_state=0))
    budget = float(gates["latency_p95_ms"])
    rules.append(Rule("latency p95 ms (1 row)", round(p95, 3), budget, p95 <= budget))
    size = model_path.stat().st_size / 1e6
    rules.append(Rule("model size MB", round(size, 3), float(gates["max_model_mb"]),
                      size <= float(gates["max_model_mb"])))
    return {
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
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--champion", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    result = run(args.model, json.loads(args.metrics.read_text()), pd.read_parquet(args.test),
                 load_params(args.params)["gates"], read_champion(args.champion))
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
