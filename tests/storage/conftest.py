from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from engines import PostgresEngine

from kitpy.cluster.schema import migrate
from kitpy.storage import MemoryBackend, SqliteBackend
from kitpy.storage.postgres import PostgresBackend

Backend = MemoryBackend | SqliteBackend | PostgresBackend


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The storage contract holds on both event loops anyio supports."""
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the runtime puts a site's database: ``<site>/.kitpy/storage.sqlite3``."""
    return tmp_path / "site" / ".kitpy" / "storage.sqlite3"


@pytest.fixture(scope="session")
def postgres_storage(postgres_server: PostgresEngine) -> str:
    """One database with the cluster schema for the storage tests (emptied per test)."""
    url = postgres_server.create_database()
    with psycopg.connect(url) as conn:
        migrate(conn)
    return url


@pytest.fixture
def postgres_url(postgres_storage: str) -> Iterator[str]:
    """The storage tests' database, empty."""
    with psycopg.connect(postgres_storage, autocommit=True) as conn:
        conn.execute("TRUNCATE kitpy_kv, kitpy_alarms, kitpy_objects")
    yield postgres_storage


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, db_path: Path, anyio_backend: str
) -> AsyncIterator[Backend]:
    """Every backend under the one contract suite."""
    store: Backend
    if request.param == "memory":
        store = MemoryBackend()
    elif request.param == "sqlite":
        store = SqliteBackend(db_path)
    else:
        store = PostgresBackend(request.getfixturevalue("postgres_url"))
    yield store
    await store.aclose()
