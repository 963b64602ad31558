from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kitpy.storage import MemoryBackend, SqliteBackend

Backend = MemoryBackend | SqliteBackend


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The storage contract holds on both event loops anyio supports."""
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the runtime puts a site's database: ``<site>/.kitpy/storage.sqlite3``."""
    return tmp_path / "site" / ".kitpy" / "storage.sqlite3"


@pytest.fixture(params=["memory", "sqlite"])
async def backend(
    request: pytest.FixtureRequest, db_path: Path, anyio_backend: str
) -> AsyncIterator[Backend]:
    """Every backend under the one contract suite."""
    store: Backend = MemoryBackend() if request.param == "memory" else SqliteBackend(db_path)
    yield store
    await store.aclose()
