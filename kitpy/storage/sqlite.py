"""The embedded store: one SQLite file per site (``<site>/.kitpy/storage.sqlite3``).

Durability policy (docs/storage.md, "Writing and durability": a write a response has
acknowledged survives kill -9). The database runs in WAL mode with ``synchronous=FULL``: every
commit fsyncs the WAL before it returns, so a completed batch survives a process
crash and a power loss. The engine (kitpy.storage.engine) commits a whole batch of
writes in one transaction, so the fsync is paid once per batch, not once per write.

Threads. One writer connection, used by one worker thread at a time (the engine runs
at most one commit per database); readers come from a small pool of read-only
connections, so reads run beside a commit, as WAL allows. Every SQLite or OS error
becomes a :class:`StorageError` naming the file, and a writer that failed is
rolled back or reopened, so the next batch gets a fresh chance.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from kitpy.errors import StorageError
from kitpy.storage.driver import Op, OpKind, range_sql
from kitpy.storage.views import EngineBackend

__all__ = ("SqliteBackend", "SqliteDriver")

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 10.0  # another process (a reloading dev worker) holds the lock
MAX_VARIABLES = 500  # keys per `IN (...)`, well under SQLite's limit
# Small pages: a batch touches a page per object it writes to, and each changed page is
# written whole to the WAL, so commit cost follows page size x objects in the batch.
PAGE_SIZE = 1024
WAL_AUTOCHECKPOINT_PAGES = 8000  # checkpoint less often: a hot page is copied once per run
ROWS_PER_INSERT = 200  # 4 variables a row
READER_POOL = 8  # idle read connections kept open

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    object_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, object_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarms (
    namespace TEXT NOT NULL,
    object_id TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (namespace, object_id)
) WITHOUT ROWID;
"""

_PUT_MANY = "INSERT OR REPLACE INTO kv (namespace, object_id, key, value) VALUES "
_PUT = "INSERT OR REPLACE INTO kv (namespace, object_id, key, value) VALUES (?, ?, ?, ?)"
_DELETE = "DELETE FROM kv WHERE namespace = ? AND object_id = ? AND key = ?"
_DELETE_ALL = "DELETE FROM kv WHERE namespace = ? AND object_id = ?"
_SET_ALARM = "INSERT OR REPLACE INTO alarms (namespace, object_id, at) VALUES (?, ?, ?)"
_DELETE_ALARM = "DELETE FROM alarms WHERE namespace = ? AND object_id = ?"


class SqliteDriver:
    """The SQLite store behind :class:`SqliteBackend`; its methods run in worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # guards opening, the reader pool and closing
        self._writer: sqlite3.Connection | None = None
        self._ready = False  # the schema exists
        self._readers: list[sqlite3.Connection] = []
        self._closed = False

    # -- errors -------------------------------------------------------------------

    def _error(self, action: str, exc: BaseException) -> StorageError:
        if isinstance(exc, OSError) and exc.strerror:
            detail = exc.strerror
        else:
            detail = str(exc) or type(exc).__name__
        lowered = detail.lower()
        hint = ""
        if "full" in lowered or "no space" in lowered:
            hint = " (the disk is full)"
        elif "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
            hint = " (the file is corrupt or not a kitpy storage database)"
        elif any(word in lowered for word in ("readonly", "read-only", "permission", "open")):
            hint = f" (check that {self.path.parent} is a folder this process may write to)"
        error = StorageError(f"storage database {self.path}: {action} failed: {detail}{hint}")
        error.__cause__ = exc
        return error

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._error(action, exc) from exc

    # -- connections --------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # used by one worker thread at a time
        )

    def _open_writer(self) -> sqlite3.Connection:
        """Create the folder and the schema; a WAL, synchronous=FULL connection."""
        if self._closed:
            raise StorageError(f"storage database {self.path} is closed")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"storage database {self.path}: cannot create its folder "
                f"{self.path.parent}: {exc.strerror or exc}"
            ) from exc
        with self._errors("opening"):
            conn = self._connect()
            try:
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only a new file takes it
                (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
                if str(mode).lower() != "wal":
                    raise StorageError(
                        f"storage database {self.path}: cannot use WAL journaling "
                        f"(got {mode!r}); is the folder on a local, writable disk?"
                    )
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version > SCHEMA_VERSION:
                    raise StorageError(
                        f"storage database {self.path} has schema version {version}; "
                        f"this kitpy knows up to {SCHEMA_VERSION}: upgrade kitpy"
                    )
                if not self._ready:
                    conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            except BaseException:
                conn.close()
                raise
        self._ready = True
        return conn

    def _ensure_writer(self) -> sqlite3.Connection:
        with self._lock:
            if self._writer is None:
                self._writer = self._open_writer()
            return self._writer

    def _discard_writer(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if self._writer is conn:
                self._writer = None
        conn.close()

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not self._ready:
                self._writer = self._writer or self._open_writer()
            elif self._closed:
                raise StorageError(f"storage database {self.path} is closed")
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            with self._errors("opening"):
                conn = self._connect()
                conn.execute("PRAGMA query_only=ON")
        healthy = False
        try:
            with self._errors("reading"):
                conn.execute("BEGIN")  # one snapshot for multi-statement reads
                yield conn
                conn.execute("COMMIT")
            healthy = True
        finally:
            with self._lock:
                keep = healthy and not self._closed and len(self._readers) < READER_POOL
                if keep:
                    self._readers.append(conn)
            if not keep:
                conn.close()

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._reader() as conn:
            return fn(conn)

    # -- Driver -------------------------------------------------------------------

    def apply(self, ops: Sequence[Op]) -> list[int]:
        """Apply ``ops`` in one transaction; per op, the rows it removed."""
        with self._errors("writing"):
            conn = self._ensure_writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = self._apply_all(conn, ops)
                conn.execute("COMMIT")
            except BaseException:
                self._abort(conn)
                raise
            return results

    def _apply_all(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> list[int]:
        results: list[int] = []
        index, count = 0, len(ops)
        while index < count:
            op = ops[index]
            if op.kind is not OpKind.PUT:
                results.append(self._apply(conn, op))
                index += 1
                continue
            # A run of puts becomes multi-row INSERTs: one statement, one release of the
            # GIL, instead of one per row; it matters when the event loop is busy.
            stop = index + 1
            while stop < count and stop - index < ROWS_PER_INSERT and ops[stop].kind is OpKind.PUT:
                stop += 1
            rows = ops[index:stop]
            args: list[str] = []
            for put in rows:
                args += (put.namespace, put.object_id, put.key, put.value)
            conn.execute(_PUT_MANY + ", ".join(["(?, ?, ?, ?)"] * len(rows)), args)
            results += [0] * len(rows)
            index = stop
        return results

    def _abort(self, conn: sqlite3.Connection) -> None:
        """Roll back a failed batch; a connection that cannot is replaced next time."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._discard_writer(conn)

    def _apply(self, conn: sqlite3.Connection, op: Op) -> int:
        kind = op.kind
        if kind is OpKind.PUT:
            conn.execute(_PUT, (op.namespace, op.object_id, op.key, op.value))
            return 0
        if kind is OpKind.DELETE:
            return conn.execute(_DELETE, (op.namespace, op.object_id, op.key)).rowcount
        if kind is OpKind.DELETE_ALL:
            return conn.execute(_DELETE_ALL, (op.namespace, op.object_id)).rowcount
        if kind is OpKind.SET_ALARM:
            conn.execute(_SET_ALARM, (op.namespace, op.object_id, op.at))
            return 0
        return conn.execute(_DELETE_ALARM, (op.namespace, op.object_id)).rowcount

    def get(self, namespace: str, object_id: str, keys: Sequence[str]) -> dict[str, str]:
        def read(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for at in range(0, len(keys), MAX_VARIABLES):
                chunk = keys[at : at + MAX_VARIABLES]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT key, value FROM kv WHERE namespace = ? AND object_id = ? "
                    f"AND key IN ({marks})",
                    (namespace, object_id, *chunk),
                )
                found.update(rows)
            return found

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
        # TEXT under the BINARY collation compares the UTF-8 bytes: Cloudflare's order.
        sql, bounds = range_sql(
            "SELECT key, value FROM kv WHERE namespace = ? AND object_id = ?",
            "?",
            low,
            high,
            limit,
            reverse,
        )
        args = [namespace, object_id, *bounds]
        return self._read(lambda conn: list(conn.execute(sql, args)))

    def get_alarm(self, namespace: str, object_id: str) -> float | None:
        def read(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT at FROM alarms WHERE namespace = ? AND object_id = ?",
                (namespace, object_id),
            ).fetchone()
            return None if row is None else float(row[0])

        return self._read(read)

    def alarms(self) -> list[tuple[str, str, float]]:
        return self._read(
            lambda conn: [
                (namespace, object_id, float(at))
                for namespace, object_id, at in conn.execute(
                    "SELECT namespace, object_id, at FROM alarms"
                )
            ]
        )

    def close(self) -> None:
        """Close every connection (the last one checkpoints and removes the WAL)."""
        with self._lock:
            self._closed = True
            conns = [*self._readers, *([self._writer] if self._writer else [])]
            self._readers.clear()
            self._writer = None
        with self._errors("closing"):
            for conn in conns:
                conn.close()


class SqliteBackend(EngineBackend):
    """The embedded, durable :class:`~kitpy.storage.base.StorageBackend` at ``path``.

    Nothing is opened until the first operation; errors (a read-only folder, a corrupt
    file, a full disk) reach the caller that awaits it, as :class:`StorageError`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(
            SqliteDriver(self.path), offload=True, label=f"storage database {self.path}"
        )
