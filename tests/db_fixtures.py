"""Fixtures for the prediction-log tests: a real throwaway PostgreSQL cluster (Debian's
postgresql package: initdb + pg_ctl on a free port, run as the `postgres` user because
PostgreSQL refuses root), and the same tests on SQLite.

Loaded as a pytest plugin (conftest.py); modules import only the helpers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import free_port

from contracts.prediction_log import migrate

PG_BIN = Path("/usr/lib/postgresql")


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(PG_BIN.glob(f"*/bin/{name}"))
    if not versions:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (make system-deps)")
    return str(versions[-1])


@dataclass
class Postgres:
    """A PostgreSQL server of the tests' own, which a test may stop and start again."""

    data: Path
    port: int
    as_user: list[str]

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, _pg_tool("pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                        *args], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._ctl("-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=100", "-l", str(self.data / "log"),
                  "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def database(self) -> str:
        """A new, empty database on this server; its SQLAlchemy URL."""
        name = f"log_{uuid.uuid4().hex[:12]}"
        subprocess.run([*self.as_user, _pg_tool("createdb"), "-h", "127.0.0.1", "-p",
                        str(self.port), "-U", "postgres", name], check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster, started once per session."""
    # Not under pytest's temporary folder: that one is private to root, and the server
    # runs as another user.
    root = Path(tempfile.mkdtemp(prefix="gitops-ml-postgres-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL never runs as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, _pg_tool("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    server = Postgres(data, free_port(), as_user)
    server.start()
    try:
        yield server
    finally:
        subprocess.run([*as_user, _pg_tool("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path) -> str:
    """A migrated, empty prediction log: a SQLite file, or a database on the test PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.db'}"
    else:
        url = request.getfixturevalue("postgres").database()
    migrate.upgrade(url)
    return url


def wait_until(check, timeout: float = 30.0, every: float = 0.05):
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(every)
