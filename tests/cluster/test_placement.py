"""Placement on a real PostgreSQL: claims, leases, the local deadline, fencing, release, alarms.

Two placements in one process stand for two nodes; a heartbeat is "paused" by making
its statement hang, which is what a SIGSTOPped process or a partition looks like
from the node's side. (The same with real processes and signals: test_failover.py.)
"""

from __future__ import annotations

import inspect
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import psycopg
import pytest
from engines import PostgresEngine

from kitpy.cluster.placement import Local, PostgresPlacement, Remote, sweep_alarms
from kitpy.errors import StorageError
from kitpy.storage.postgres import PostgresBackend

pytestmark = pytest.mark.anyio

TTL = 0.9  # seconds: short, so that a lease runs out quickly
WAIT = 20.0  # seconds any wait below may take at most on a loaded machine


@asynccontextmanager
async def node(url: str, name: str, ttl: float = TTL) -> AsyncIterator[PostgresPlacement]:
    async with PostgresPlacement(url, name, f"inbox.{name}", lease_ttl=ttl) as placement:
        yield placement


def pause_heartbeats(placement: PostgresPlacement) -> Callable[[], None]:
    """Make the heartbeat statement hang until the returned function is called."""
    real = placement._query
    resume = anyio.Event()

    async def query(sql: str, params: Any, *, claim: bool = False) -> list[tuple[Any, ...]]:
        if "UPDATE kitpy_nodes SET heartbeat_at" in sql:
            await resume.wait()
        return await real(sql, params, claim=claim)

    placement._query = query  # type: ignore[method-assign]
    return resume.set


async def eventually(check: Callable[[], Any]) -> None:
    """Wait until ``check()`` (a plain or an async function) is true."""
    with anyio.fail_after(WAIT):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(0.05)


async def test_racing_first_calls_give_each_id_one_owner(cluster_db: str) -> None:
    ids = [f"id-{n}" for n in range(40)]
    answers: dict[str, list[Local | Remote]] = {}
    async with node(cluster_db, "a") as a, node(cluster_db, "b") as b:

        async def locate(placement: PostgresPlacement, object_id: str) -> None:
            await anyio.sleep(random.random() / 100)
            owner = await placement.locate("rooms", object_id)
            answers.setdefault(object_id, []).append(owner)

        async with anyio.create_task_group() as tg:
            for object_id in ids:
                for _ in range(3):
                    tg.start_soon(locate, a, object_id)
                    tg.start_soon(locate, b, object_id)
        for object_id in ids:
            held = [p.node for p in (a, b) if p.held_epoch("rooms", object_id) is not None]
            assert len(held) == 1, object_id
            owner = held[0]
            assert {type(x) for x in answers[object_id]} == {Local, Remote}
            assert all(x.node == owner for x in answers[object_id] if isinstance(x, Remote))
            assert all(
                x.inbox == f"inbox.{owner}" for x in answers[object_id] if isinstance(x, Remote)
            )
            assert len({x.epoch for x in answers[object_id] if isinstance(x, Local)}) == 1
        assert await a.live_nodes() == {"a": "inbox.a", "b": "inbox.b"}


async def test_a_paused_heartbeat_loses_the_lease_and_its_writes(cluster_db: str) -> None:
    async with node(cluster_db, "a") as a, node(cluster_db, "b") as b:
        backend = PostgresBackend(cluster_db, fencing=a)
        assert await a.locate("rooms", "x") == Local(1)
        storage = backend.storage("rooms", "x")
        await storage.put("n", 1)
        lost: list[tuple[str, str]] = []
        a.on_lost(lambda ns, oid: lost.append((ns, oid)))
        resume = pause_heartbeats(a)
        await eventually(lambda: lost == [("rooms", "x")])
        assert a.held_epoch("rooms", "x") is None
        with pytest.raises(StorageError, match="lost ownership"):
            await storage.put("n", 2)  # past the deadline: refused even before a takeover

        async def taken() -> bool:
            return isinstance(await b.locate("rooms", "x"), Local)

        await eventually(taken)  # once a's lease expired in the database
        assert b.held_epoch("rooms", "x") == 2
        resume()
        # a registers again (its lease had expired) and sees b as the owner.
        await eventually(lambda: a.valid)
        assert await a.locate("rooms", "x") == Remote("b", "inbox.b")
        with pytest.raises(StorageError, match="lost ownership"):
            await storage.put("n", 3)
        await backend.aclose()
        fresh = PostgresBackend(cluster_db)
        assert await fresh.storage("rooms", "x").get("n") == 1
        await fresh.aclose()


async def test_writes_of_an_earlier_tenure_are_refused(cluster_db: str) -> None:
    async with node(cluster_db, "a") as a:
        backend = PostgresBackend(cluster_db, fencing=a)
        assert await a.locate("rooms", "x") == Local(1)
        old = backend.storage("rooms", "x")  # made under epoch 1
        resume = pause_heartbeats(a)
        await eventually(lambda: a.held_epoch("rooms", "x") is None)
        resume()
        await eventually(lambda: a.valid)
        assert await a.locate("rooms", "x") == Local(2)  # this node again, a new tenure
        with pytest.raises(StorageError, match="issued at epoch 1, this node holds 2"):
            await old.put("n", "stale")
        await backend.storage("rooms", "x").put("n", "fresh")
        assert await backend.storage("rooms", "x").get("n") == "fresh"
        await backend.aclose()


async def test_shutdown_hands_objects_over_at_once(cluster_db: str) -> None:
    async with node(cluster_db, "b", ttl=60.0) as b:
        dead: list[str] = []
        b.on_node_dead(dead.append)
        async with node(cluster_db, "a", ttl=60.0) as a:
            assert await a.locate("rooms", "x") == Local(1)
            assert await b.locate("rooms", "x") == Remote("a", "inbox.a")
            await b._watch_nodes()
        # a said goodbye: no wait for its 60 s lease.
        assert await b.locate("rooms", "x") == Local(2)
        await b._watch_nodes()
        assert dead == ["a"]


async def test_an_idle_object_is_released_after_its_writes(cluster_db: str) -> None:
    async with node(cluster_db, "a", ttl=60.0) as a, node(cluster_db, "b", ttl=60.0) as b:
        backend = PostgresBackend(cluster_db, fencing=a)
        a._flush = backend.sync
        assert await a.locate("rooms", "x") == Local(1)
        backend.storage("rooms", "x").put("n", 1)  # not awaited: the release flushes it
        a.release_local("rooms", "x")

        async def moved() -> bool:
            return isinstance(await b.locate("rooms", "x"), Local)

        await eventually(moved)
        assert await b.locate("rooms", "x") == Local(2)
        reader = PostgresBackend(cluster_db)
        assert await reader.storage("rooms", "x").get("n") == 1
        await reader.aclose()
        await backend.aclose()


async def test_alarms_of_ownerless_objects_are_claimed_and_armed(cluster_db: str) -> None:
    async with node(cluster_db, "b") as b:
        with psycopg.connect(cluster_db, autocommit=True) as conn:
            conn.execute("INSERT INTO kitpy_nodes VALUES ('dead', 'i', now(), now(), now())")
            conn.execute("INSERT INTO kitpy_objects VALUES ('rooms', 'x', 'dead', 4)")
            conn.execute("INSERT INTO kitpy_objects VALUES ('rooms', 'y', 'b', 1)")
            conn.execute("INSERT INTO kitpy_alarms VALUES ('rooms', 'x', 1.0), ('rooms', 'z', 2.0)")
            conn.execute("INSERT INTO kitpy_alarms VALUES ('rooms', 'later', 4e9)")
        assert await b.orphan_alarms() == [("rooms", "x", 1.0), ("rooms", "z", 2.0)]
        armed: list[tuple[str, str]] = []

        async def arm(namespace: str, object_id: str) -> None:
            armed.append((namespace, object_id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: sweep_alarms(b, arm, every=0.05))
            await eventually(lambda: len(armed) >= 2)
            tg.cancel_scope.cancel()
        assert armed[:2] == [("rooms", "x"), ("rooms", "z")]
        assert b.held_epoch("rooms", "x") == 5 and b.held_epoch("rooms", "z") == 1
        async with node(cluster_db, "c") as c:
            assert await c.orphan_alarms() == []  # held by a live node now
        assert len(await b.orphan_alarms()) == 2  # b's own: armed again is a no-op


async def test_a_database_that_goes_away_fails_writes_and_the_node_recovers(
    cluster_db: str, postgres_server: PostgresEngine
) -> None:
    async with node(cluster_db, "a", ttl=60.0) as a:
        backend = PostgresBackend(cluster_db, fencing=a)
        assert await a.locate("rooms", "x") == Local(1)
        storage = backend.storage("rooms", "x")
        await storage.put("n", 1)
        assert await storage.get("n") == 1
        # Every session of the database is cut, as a restart of the server does.
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (urlsplit(cluster_db).path.lstrip("/"),),
            )
        with pytest.raises(StorageError, match="writing failed"):
            await storage.put("n", 2)  # not acknowledged
        with pytest.raises(StorageError):
            await a.locate("rooms", "y")
        with pytest.raises(StorageError):
            await a.live_nodes()
        # The next calls connect again.
        await storage.put("n", 3)
        assert await storage.get("n") == 3
        assert await a.locate("rooms", "y") == Local(1)
        assert await a.live_nodes() == {"a": "inbox.a"}
        await backend.aclose()
