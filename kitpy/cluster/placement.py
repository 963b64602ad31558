"""Who owns which object: node leases and object claims with fencing epochs, in PostgreSQL.

Theory of operation
-------------------

Nodes. A node registers a row in ``kitpy_nodes`` and heartbeats every ``lease_ttl / 3``:
``expires_at = now() + lease_ttl`` on the database clock (never a node's wall clock).
A node whose ``expires_at`` has passed is dead, and its objects may be claimed.

Claims. :meth:`PostgresPlacement.locate` of an object this node does not hold runs
one atomic statement: take the ``kitpy_objects`` row if there is none, it has no
owner, its owner is dead, or its owner is this node; every claim bumps ``epoch``.
Otherwise it answers the live owner (:class:`Remote`). Concurrent locates of one id
on one node share a claim.

Fencing. The epochs this node holds are what :meth:`held_epoch` answers to the
PostgreSQL storage driver, which checks them against ``kitpy_objects`` inside every
write transaction (kitpy.storage.postgres). Storage views stamp their writes with
the epoch they were made under, so an instance of an earlier tenure cannot write
after this node claimed the object again.

The local deadline. After each successful heartbeat the node may act until
``sent + lease_ttl - margin`` (monotonic clock; ``sent`` is when the heartbeat left,
so the database's ``expires_at`` is later still). Past it -- the process was paused
(SIGSTOP), the database is unreachable, the network split -- :meth:`held_epoch`
answers None at once (no write commits), and the heartbeat task drops every object
(the ``on_lost`` callbacks: the node evicts their instances, their sockets get 1012).
A heartbeat that finds the node's own lease already expired also drops everything:
other nodes may have taken the objects over. Objects are claimed again (with a new
epoch) at their next event.

Shutdown. :meth:`aclose` gives up every lease (``owner = NULL``) and removes the
node's row, so other nodes claim the objects at their next event with no wait.

Alarms. Owners arm their objects' alarms; :meth:`orphan_alarms` lists due alarms of
objects no live node holds (and of this node's own), which :func:`sweep_alarms`
claims and arms here (arming one armed already does nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from kitpy.cluster.schema import migrate_async
from kitpy.errors import StorageError, redact_url

if TYPE_CHECKING:
    import psycopg

__all__ = ("Local", "PostgresPlacement", "Remote", "sweep_alarms")

logger = logging.getLogger("kitpy.cluster")

_Key = tuple[str, str]

#: Seconds to connect to PostgreSQL.
CONNECT_TIMEOUT = 10

_REGISTER = """
INSERT INTO kitpy_nodes (name, inbox, started_at, heartbeat_at, expires_at)
VALUES (%(node)s, %(inbox)s, now(), now(), now() + %(ttl)s * interval '1 second')
ON CONFLICT (name) DO UPDATE SET inbox = excluded.inbox, started_at = now(),
    heartbeat_at = now(), expires_at = excluded.expires_at
"""
_BEAT = """
UPDATE kitpy_nodes SET heartbeat_at = now(), expires_at = now() + %(ttl)s * interval '1 second'
WHERE name = %(node)s AND expires_at > now()
RETURNING name
"""
_LIVE = "SELECT name, inbox FROM kitpy_nodes WHERE expires_at > now()"
_CLAIM = """
WITH claimed AS (
    INSERT INTO kitpy_objects AS o (namespace, object_id, owner, epoch)
    VALUES (%(ns)s, %(id)s, %(node)s, 1)
    ON CONFLICT (namespace, object_id) DO UPDATE
        SET owner = excluded.owner, epoch = o.epoch + 1
        WHERE o.owner IS NULL OR o.owner = excluded.owner OR NOT EXISTS (
            SELECT 1 FROM kitpy_nodes n WHERE n.name = o.owner AND n.expires_at > now())
    RETURNING o.owner, o.epoch
)
SELECT owner, epoch, NULL FROM claimed
UNION ALL
SELECT o.owner, o.epoch, n.inbox FROM kitpy_objects o JOIN kitpy_nodes n ON n.name = o.owner
WHERE o.namespace = %(ns)s AND o.object_id = %(id)s AND n.expires_at > now()
    AND NOT EXISTS (SELECT 1 FROM claimed)
"""
_RELEASE_ONE = """
UPDATE kitpy_objects SET owner = NULL
WHERE namespace = %s AND object_id = %s AND owner = %s AND epoch = %s
"""
_RELEASE_ALL = "UPDATE kitpy_objects SET owner = NULL WHERE owner = %s"
_GOODBYE = "DELETE FROM kitpy_nodes WHERE name = %s"
_ORPHAN_ALARMS = """
SELECT a.namespace, a.object_id, a.at FROM kitpy_alarms a
LEFT JOIN kitpy_objects o ON o.namespace = a.namespace AND o.object_id = a.object_id
LEFT JOIN kitpy_nodes n ON n.name = o.owner AND n.expires_at > now()
WHERE a.at <= extract(epoch FROM now()) + %(ahead)s AND (n.name IS NULL OR n.name = %(node)s)
ORDER BY a.at LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class Local:
    """This node owns the object, under ``epoch``: run it here."""

    epoch: int


@dataclass(frozen=True, slots=True)
class Remote:
    """Another live node owns the object: send its events to ``inbox``."""

    node: str
    inbox: str


class _Claim:
    """A claim under way on this node; concurrent locates of the same id wait for it."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: Local | Remote | None = None
        self.error: BaseException | None = None


class PostgresPlacement:
    """Leases and claims of one node (see the module doc). ``async with`` runs it.

    Args:
        url: the cluster's PostgreSQL database.
        node: this node's unique name.
        inbox: where other nodes reach this one (its NATS subject).
        lease_ttl: seconds a silent node keeps its objects.
        flush: awaited before an idle object's lease is given up (the storage's
            ``sync``), so that its last writes commit under its epoch.
    """

    def __init__(
        self,
        url: str,
        node: str,
        inbox: str,
        *,
        lease_ttl: float = 3.0,
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be positive, got {lease_ttl!r}")
        self.url = url
        self.node = node
        self.inbox = inbox
        self.lease_ttl = lease_ttl
        self.interval = lease_ttl / 3
        self.margin = min(lease_ttl / 6, 0.5)
        self._flush = flush
        self._label = f"cluster database {redact_url(url)}"
        self._held: dict[_Key, int] = {}
        self._releasing: set[_Key] = set()
        self._claims: dict[_Key, _Claim] = {}
        self._deadline = 0.0  # monotonic; no write or event past it
        self._lost_callbacks: list[Callable[[str, str], None]] = []
        self._dead_callbacks: list[Callable[[str], None]] = []
        self._live: dict[str, str] = {}
        self._beat_conn: psycopg.AsyncConnection[Any] | None = None
        self._claim_conn: psycopg.AsyncConnection[Any] | None = None
        self._claim_lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> PostgresPlacement:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Connect, create the schema if needed, register this node, start heartbeats."""
        self._beat_conn = await self._connect()
        await migrate_async(self._beat_conn)
        self._claim_conn = await self._connect()
        await self._register()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._heartbeats)

    async def aclose(self) -> None:
        """Give every lease up and say goodbye (other nodes claim at once); idempotent."""
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        self._held.clear()
        self._deadline = 0.0
        with anyio.CancelScope(shield=True):
            conn = self._claim_conn
            if conn is not None and not conn.closed:
                try:
                    async with self._claim_lock:
                        await conn.execute(_RELEASE_ALL, (self.node,))
                        await conn.execute(_GOODBYE, (self.node,))
                except Exception as exc:
                    logger.warning("%s: could not give the leases up: %s", self._label, exc)
            for conn in (self._claim_conn, self._beat_conn):
                if conn is not None:
                    await conn.close()
        self._claim_conn = self._beat_conn = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        try:
            return await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            )
        except (psycopg.Error, OSError) as exc:
            raise StorageError(f"{self._label}: cannot connect: {exc}") from exc

    # -- the Placement seam ---------------------------------------------------------------

    def on_lost(self, callback: Callable[[str, str], None]) -> None:
        """``callback(namespace, object_id)`` when this node lost an object."""
        self._lost_callbacks.append(callback)

    def on_node_dead(self, callback: Callable[[str], None]) -> None:
        """``callback(node)`` when another node's lease expired or it said goodbye."""
        self._dead_callbacks.append(callback)

    async def live_nodes(self) -> dict[str, str]:
        """Every live node's name and inbox (this one included)."""
        rows = await self._query(_LIVE, {})
        return {str(name): str(inbox) for name, inbox in rows}

    def held_epoch(self, namespace: str, object_id: str) -> int | None:
        """The epoch this node holds the object with; None if not, or past the deadline.

        Called from the storage driver's worker thread: reads only.
        """
        if time.monotonic() >= self._deadline:
            return None
        return self._held.get((namespace, object_id))

    @property
    def valid(self) -> bool:
        """True while the local deadline has not passed."""
        return time.monotonic() < self._deadline

    async def locate(self, namespace: str, object_id: str) -> Local | Remote:
        """Where the object runs: here (claimed, with its epoch) or on a live node."""
        key = (namespace, object_id)
        if not self.valid:
            raise StorageError(
                f"{self._label}: node {self.node} has no valid lease (no heartbeat "
                f"succeeded in the last {self.lease_ttl:g} s)"
            )
        epoch = self._held.get(key)
        if epoch is not None:
            self._releasing.discard(key)
            return Local(epoch)
        pending = self._claims.get(key)
        if pending is None:
            pending = self._claims[key] = _Claim()
            try:
                pending.result = await self._claim(key)
            except BaseException as exc:
                pending.error = exc
                raise
            finally:
                del self._claims[key]
                pending.done.set()
            return pending.result
        await pending.done.wait()  # another task of this node claimed it: same answer
        if pending.result is None:
            return await self.locate(namespace, object_id)  # that claim failed: try again
        return pending.result

    async def _claim(self, key: _Key) -> Local | Remote:
        params = {"ns": key[0], "id": key[1], "node": self.node}
        for _ in range(5):
            with anyio.move_on_after(self.lease_ttl) as bounded:  # a database that hangs
                rows = await self._query(_CLAIM, params, claim=True)
            if bounded.cancelled_caught:
                raise StorageError(
                    f"{self._label}: claiming {key[0]}/{key[1]} took over {self.lease_ttl:g} s"
                )
            if rows:
                owner, epoch, inbox = rows[0]
                if inbox is None:
                    if not self.valid:  # the deadline passed while we waited
                        break
                    self._held[key] = int(epoch)
                    return Local(int(epoch))
                return Remote(str(owner), str(inbox))
            # The row was inserted or changed by a transaction that committed after
            # the statement's snapshot was taken: ask again, it is visible now.
        raise StorageError(
            f"{self._label}: node {self.node} could not claim {key[0]}/{key[1]} "
            "(its lease is not valid, or the object changed hands too often)"
        )

    def release_local(self, namespace: str, object_id: str) -> None:
        """The instance left memory here: give its lease up once its writes are in."""
        key = (namespace, object_id)
        epoch = self._held.get(key)
        if epoch is None or self._tg is None or key in self._releasing:
            return
        self._releasing.add(key)
        self._tg.start_soon(self._release, key, epoch)

    async def _release(self, key: _Key, epoch: int) -> None:
        try:
            if self._flush is not None:
                await self._flush()
        except Exception:
            pass  # the writes that failed were reported to their callers
        if key not in self._releasing or self._held.get(key) != epoch:
            return  # located again meanwhile: it stays
        self._releasing.discard(key)
        del self._held[key]
        try:
            await self._query(_RELEASE_ONE, (key[0], key[1], self.node, epoch), claim=True)
        except StorageError as exc:
            logger.warning("%s: could not release %s/%s: %s", self._label, *key, exc)

    # -- heartbeats -----------------------------------------------------------------------

    async def _register(self) -> None:
        sent = time.monotonic()
        await self._query(
            _REGISTER, {"node": self.node, "inbox": self.inbox, "ttl": self.lease_ttl}
        )
        self._deadline = sent + self.lease_ttl - self.margin

    async def _heartbeats(self) -> None:
        while True:
            next_beat = time.monotonic() + self.interval
            try:
                await self._beat()
            except Exception:  # never let the heartbeats die: the node would go silent
                logger.exception("%s: heartbeat of node %s failed", self._label, self.node)
            await anyio.sleep(max(next_beat - time.monotonic(), 0.0))

    async def _beat(self) -> None:
        sent = time.monotonic()
        renewed: bool | None = None
        # A heartbeat may not hang past the deadline, but gets at least an interval.
        with anyio.move_on_after(max(self._deadline - sent, self.interval)):
            try:
                renewed = bool(await self._query(_BEAT, {"node": self.node, "ttl": self.lease_ttl}))
            except StorageError as exc:
                logger.warning("%s: heartbeat failed: %s", self._label, exc)
        if renewed:
            self._deadline = sent + self.lease_ttl - self.margin
        if renewed is False or time.monotonic() >= self._deadline:
            # Past the deadline, or the lease was found expired: other nodes may own
            # our objects now. Drop them all; they are claimed again when used.
            self._lose_all()
            if renewed is False:
                try:
                    await self._register()
                except StorageError as exc:
                    logger.warning("%s: cannot register again: %s", self._label, exc)
        with anyio.move_on_after(self.interval):  # a database that hangs stops no beat
            await self._watch_nodes()

    def _lose_all(self) -> None:
        lost = list(self._held)
        self._held.clear()
        self._releasing.clear()
        if lost:
            logger.warning("node %s lost its lease: dropping %d objects", self.node, len(lost))
        for namespace, object_id in lost:
            for callback in self._lost_callbacks:
                try:
                    callback(namespace, object_id)
                except Exception:
                    logger.exception("an on_lost callback raised")

    async def _watch_nodes(self) -> None:
        try:
            live = await self.live_nodes()
        except StorageError:
            return
        gone = [name for name in self._live if name not in live and name != self.node]
        self._live = live
        for name in gone:
            for callback in self._dead_callbacks:
                try:
                    callback(name)
                except Exception:
                    logger.exception("an on_node_dead callback raised")

    # -- queries --------------------------------------------------------------------------

    async def _query(self, sql: str, params: Any, *, claim: bool = False) -> list[tuple[Any, ...]]:
        """Run one statement on the claims' or the heartbeats' connection; reconnect if broken."""
        import psycopg

        try:
            if claim:
                async with self._claim_lock:
                    self._claim_conn = await self._usable(self._claim_conn)
                    return await self._rows(self._claim_conn, sql, params)
            self._beat_conn = await self._usable(self._beat_conn)
            return await self._rows(self._beat_conn, sql, params)
        except (psycopg.Error, OSError) as exc:
            raise StorageError(f"{self._label}: {exc}") from exc

    async def _usable(
        self, conn: psycopg.AsyncConnection[Any] | None
    ) -> psycopg.AsyncConnection[Any]:
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            await conn.close()
        return await self._connect()

    @staticmethod
    async def _rows(
        conn: psycopg.AsyncConnection[Any], sql: str, params: Any
    ) -> list[tuple[Any, ...]]:
        cursor = await conn.execute(sql, params)
        if cursor.description is None:
            return []
        return list(await cursor.fetchall())

    async def orphan_alarms(
        self, ahead: float = 0.0, limit: int = 100
    ) -> list[tuple[str, str, float]]:
        """Alarms due within ``ahead`` seconds of objects no other live node holds.

        Those of objects no live node holds, and this node's own: an object claimed
        here by a call (a takeover) has its alarm armed by the next sweep.
        """
        params = {"ahead": ahead, "limit": limit, "node": self.node}
        rows = await self._query(_ORPHAN_ALARMS, params, claim=True)
        return [(str(ns), str(oid), float(at)) for ns, oid, at in rows]


async def sweep_alarms(
    placement: PostgresPlacement,
    arm: Callable[[str, str], Awaitable[None]],
    *,
    every: float | None = None,
) -> None:
    """Forever: claim the due alarms of ownerless objects and ``arm`` them here.

    ``arm(namespace, object_id)`` is the object system's ``ensure_alarm`` (a no-op for
    an alarm armed already): the alarm fires on this node, its owner, and is deleted
    there once it ran. This node's own due alarms are passed to ``arm`` too, so an
    object taken over by a call, not by the sweep, gets its alarm armed as well.
    """
    period = placement.lease_ttl if every is None else every
    while True:
        await anyio.sleep(period)
        try:
            orphans = await placement.orphan_alarms(ahead=period)
        except StorageError as exc:
            logger.warning("looking for alarms of ownerless objects failed: %s", exc)
            continue
        for namespace, object_id, _ in orphans:
            try:
                owner = await placement.locate(namespace, object_id)
                if isinstance(owner, Local):
                    await arm(namespace, object_id)
            except Exception as exc:
                logger.warning("the alarm of %s/%s: %s", namespace, object_id, exc)
