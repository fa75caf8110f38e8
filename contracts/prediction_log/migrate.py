"""Applying the schema: `upgrade(url)` runs the Alembic migrations up to head; `status(url)`
says whether a database is at head (what the service checks before logging to it)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config("sqlite://")).get_current_head()


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def current(url: str) -> str | None:
    """The revision the database at `url` is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return None  # asking must not create the file
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring the database at `url` to head; return (revision before, revision after)."""
    from alembic import command

    if (path := _sqlite_file(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    before = current(url)
    command.upgrade(_config(url), "head")
    return before, head()
