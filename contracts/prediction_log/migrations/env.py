"""Alembic environment: the URL comes from the caller (contracts.prediction_log.migrate)."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from contracts.prediction_log.schema import metadata

url = context.config.get_main_option("sqlalchemy.url")
if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        # SQLite alters tables by copying them: batch mode does that for it.
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
