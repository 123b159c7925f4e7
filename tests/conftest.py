"""Fixtures shared by every test directory: a real PostgreSQL server (Debian's postgresql-15)
for the whole session, and a fresh database per test (the KME pair's store and replicas, the
network node's store and replicas). Skipped, with the reason, only where psycopg or the
server binaries are missing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from qkd.delivery.postgres_server import TemporaryPostgres, find_bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """initdb on a temporary directory, postgres on a private unix socket; stopped at the end."""
    pytest.importorskip("psycopg", reason="psycopg (the postgres extra) is not installed")
    if find_bindir() is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, postgres): install Debian's postgresql-15,"
            " as .ci/run does, or set QKD_PG_BINDIR"
        )
    server = TemporaryPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: TemporaryPostgres) -> str:
    """The URL of a new, empty database on the session's server."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
