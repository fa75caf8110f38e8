"""The live-slices section of `mlops status`: per pinned version, each declared slice's labelled
rows and live metrics from the prediction log, judged by its declaration's slice rules.

Shown when a prediction log is at hand: DATABASE_URL, or the embedded SQLite file when it exists
(a status never creates a database). One bounded query per pinned model (its newest labels in
that environment, as the service reads them), so the section stays cheap however long the log
is. The rules are those of the model's declaration in the work tree: the ones the version in
service was gated by unless the declaration changed since.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.pin import Pin
from pipelines.gitops import pins

if TYPE_CHECKING:
    from contracts.prediction_log.live_slices import SliceFigure
    from contracts.signature import Signature

# The service's default FEEDBACK_WINDOW_ROWS: the same rows the service's gauges are over.
WINDOW = 1000
COLUMNS = ("environment", "model", "version", "slice", "rows", "live", "rule")


def database_at_hand(repo: Path) -> str | None:
    """DATABASE_URL, or the embedded prediction log of `repo` if it exists; else None."""
    from pipelines.predictions import database

    if os.environ.get("DATABASE_URL", "").strip():
        return database.url(repo)
    embedded = Path(repo).resolve() / database.EMBEDDED
    return database.url(repo) if embedded.is_file() else None


def _rule(figure: SliceFigure, signature: Signature) -> str:
    from contracts.prediction_log.live_slices import verdict

    rules = signature.slices
    judged = [m for m in figure.metrics if m in rules.floors or m in rules.ceilings]
    if not judged:
        return "-"
    if figure.rows < rules.min_rows:
        return f"too few rows (< {rules.min_rows})"
    said = []
    for metric in judged:
        v = verdict(figure, metric, signature)
        if v == "below floor":
            said.append(f"{metric} BELOW FLOOR {rules.floors[metric]:g}")
        elif v == "above ceiling":
            said.append(f"{metric} ABOVE CEILING {rules.ceilings[metric]:g}")
    return "; ".join(said) or "ok"


def slice_rows(repo: Path, database: str, window: int = WINDOW) -> list[dict[str, str]]:
    """One row per pinned version and declared slice value, as the section shows it."""
    # Imported here: NumPy and SQLAlchemy cost `mlops status` a third of a second, and most
    # checkouts have no prediction log to read.
    from contracts.prediction_log.live_slices import live_slices
    from contracts.prediction_log.store import PredictionLog
    from pipelines import declaration

    out: list[dict[str, str]] = []
    log = PredictionLog(database)
    try:
        for env in pins.environments(repo):
            for model in pins.models(repo, env):
                try:
                    pin = pins.read(repo, env, model)
                    signature = declaration.load_named(repo, model).signature()
                except ValueError:  # an invalid pin or declaration: the table above says so
                    continue
                if pin.is_empty or signature.slices is None:
                    continue
                found = live_slices(log, {v: signature for v in _versions(pin)}, window, env)
                for version, figures in found.items():
                    for f in figures:
                        out.append({
                            "environment": env, "model": model, "version": f"v{version}",
                            "slice": f"{f.column}={f.value}", "rows": str(f.rows),
                            "live": " ".join(f"{m}={v:.3f}" for m, v in f.metrics.items()
                                             if not math.isnan(v)) or "-",
                            "rule": _rule(f, signature)})
    finally:
        log.close()
    return out


def _versions(pin: Pin) -> list[int]:
    return [pin.model.version] + ([pin.ab.b.model.version] if pin.is_ab else [])


def section(repo: Path, database: str | None = None, window: int = WINDOW) -> str | None:
    """The printable section (None when no prediction log is at hand, or nothing is sliced)."""
    database = database or database_at_hand(repo)
    if database is None:
        return None
    from contracts.prediction_log.__main__ import redact
    from pipelines.errors import CommandError
    from pipelines.predictions import database as db

    try:
        db.require_current(database)
        rows = slice_rows(repo, database, window)
    except CommandError as exc:
        return f"live slices: not shown ({exc})"
    except Exception as exc:  # every driver raises its own kind
        message = " ".join(str(exc).split())
        if password := _password(database):
            message = message.replace(password, "***")
        return f"live slices: not shown ({type(exc).__name__}: {message[:200]})"
    if not rows:
        return None
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS}
    line = lambda r: "  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip()
    head = (f"LIVE SLICES (newest {window} labels per model and environment in "
            f"{redact(database)}; rules of models/<name>/model.yaml)")
    return "\n".join([head, line({c: c.upper() for c in COLUMNS}), *(line(r) for r in rows)])


def _password(database: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(database).password
