"""`mlops retrain-summary NAME...`: what a retraining pull request says about each model: how
many new labelled production rows it used and from which window, and its metrics against the
production champion's on the recent holdout (the newest collected rows, which neither trained).

The champion is scored here: its pinned bundle is fetched from the registry, checked against
its digest, and asked about the same holdout rows.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.files import atomic_write_text
from contracts.modelfile import load_skops
from contracts.signature import Signature
from pipelines import declaration
from pipelines.errors import CommandError
from pipelines.gitops import pins
from pipelines.metric_names import key_metrics
from pipelines.stages.evaluate import Outcome, score
from pipelines.stages.ingest import ORIGIN


def champion_on(repo: Path, name: str, rows: pd.DataFrame, params) -> tuple[str, dict | None]:
    """(who the champion is, its key metrics on `rows`), scored from its verified bundle."""
    pin = pins.read(repo, "production", name)
    if pin.is_empty:
        return "no champion in production yet", None
    from pipelines.registry import store

    label = f"champion v{pin.model.version}"
    try:
        info = store.get_version(name, pin.model.version, repo)
        with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
            bundle = store.verified_download(info, Path(tmp))
            model = load_skops(bundle / "model.skops")
            sig = Signature.read(bundle / "signature.json")
            return label, score(Outcome(model, sig, rows, params.threshold), params)
    except CommandError as exc:
        return f"{label} (not scored: {exc})", None


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "–"
    text = f"{entry['value']:.4f}"
    if "ci_low" in entry:
        text += f" [{entry['ci_low']:.4f}, {entry['ci_high']:.4f}]"
    return text


def summary(repo: Path, name: str) -> str:
    """The markdown of one model's retraining summary."""
    decl = declaration.load_named(repo, name)
    collect_report = repo / "reports" / name / "collect.json"
    collected = json.loads(collect_report.read_text()) if collect_report.is_file() else None
    metrics = json.loads((repo / "models" / name / "metrics.json").read_text())
    lines = [f"### {name}", ""]
    if collected is None:
        lines.append("No production rows were collected (`mlops collect` did not run).")
    else:
        window = collected["window"]
        span = f"{window['from']} to {window['to']}" if window["from"] else "no labelled rows"
        lines.append(f"Labelled production rows: **{collected['valid_rows']}** "
                     f"({collected['new_rows']} new since the last collection), predicted "
                     f"{span}; {collected['quarantined_rows']} quarantined.")
    recent = metrics.get("recent")
    if not recent:
        lines += ["", "No recent holdout: too few production rows to hold any out."]
        return "\n".join(lines) + "\n"
    test = pd.read_parquet(repo / "data" / name / "test.parquet")
    holdout = test[test[ORIGIN] == "production"].reset_index(drop=True)
    who, champion = champion_on(repo, name, holdout, decl.evaluate)
    level = f"{decl.evaluate.confidence:.0%}"
    lines += ["", f"On the recent holdout ({recent['rows']} rows predicted {recent['from']} to "
                  f"{recent['to']}; {level} bootstrap intervals):", "",
              f"| metric | this retrain | {who} |", "|---|---|---|"]
    for metric in key_metrics(decl.task):
        lines.append(f"| {metric} | {_cell(recent.get(metric))} | "
                     f"{_cell((champion or {}).get(metric))} |")
    return "\n".join(lines) + "\n"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="the retrained models")
    parser.add_argument("--out", type=Path, help="write the markdown here (default: print it)")
    parser.add_argument("--then", type=Path, dest="then",
                        help="a file whose text follows the summary in --out (the report)")
    parser.add_argument("--summary", type=Path, help="also append the summary to this file "
                                                     "($GITHUB_STEP_SUMMARY)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")


def run(args: argparse.Namespace) -> int:
    text = "## Retrained on production data\n\n" + "\n".join(
        summary(args.repo, name) for name in args.names)
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if args.out:
        tail = args.then.read_text() if args.then else ""
        atomic_write_text(args.out, text + ("\n" + tail if tail else ""))
    elif not args.summary:
        print(text)
    return 0
