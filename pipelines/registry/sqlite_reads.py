"""Read-only registry lookups straight from an MLflow SQLite store, without loading MLflow.

Any use of MLflow's API runs `mlflow/__init__` (its GenAI, dataset and gateway modules, pandas,
FastAPI: about 2 s of CPU) and, on a SQLite store, SQLAlchemy, Alembic and MLflow's ORM models
(about 1.4 s more), whatever is asked. `mlops status` and the checks of `mlops promote` only read
a version, its tags and run, and a model's aliases: a few rows. This module reads them with the
standard library, for the schema revisions listed in KNOWN_SCHEMAS only (the tables of a newer
MLflow may mean something else). Anything it cannot answer for certain (another revision, an
absent file, a missing run, MLflow's workspaces turned on) raises `Unreadable`, and the caller
asks MLflow itself, so the answer never differs from MLflow's, only its cost.
"""
from __future__ import annotations

import math
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

# Alembic revisions of MLflow's store whose registry and run tables this module reads as MLflow
# does (tests/test_registry_reads.py fails when the installed MLflow creates another one).
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})
# The workspace every registry row belongs to unless MLflow's workspaces are enabled.
DEFAULT_WORKSPACE = "default"
# With these set, MLflow picks the rows of another workspace (or checks access): ask MLflow.
WORKSPACE_SETTINGS = ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")
# MLflow's marker of a version deleted from the registry (its row stays, redacted).
DELETED_STAGE = "Deleted_Internal"


class Unreadable(Exception):
    """This store cannot be read here with certainty; ask MLflow."""


@dataclass
class VersionRow:
    """A registered version as MLflow's get_model_version and get_run return it."""

    name: str
    version: int
    source: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


def database(uri: str) -> Path | None:
    """The file of a `sqlite:///` tracking URI, or None for any other store."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    path = Path(uri[len("sqlite:///"):])
    return path if path.is_absolute() else Path.cwd() / path


def _connect(db: Path) -> sqlite3.Connection:
    if any(os.environ.get(name) for name in WORKSPACE_SETTINGS):
        raise Unreadable("MLflow workspaces are configured")
    if not db.is_file():
        raise Unreadable(f"{db} does not exist")  # MLflow creates it
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise Unreadable(str(exc)) from exc
    try:
        revisions = {r for (r,) in conn.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.Error as exc:
        conn.close()
        raise Unreadable(str(exc)) from exc
    if not revisions or not revisions <= KNOWN_SCHEMAS:
        conn.close()
        raise Unreadable(f"schema revision {sorted(revisions)} is not one this module knows")
    return conn


def model_version(db: Path, name: str, version: int) -> VersionRow | None:
    """Version `version` of `name` with its tags, aliases and run data; None when the registry
    holds no such version (MLflow's RESOURCE_DOES_NOT_EXIST)."""
    conn = _connect(db)
    try:
        rows = conn.execute(
            "SELECT source, run_id FROM model_versions WHERE name = ? AND version = ? "
            "AND current_stage != ? AND workspace = ?",
            (name, version, DELETED_STAGE, DEFAULT_WORKSPACE)).fetchall()
        if not rows:
            return None
        if len(rows) > 1:
            raise Unreadable(f"{len(rows)} rows for {name} v{version}")
        source, run_id = rows[0]
        row = VersionRow(name=name, version=version, source=source, run_id=run_id or "")
        row.tags = dict(conn.execute(
            "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ? "
            "AND workspace = ?", (name, version, DEFAULT_WORKSPACE)))
        row.aliases = [alias for (alias,) in conn.execute(
            "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ? "
            "AND workspace = ?", (name, version, DEFAULT_WORKSPACE))]
        if row.run_id:
            if conn.execute("SELECT 1 FROM runs WHERE run_uuid = ?", (run_id,)).fetchone() is None:
                raise Unreadable(f"run {run_id} is missing")  # MLflow's get_run raises
            row.params = dict(conn.execute(
                "SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
            row.metrics = {key: math.nan if is_nan else value for key, value, is_nan in
                           conn.execute("SELECT key, value, is_nan FROM latest_metrics "
                                        "WHERE run_uuid = ?", (run_id,))}
        return row
    except sqlite3.Error as exc:
        raise Unreadable(str(exc)) from exc
    finally:
        conn.close()


def aliases(db: Path, name: str) -> dict[str, int] | None:
    """Alias -> version of registered model `name`; None when no such model is registered."""
    conn = _connect(db)
    try:
        if conn.execute("SELECT 1 FROM registered_models WHERE name = ? AND workspace = ?",
                        (name, DEFAULT_WORKSPACE)).fetchone() is None:
            return None
        return {alias: int(version) for alias, version in conn.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ? "
            "AND workspace = ?", (name, DEFAULT_WORKSPACE))}
    except sqlite3.Error as exc:
        raise Unreadable(str(exc)) from exc
    finally:
        conn.close()

