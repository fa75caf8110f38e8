"""`python -m contracts.prediction_log upgrade|status|prune`: the prediction log's schema and
retention, from the service image (a Kubernetes Job or init container, a CronJob).

The database is DATABASE_URL (or --url)."""
from __future__ import annotations

import argparse
import os
import sys

from contracts.prediction_log import migrate
from contracts.prediction_log.store import PredictionLog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.prediction_log",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("upgrade", "status", "prune"))
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL"),
                        help="SQLAlchemy URL (default: DATABASE_URL)")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no database: set DATABASE_URL or pass --url")
    where = redact(args.url)
    if args.action == "upgrade":
        before, after = migrate.upgrade(args.url)
        print(f"{where}: schema {before or 'empty'} -> {after}")
    elif args.action == "status":
        current, head = migrate.current(args.url), migrate.head()
        print(f"{where}: schema {current or 'empty'}, code expects {head}")
        return 0 if current == head else 1
    else:
        log = PredictionLog(args.url)
        counts = log.prune()
        log.close()
        print(f"{where}: deleted {counts['predictions']} expired predictions "
              f"({counts['labelled']} labelled)")
    return 0


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
