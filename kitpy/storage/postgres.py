"""The cluster's store: the storage engine in front of PostgreSQL (``kitpy_kv``, ``kitpy_alarms``).

psycopg 3 is imported when a driver first connects, so the embedded default pays
nothing for this module. The tables are created by ``kitpy.cluster.schema``.

Durability: a batch is one transaction, acknowledged after its ``COMMIT`` returned,
which PostgreSQL makes durable in its WAL before it answers (``synchronous_commit``
on, the default). The engine (kitpy.storage.engine) commits many writes per batch.

Fencing. In a cluster an object may be written only by the node that holds its lease,
with the epoch it claimed. Given a :class:`Fencing`, every batch first reads the
``kitpy_objects`` row of each object it writes ``FOR SHARE`` (a takeover's ``UPDATE``
waits for the batch, and a batch waits for a takeover under way, then sees it) and
checks ``owner = this node AND epoch = the epoch this node holds``; otherwise the
whole batch fails with a :class:`StorageError` saying the object's ownership was
lost, and nothing of it is committed. A writer session that a paused process left
inside a transaction is ended by the server after ``idle_in_transaction_timeout``,
so it cannot hold up a takeover for longer than that.

Keys. PostgreSQL ``text`` cannot hold NUL, which storage keys may contain. Keys are
stored through :func:`encode_key`: ``\\x00`` becomes ``\\x01\\x01`` and ``\\x01``
becomes ``\\x01\\x02``, every other character is kept. The code is prefix-free and
keeps the order, so ``COLLATE "C"`` (UTF-8 byte order) still sorts keys as the
embedded store does, and almost every key reads in the table as itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kitpy.errors import StorageError, redact_url
from kitpy.storage.driver import Op, OpKind, range_sql
from kitpy.storage.views import EngineBackend, ObjectStorage

if TYPE_CHECKING:
    import psycopg

__all__ = ("Fencing", "PostgresBackend", "PostgresDriver", "decode_key", "encode_key")

T = TypeVar("T")

READER_POOL = 4  # idle read connections kept open
CONNECT_TIMEOUT = 10  # seconds
IDLE_IN_TRANSACTION_TIMEOUT = 1.0  # seconds; see the module doc
_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open

_PUT_MANY = (
    "INSERT INTO kitpy_kv (namespace, object_id, key, value) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
    "ON CONFLICT (namespace, object_id, key) DO UPDATE SET value = excluded.value"
)
_DELETE = "DELETE FROM kitpy_kv WHERE namespace = %s AND object_id = %s AND key = %s"
_DELETE_ALL = "DELETE FROM kitpy_kv WHERE namespace = %s AND object_id = %s"
_SET_ALARM = (
    "INSERT INTO kitpy_alarms (namespace, object_id, at) VALUES (%s, %s, %s) "
    "ON CONFLICT (namespace, object_id) DO UPDATE SET at = excluded.at"
)
_DELETE_ALARM = "DELETE FROM kitpy_alarms WHERE namespace = %s AND object_id = %s"
_FENCE = (
    "SELECT namespace, object_id, owner, epoch FROM kitpy_objects "
    "WHERE (namespace, object_id) IN (SELECT * FROM unnest(%s::text[], %s::text[])) "
    "ORDER BY namespace, object_id FOR SHARE"
)
_GET = (
    "SELECT key, value FROM kitpy_kv "
    "WHERE namespace = %s AND object_id = %s AND key = ANY(%s::text[])"
)


def encode_key(key: str) -> str:
    """A storage key as stored in ``kitpy_kv.key`` (no NUL; same byte order)."""
    if "\x00" not in key and "\x01" not in key:
        return key
    return key.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def decode_key(stored: str) -> str:
    """The inverse of :func:`encode_key`."""
    if "\x01" not in stored:
        return stored
    out: list[str] = []
    chars = iter(stored)
    for char in chars:
        if char == "\x01":
            out.append("\x00" if next(chars, "\x02") == "\x01" else "\x01")
        else:
            out.append(char)
    return "".join(out)


class Fencing(Protocol):
    """Which objects this node may write, and with which epoch (the placement)."""

    @property
    def node(self) -> str:
        """This node's name, as in ``kitpy_objects.owner``."""

    def held_epoch(self, namespace: str, object_id: str) -> int | None:
        """The epoch this node holds the object with, or None if it does not hold it."""


class PostgresDriver:
    """PostgreSQL behind the storage engine; its methods run in worker threads."""

    def __init__(
        self,
        url: str,
        *,
        fencing: Fencing | None = None,
        idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT,
    ) -> None:
        self.url = url
        self.label = f"PostgreSQL storage {redact_url(url)}"
        self._fencing = fencing
        self._idle_ms = max(1, int(idle_in_transaction_timeout * 1000))
        self._lock = threading.Lock()  # guards the writer slot, the reader pool, closing
        self._writer: psycopg.Connection[Any] | None = None
        self._readers: list[psycopg.Connection[Any]] = []
        self._closed = False

    # -- errors and connections ---------------------------------------------------

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        import psycopg

        try:
            yield
        except StorageError:
            raise
        except (psycopg.Error, OSError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"{self.label}: {action} failed: {detail}") from exc

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._closed:
            raise StorageError(f"{self.label} is closed")
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            options=f"-c idle_in_transaction_session_timeout={self._idle_ms}",
        )

    @contextmanager
    def _connection(self, writer: bool) -> Iterator[psycopg.Connection[Any]]:
        """The writer (one user at a time: the engine commits one batch at a time) or a reader.

        A connection that broke or was left inside a transaction is closed, not reused:
        the next call connects anew, so a database that comes back is used again.
        """
        with self._lock:
            if self._closed:
                raise StorageError(f"{self.label} is closed")
            if writer:
                conn, self._writer = self._writer, None
            else:
                conn = self._readers.pop() if self._readers else None
        if conn is None or conn.closed:
            with self._errors("connecting"):
                conn = self._connect()
        try:
            yield conn
        finally:
            keep = not conn.broken and conn.info.transaction_status == _IDLE
            with self._lock:
                if keep and not self._closed:
                    if writer and self._writer is None:
                        self._writer, conn = conn, None
                    elif not writer and len(self._readers) < READER_POOL:
                        self._readers.append(conn)
                        conn = None
            if conn is not None:
                conn.close()

    def _read(self, action: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run a read; once more on a new connection if an idle pooled one had died.

        Reads change nothing, so trying again is safe (a server restart or a
        terminated session closes every pooled connection at once).
        """
        import psycopg

        with self._errors("reading"):
            for _ in range(READER_POOL):
                with self._connection(writer=False) as conn:
                    try:
                        return action(conn)
                    except psycopg.OperationalError:
                        if not conn.broken:
                            raise
            with self._connection(writer=False) as conn:
                return action(conn)

    # -- Driver -------------------------------------------------------------------

    def apply(self, ops: Sequence[Op]) -> list[int]:
        """Apply ``ops`` in one transaction, fenced; per op, the rows it removed."""
        with self._errors("writing"), self._connection(writer=True) as conn:
            with conn.transaction():
                if self._fencing is not None:
                    self._check_fence(conn, self._fencing, ops)
                return self._apply_all(conn, ops)

    def _check_fence(
        self, conn: psycopg.Connection[Any], fencing: Fencing, ops: Sequence[Op]
    ) -> None:
        """Refuse the batch unless this node holds every object it writes, as in the table.

        An op stamped with an epoch (by the instance's storage view) must have been
        issued under the epoch held now: a write of an instance from an earlier tenure
        of this node is refused too.
        """
        held: dict[tuple[str, str], int | None] = {}
        stale: tuple[str, str, int] | None = None
        for op in ops:
            owner = (op.namespace, op.object_id)
            if owner not in held:
                held[owner] = fencing.held_epoch(*owner)
            if op.epoch and op.epoch != held[owner] and stale is None:
                stale = (op.namespace, op.object_id, op.epoch)
        rows = conn.execute(_FENCE, ([ns for ns, _ in held], [oid for _, oid in held])).fetchall()
        found = {(str(ns), str(oid)): (owner, int(epoch)) for ns, oid, owner, epoch in rows}
        node = fencing.node
        for (namespace, object_id), epoch in held.items():
            row = found.get((namespace, object_id))
            if epoch is not None and row == (node, epoch):
                if stale is None or stale[:2] != (namespace, object_id):
                    continue
                why = f"the write was issued at epoch {stale[2]}, this node holds {epoch} now"
            elif epoch is None:
                why = "this node does not hold it"
            elif row is None:
                why = "it has no owner row"
            else:
                holder = f"node {row[0]}" if row[0] else "no node"
                why = f"it is held by {holder} at epoch {row[1]}, this node had epoch {epoch}"
            raise StorageError(
                f"{self.label}: write to {namespace}/{object_id} refused, this node lost "
                f"ownership of the object ({why}); nothing of the batch was written"
            )

    def _apply_all(self, conn: psycopg.Connection[Any], ops: Sequence[Op]) -> list[int]:
        results: list[int] = []
        index, count = 0, len(ops)
        while index < count:
            op = ops[index]
            if op.kind is not OpKind.PUT:
                results.append(self._apply(conn, op))
                index += 1
                continue
            # A run of puts is one INSERT; within it the last put of a key wins, as it
            # would one by one (one statement may not change a row twice).
            stop = index
            rows: dict[tuple[str, str, str], str] = {}
            while stop < count and ops[stop].kind is OpKind.PUT:
                put = ops[stop]
                rows[(put.namespace, put.object_id, encode_key(put.key))] = put.value
                stop += 1
            conn.execute(
                _PUT_MANY,
                (
                    [ns for ns, _, _ in rows],
                    [oid for _, oid, _ in rows],
                    [key for _, _, key in rows],
                    list(rows.values()),
                ),
            )
            results += [0] * (stop - index)
            index = stop
        return results

    @staticmethod
    def _apply(conn: psycopg.Connection[Any], op: Op) -> int:
        kind = op.kind
        if kind is OpKind.DELETE:
            return conn.execute(_DELETE, (op.namespace, op.object_id, encode_key(op.key))).rowcount
        if kind is OpKind.DELETE_ALL:
            return conn.execute(_DELETE_ALL, (op.namespace, op.object_id)).rowcount
        if kind is OpKind.SET_ALARM:
            conn.execute(_SET_ALARM, (op.namespace, op.object_id, op.at))
            return 0
        return conn.execute(_DELETE_ALARM, (op.namespace, op.object_id)).rowcount

    def get(self, namespace: str, object_id: str, keys: Sequence[str]) -> dict[str, str]:
        stored = [encode_key(key) for key in keys]

        def read(conn: psycopg.Connection[Any]) -> dict[str, str]:
            rows = conn.execute(_GET, (namespace, object_id, stored)).fetchall()
            return {decode_key(key): value for key, value in rows}

        return self._read(read)

    def scan(
        self,
        namespace: str,
        object_id: str,
        low: str | None,
        high: str | None,
        limit: int | None,
        reverse: bool,
    ) -> list[tuple[str, str]]:
        sql, bounds = range_sql(
            "SELECT key, value FROM kitpy_kv WHERE namespace = %s AND object_id = %s",
            "%s",
            None if low is None else encode_key(low),
            None if high is None else encode_key(high),
            limit,
            reverse,
        )
        args = [namespace, object_id, *bounds]

        def read(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
            rows = conn.execute(sql, args).fetchall()
            return [(decode_key(key), value) for key, value in rows]

        return self._read(read)

    def get_alarm(self, namespace: str, object_id: str) -> float | None:
        def read(conn: psycopg.Connection[Any]) -> float | None:
            row = conn.execute(
                "SELECT at FROM kitpy_alarms WHERE namespace = %s AND object_id = %s",
                (namespace, object_id),
            ).fetchone()
            return None if row is None else float(row[0])

        return self._read(read)

    def alarms(self) -> list[tuple[str, str, float]]:
        def read(conn: psycopg.Connection[Any]) -> list[tuple[str, str, float]]:
            rows = conn.execute("SELECT namespace, object_id, at FROM kitpy_alarms").fetchall()
            return [(ns, oid, float(at)) for ns, oid, at in rows]

        return self._read(read)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [*self._readers, *([self._writer] if self._writer else [])]
            self._readers.clear()
            self._writer = None
        for conn in conns:
            conn.close()


class PostgresBackend(EngineBackend):
    """A :class:`~kitpy.storage.base.StorageBackend` on PostgreSQL (group commit, fenced).

    Nothing connects until the first operation; a database that cannot be reached
    makes that operation fail with :class:`StorageError`, and the next one tries again.
    """

    def __init__(
        self,
        url: str,
        *,
        fencing: Fencing | None = None,
        idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT,
    ) -> None:
        self.driver = PostgresDriver(
            url, fencing=fencing, idle_in_transaction_timeout=idle_in_transaction_timeout
        )
        super().__init__(self.driver, offload=True, label=self.driver.label)
        self._fencing = fencing

    def storage(self, namespace: str, object_id: str) -> ObjectStorage:
        """The view of one object; with fencing, its writes carry the epoch held now."""
        fencing = self._fencing
        epoch = fencing.held_epoch(namespace, object_id) if fencing is not None else None
        return ObjectStorage(self._engine, namespace, object_id, epoch or 0)
