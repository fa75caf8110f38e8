"""`mlops db upgrade|status`: the prediction log's database and its schema.

DATABASE_URL when set (PostgreSQL in a cluster); otherwise the embedded SQLite file beside the
embedded registry, `<repo>/.mlflow/predictions.db` (git-ignored), which `mlops serve` uses.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipelines.errors import CommandError

EMBEDDED = Path(".mlflow") / "predictions.db"


def url(repo: Path | None = None) -> str:
    """DATABASE_URL, or the embedded SQLite file of `repo`."""
    chosen = os.environ.get("DATABASE_URL", "").strip()
    if chosen:
        return chosen
    return f"sqlite:///{(Path(repo or '.').resolve() / EMBEDDED)}"


def require_current(database: str) -> None:
    """Refuse a database whose schema is not the code's (run `mlops db upgrade`)."""
    # SQLAlchemy and Alembic load only when a database is used: `mlops status` asks url() of
    # every checkout, and most have no prediction log.
    from contracts.prediction_log import migrate
    from contracts.prediction_log.__main__ import redact

    try:
        current = migrate.current(database)
    except Exception as exc:  # every driver raises its own kind
        raise CommandError(f"cannot reach the prediction log at {redact(database)}: {exc}") \
            from None
    if current != migrate.head():
        raise CommandError(f"the prediction log at {redact(database)} is at schema "
                           f"{current or 'none'}, the code needs {migrate.head()}: run "
                           "`mlops db upgrade`")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("upgrade", "status"))
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")


def run(args: argparse.Namespace) -> int:
    from contracts.prediction_log import migrate
    from contracts.prediction_log.__main__ import redact

    database = url(args.repo)
    if args.action == "upgrade":
        before, after = migrate.upgrade(database)
        print(f"{redact(database)}: schema {before or 'empty'} -> {after}")
        return 0
    current = migrate.current(database)
    print(f"{redact(database)}: schema {current or 'empty'}, code expects {migrate.head()}")
    return 0 if current == migrate.head() else 1
