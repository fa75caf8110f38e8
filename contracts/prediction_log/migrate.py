"""Applying the schema: `upgrade(url)` runs the Alembic migrations up to head; `status(url)`
says whether a database is at head (what the service checks before logging to it).

In a cluster every service pod runs `upgrade` before it starts (an init container), so several
may run it at once: on PostgreSQL they take turns on an advisory lock, and all but the first find
the schema at head and do nothing.

Migrations only ever add (tables, nullable columns, indexes), so an older image keeps working on
a newer schema: rolling the service image back after a migration is safe, and `upgrade` from
that older image finds a revision it does not know and leaves the schema alone."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_lock key of the prediction log's migrations (any constant the database's other
# users do not take; this one spells "gitopsml" in ASCII).
MIGRATION_LOCK = 0x6769746F70736D6C
# What providers hand out (postgres://, postgresql://) names no driver, and SQLAlchemy's default
# (psycopg2) is not installed: the URL is read as psycopg 3's.
_BARE_POSTGRES = ("postgres://", "postgresql://")


def sqlalchemy_url(url: str) -> str:
    """`url` with the driver this project installs: postgres:// and postgresql:// become
    postgresql+psycopg://; anything else is returned as it is."""
    for prefix in _BARE_POSTGRES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config("sqlite://")).get_current_head()


def known(revision: str) -> bool:
    """Whether this code's migrations hold `revision`."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config("sqlite://")).get_revision(revision) is not None \
        if revision else True


def _upgrade(url: str) -> str | None:
    """Upgrade to head unless a newer code already migrated further; return the revision before."""
    from alembic import command
    from alembic.util.exc import CommandError

    before = current(url)
    try:
        newer = before is not None and not known(before)
    except CommandError:
        newer = True
    if not newer:
        command.upgrade(_config(url), "head")
    return before


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def current(url: str) -> str | None:
    """The revision the database at `url` is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return None  # asking must not create the file
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring the database at `url` to head; return (revision before, revision after)."""
    if (path := _sqlite_file(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if not sqlalchemy_url(url).startswith("postgresql"):
        before = _upgrade(url)
        return before, current(url) or head()
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            # Held on a connection of its own for the whole migration (a session lock, outside
            # any transaction: released by the unlock below, or by the server if this dies).
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                before = _upgrade(url)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        engine.dispose()
    return before, current(url) or head()
