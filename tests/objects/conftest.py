from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import pytest

from kitpy.objects import DurableObject, ObjectSystem
from kitpy.storage import MemoryBackend, StorageBackend

RunObjects = Callable[..., AbstractAsyncContextManager[ObjectSystem]]
Until = Callable[[Callable[[], bool]], Awaitable[None]]


#: Where the objects of a test run: in this process, on a second cluster node, or on
#: one node on PostgreSQL (its storage fenced by its real leases).
MODES = ("one-process", "two-nodes", "postgres-node")
#: Seconds of the PostgreSQL node's lease; it never loses it during a test.
LEASE_TTL = 5.0
_PREFIXES = itertools.count()


@pytest.fixture(params=MODES)
def run_objects(request: pytest.FixtureRequest) -> RunObjects:
    """``async with run_objects({"rooms": Room}, idle_timeout=...) as system:``.

    Every test that uses it runs three times: on one process; as two cluster nodes
    over a real NATS server, where ``system`` is the *front* node and the objects live
    on the other (``fake_cluster.FrontView``: every event crosses NATS; what the test
    inspects -- live instances, armed alarms -- is the owner's); and as one cluster
    node on a real PostgreSQL: claims and leases of a ``PostgresPlacement``, storage
    fenced by them (a test that passes its own ``backend`` runs on it there). A
    cluster needs asyncio, so the Trio runs of the object tests are one-process only.
    """
    if request.param == "two-nodes":
        return _two_nodes(request.getfixturevalue("nats_server").url)
    if request.param == "postgres-node":
        return _postgres_node(
            request.getfixturevalue("postgres_url"), request.getfixturevalue("nats_server").url
        )

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


def _two_nodes(url: str) -> RunObjects:
    from fake_cluster import FrontView, Table, cluster

    @asynccontextmanager
    async def run(
        classes: Mapping[str, type[DurableObject]],
        *,
        backend: StorageBackend | None = None,
        env: Any = None,
        **options: Any,
    ) -> AsyncIterator[Any]:
        backends = {"owner": backend} if backend is not None else None
        async with cluster(
            url,
            ["front", "owner"],
            classes,
            table=Table(default="owner"),
            backends=backends,
            env=env,
            **options,
        ) as (_, (front, owner)):
            yield FrontView(front.system, owner.system)

    return run


def _postgres_node(url: str, nats: str) -> RunObjects:
    from kitpy.cluster.placement import PostgresPlacement
    from kitpy.cluster.remote import RemoteObjects
    from kitpy.cluster.transport import Transport, site_prefix
    from kitpy.storage.postgres import PostgresBackend

    @asynccontextmanager
    async def run(
        classes: Mapping[str, type[DurableObject]],
        *,
        backend: StorageBackend | None = None,
        env: Any = None,
        **options: Any,
    ) -> AsyncIterator[ObjectSystem]:
        # Composed as kitpy.cluster.node does, with the test's ObjectSystem options.
        transport = Transport(nats, f"{site_prefix(url)}.t{next(_PREFIXES)}", "node-1")
        async with PostgresPlacement(
            url, "node-1", transport.inbox, lease_ttl=LEASE_TTL
        ) as placement:
            store: StorageBackend
            if backend is None:
                store = fenced = PostgresBackend(url, fencing=placement)
                placement._flush = fenced.sync
            else:
                store = backend
            remote = RemoteObjects(transport, placement, retry_for=LEASE_TTL)
            system = ObjectSystem(store, classes, env, router=remote, **options)
            remote.attach(system)
            await transport.connect(remote.on_frame)
            try:
                async with system.run(), remote:
                    yield system
            finally:
                await transport.close()
                if backend is None:
                    await store.aclose()

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the runs that cannot be: a cluster node needs asyncio, never Trio; a test
    marked ``one_process`` checks what only holds within one process."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        on_cluster = params.get("run_objects") in ("two-nodes", "postgres-node")
        impossible = on_cluster and (
            params.get("anyio_backend", "asyncio") != "asyncio"
            or item.get_closest_marker("one_process") is not None
        )
        (dropped if impossible else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def until() -> Until:
    """Wait (at most 5 s) until ``predicate()`` is true."""

    async def wait(predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(5):
            while not predicate():
                await anyio.sleep(0.005)

    return wait
