from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import pytest

from kitpy.objects import DurableObject, ObjectSystem
from kitpy.storage import MemoryBackend, StorageBackend

RunObjects = Callable[..., AbstractAsyncContextManager[ObjectSystem]]
Until = Callable[[Callable[[], bool]], Awaitable[None]]


@pytest.fixture
def run_objects() -> RunObjects:
    """``async with run_objects({"rooms": Room}, idle_timeout=...) as system:``."""

    @asynccontextmanager
    async def run(
        classes: Mapping[str, type[DurableObject]],
        *,
        backend: StorageBackend | None = None,
        env: Any = None,
        **options: Any,
    ) -> AsyncIterator[ObjectSystem]:
        system = ObjectSystem(backend or MemoryBackend(), classes, env, **options)
        async with system.run():
            yield system

    return run


@pytest.fixture
def until() -> Until:
    """Wait (at most 5 s) until ``predicate()`` is true."""

    async def wait(predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(5):
            while not predicate():
                await anyio.sleep(0.005)

    return wait
