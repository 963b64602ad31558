from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kitpy.storage import MemoryBackend, SqliteBackend
from kitpy.storage.driver import Driver
from kitpy.storage.postgres import PostgresBackend
from kitpy.storage.views import EngineBackend

BackendFactory = Callable[[pytest.FixtureRequest], EngineBackend]

# Every driver the storage contract runs on: a name and a factory that builds a fresh,
# empty backend for one test (it asks for the fixtures it needs through the request).
# A new driver is one more line here, and every test that takes the ``backend``
# fixture then runs on it too.
BACKENDS: dict[str, BackendFactory] = {
    "memory": lambda request: MemoryBackend(),
    "sqlite": lambda request: SqliteBackend(request.getfixturevalue("db_path")),
    "postgres": lambda request: PostgresBackend(request.getfixturevalue("postgres_url")),
}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The storage contract holds on both event loops anyio supports."""
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the runtime puts a site's database: ``<site>/.kitpy/storage.sqlite3``."""
    return tmp_path / "site" / ".kitpy" / "storage.sqlite3"


@pytest.fixture(params=list(BACKENDS))
async def backend(
    request: pytest.FixtureRequest, anyio_backend: str
) -> AsyncIterator[EngineBackend]:
    """Every registered driver under the one contract suite."""
    store = BACKENDS[request.param](request)
    yield store
    await store.aclose()


@pytest.fixture
def driver(backend: EngineBackend) -> Driver:
    """The driver behind ``backend``, where a test injects a fault."""
    return backend._engine._driver
