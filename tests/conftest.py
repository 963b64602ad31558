from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

# The real PostgreSQL and NATS servers (tests/cluster/engines.py) start once per test
# session, for the cluster tests and for the storage contract tests on PostgreSQL.
sys.path.insert(0, str(Path(__file__).parent / "cluster"))
from engines import NatsEngine, PostgresEngine

from kitpy.cluster.schema import migrate


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresEngine]:
    """``KITPY_TEST_POSTGRES``, or an embedded PostgreSQL started on first use."""
    engine = PostgresEngine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsEngine]:
    """``KITPY_TEST_NATS``, or the nats-server binary on a free 127.0.0.1 port."""
    engine = NatsEngine.start()
    yield engine
    engine.stop()


@pytest.fixture
def cluster_db(postgres_server: PostgresEngine) -> Iterator[str]:
    """The URL of a new, empty database of its own, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def postgres_storage(postgres_server: PostgresEngine) -> str:
    """One database with the cluster schema for the storage and object tests (emptied per test)."""
    url = postgres_server.create_database()
    with psycopg.connect(url) as conn:
        migrate(conn)
    return url


@pytest.fixture
def postgres_url(postgres_storage: str) -> Iterator[str]:
    """The storage and object tests' shared database, emptied."""
    with psycopg.connect(postgres_storage, autocommit=True) as conn:
        conn.execute("TRUNCATE kitpy_kv, kitpy_alarms, kitpy_objects, kitpy_nodes")
    yield postgres_storage
