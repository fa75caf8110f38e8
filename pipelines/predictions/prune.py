"""`mlops prune`: delete the predictions whose model's declared retention has run out.

Each prediction carries its expiry (the model's `production.retention_days` when it was
answered), so this needs no configuration; the cluster runs the same deletion as a CronJob
(`python -m contracts.prediction_log prune`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from contracts.prediction_log.__main__ import redact
from contracts.prediction_log.store import PredictionLog
from pipelines.predictions import database


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")


def run(args: argparse.Namespace) -> int:
    url = database.url(args.repo)
    database.require_current(url)
    log = PredictionLog(url)
    counts = log.prune()
    log.close()
    print(f"{redact(url)}: deleted {counts['predictions']} expired predictions "
          f"({counts['labelled']} labelled)")
    return 0
