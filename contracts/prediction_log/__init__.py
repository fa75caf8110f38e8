"""The prediction log and feedback, in one database shared by every replica.

The service writes every answered prediction (off the request path, in batches) and stores
each label synchronously; the pipeline reads labelled rows back (`mlops collect`), deletes old
ones (`mlops prune`) and judges live quality and A/B tests from them. SQLite by default (a file
beside the embedded registry), PostgreSQL in a cluster (`DATABASE_URL`). The schema changes only
through the Alembic migrations here, applied by a command, never on import.
"""
