"""``kitpy storage export|import``: a site's durable storage as JSON lines.

One line per stored key, then one per alarm::

    {"namespace":"rooms","id":"9f0c…","key":"msg:0001","value":{"text":"hi"}}
    {"namespace":"rooms","id":"9f0c…","alarm":1767225600.0}

``value`` is the stored JSON itself (not a string holding it); ``alarm`` is in epoch
seconds. The store is the one the site is configured for: the embedded SQLite file
(``.kitpy/storage.sqlite3``) or, with ``[cluster]``, PostgreSQL. Export from one and
import into the other moves a site between one process and a cluster.

Import is all or nothing (one transaction), refuses a non-empty store unless told
``--replace`` (then the store's content is replaced by the file's), refuses a cluster
with live nodes (their instances would not see the change), and names the line of a
bad record (``dump.jsonl:12: "key" must be a non-empty string``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kitpy.errors import KitpyError, StorageError
from kitpy.runtime.config import ClusterSettings, cluster_settings, load_config
from kitpy.storage.base import check_key, encode_value

__all__ = ("Record", "export_command", "import_command", "read_records")

SQLITE_NAME = "storage.sqlite3"
BATCH = 500


@dataclass(frozen=True)
class Record:
    """One line: a stored key (``value`` as JSON text) or an alarm (``key`` None)."""

    namespace: str
    object_id: str
    key: str | None
    value: str | None = None
    alarm: float | None = None

    def line(self) -> str:
        head = f'{{"namespace":{_dump(self.namespace)},"id":{_dump(self.object_id)}'
        if self.key is None:
            return f'{head},"alarm":{json.dumps(self.alarm)}}}'
        return f'{head},"key":{_dump(self.key)},"value":{self.value}}}'


def _dump(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# -- the two stores ------------------------------------------------------------------


class _Store:
    """What export and import need of a store."""

    label: str

    def records(self) -> Iterator[Record]:
        raise NotImplementedError

    def is_empty(self) -> bool:
        raise NotImplementedError

    def replace(self, records: Iterable[Record], *, clear: bool) -> tuple[int, int]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _SqliteStore(_Store):
    def __init__(self, path: Path, *, create: bool) -> None:
        self.label = str(path)
        self.path = path
        self.conn: sqlite3.Connection | None = None
        if path.exists() or create:
            from kitpy.storage.sqlite import SqliteDriver

            driver = SqliteDriver(path)
            try:
                driver.apply([])  # creates the file and schema as the server would
            finally:
                driver.close()
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout = 10000")

    def records(self) -> Iterator[Record]:
        if self.conn is None:
            return
        for namespace, object_id, key, value in self.conn.execute(
            "SELECT namespace, object_id, key, value FROM kv ORDER BY namespace, object_id, key"
        ):
            yield Record(namespace, object_id, key, value)
        for namespace, object_id, at in self.conn.execute(
            "SELECT namespace, object_id, at FROM alarms ORDER BY namespace, object_id"
        ):
            yield Record(namespace, object_id, None, alarm=float(at))

    def is_empty(self) -> bool:
        if self.conn is None:
            return True
        found = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM kv) OR EXISTS (SELECT 1 FROM alarms)"
        ).fetchone()
        return not (found and found[0])

    def replace(self, records: Iterable[Record], *, clear: bool) -> tuple[int, int]:
        assert self.conn is not None
        conn = self.conn
        counts = [0, 0]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if clear:
                conn.execute("DELETE FROM kv")
                conn.execute("DELETE FROM alarms")
            for batch in _batches(records):
                kv = [(r.namespace, r.object_id, r.key, r.value) for r in batch if r.key]
                alarms = [(r.namespace, r.object_id, r.alarm) for r in batch if r.key is None]
                conn.executemany(
                    "INSERT OR REPLACE INTO kv (namespace, object_id, key, value) "
                    "VALUES (?, ?, ?, ?)",
                    kv,
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO alarms (namespace, object_id, at) VALUES (?, ?, ?)",
                    alarms,
                )
                counts[0] += len(kv)
                counts[1] += len(alarms)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return counts[0], counts[1]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class _PostgresStore(_Store):
    def __init__(self, settings: ClusterSettings) -> None:
        from kitpy.cli.cluster import connect_postgres
        from kitpy.errors import redact_url

        self.label = redact_url(settings.postgres)
        self.conn = connect_postgres(settings)
        self._migrated = False

    def _has_schema(self) -> bool:
        row = self.conn.execute("SELECT to_regclass('kitpy_kv') IS NOT NULL").fetchone()
        return bool(row and row[0])

    def records(self) -> Iterator[Record]:
        from kitpy.storage.postgres import decode_key

        if not self._has_schema():
            return
        # A server-side cursor: rows stream instead of being read all at once.
        with self.conn.transaction(), self.conn.cursor(name="kitpy_export") as rows:
            rows.execute(
                "SELECT namespace, object_id, key, value FROM kitpy_kv "
                "ORDER BY namespace, object_id, key"
            )
            for namespace, object_id, key, value in rows:
                yield Record(namespace, object_id, decode_key(key), value)
        for namespace, object_id, at in self.conn.execute(
            "SELECT namespace, object_id, at FROM kitpy_alarms ORDER BY namespace, object_id"
        ):
            yield Record(namespace, object_id, None, alarm=float(at))

    def is_empty(self) -> bool:
        if not self._has_schema():
            return True
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM kitpy_kv) OR EXISTS (SELECT 1 FROM kitpy_alarms)"
        ).fetchone()
        return not (row and row[0])

    def live_nodes(self) -> list[str]:
        if not self._has_schema():
            return []
        rows = self.conn.execute(
            "SELECT name FROM kitpy_nodes WHERE expires_at > now() ORDER BY name"
        ).fetchall()
        return [str(row[0]) for row in rows]

    def replace(self, records: Iterable[Record], *, clear: bool) -> tuple[int, int]:
        from kitpy.cluster.schema import migrate
        from kitpy.storage.postgres import encode_key

        migrate(self.conn)
        counts = [0, 0]
        with self.conn.transaction(), self.conn.cursor() as cursor:
            if clear:
                cursor.execute("DELETE FROM kitpy_kv")
                cursor.execute("DELETE FROM kitpy_alarms")
            for batch in _batches(records):
                kv = [
                    (r.namespace, r.object_id, encode_key(r.key), r.value) for r in batch if r.key
                ]
                alarms = [(r.namespace, r.object_id, r.alarm) for r in batch if r.key is None]
                if kv:
                    cursor.executemany(
                        "INSERT INTO kitpy_kv (namespace, object_id, key, value) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (namespace, object_id, key) "
                        "DO UPDATE SET value = EXCLUDED.value",
                        kv,
                    )
                if alarms:
                    cursor.executemany(
                        "INSERT INTO kitpy_alarms (namespace, object_id, at) VALUES (%s, %s, %s) "
                        "ON CONFLICT (namespace, object_id) DO UPDATE SET at = EXCLUDED.at",
                        alarms,
                    )
                counts[0] += len(kv)
                counts[1] += len(alarms)
        return counts[0], counts[1]

    def close(self) -> None:
        self.conn.close()


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def open_store(site: Path, settings: ClusterSettings | None, *, create: bool) -> _Store:
    """The store ``site`` is configured for: PostgreSQL with a cluster, else SQLite."""
    if settings is not None:
        return _PostgresStore(settings)
    return _SqliteStore(site / ".kitpy" / SQLITE_NAME, create=create)


def _settings(site: Path) -> ClusterSettings | None:
    return cluster_settings(load_config(site), os.environ, port=0)


# -- reading a file ------------------------------------------------------------------


def read_records(lines: Iterable[str], name: str) -> Iterator[Record]:
    """Parse export lines; :class:`KitpyError` ``name:line: problem`` on a bad one."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            yield _record(text)
        except (ValueError, StorageError) as exc:
            message = exc.message if isinstance(exc, _BadLine) else str(exc)
            raise KitpyError(f"{name}:{number}: {message}") from None


class _BadLine(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _record(text: str) -> Record:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _BadLine(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadLine("expected a JSON object")
    for name in ("namespace", "id"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise _BadLine(f'"{name}" must be a non-empty string')
    namespace, object_id = data["namespace"], data["id"]
    if "alarm" in data:
        extra = set(data) - {"namespace", "id", "alarm"}
        at = data["alarm"]
        if extra or isinstance(at, bool) or not isinstance(at, int | float):
            raise _BadLine('an alarm line is {"namespace", "id", "alarm": epoch seconds}')
        return Record(namespace, object_id, None, alarm=float(at))
    if set(data) != {"namespace", "id", "key", "value"}:
        raise _BadLine('expected the keys "namespace", "id", "key", "value" (or "alarm")')
    if not isinstance(data["key"], str):
        raise _BadLine('"key" must be a non-empty string')
    key = check_key(data["key"])
    return Record(namespace, object_id, key, encode_value(key, data["value"]))


# -- the commands ----------------------------------------------------------------------


def export_command(site: Path, out: IO[str] | None = None) -> int:
    """Write every record of the site's store to ``out`` (stdout); exit status."""
    stream = out if out is not None else sys.stdout
    with closing(open_store(site, _settings(site), create=False)) as store:
        counts = [0, 0]
        for record in store.records():
            stream.write(record.line() + "\n")
            counts[record.key is None] += 1
        stream.flush()
    sys.stderr.write(
        f"kitpy: exported {counts[0]} keys and {counts[1]} alarms from {store.label}\n"
    )
    return 0


def import_command(site: Path, file: str, *, replace: bool) -> int:
    """Read ``file`` (``-``: stdin) into the site's store; exit status."""
    settings = _settings(site)
    try:
        stream: Any = sys.stdin if file == "-" else open(file, encoding="utf-8")
    except OSError as exc:
        raise KitpyError(f"{file}: cannot read: {exc.strerror or exc}") from None
    with closing(stream), closing(open_store(site, settings, create=True)) as store:
        if isinstance(store, _PostgresStore) and (live := store.live_nodes()):
            raise KitpyError(
                f"the cluster has live nodes ({', '.join(live)}): stop them before an import"
            )
        if not replace and not store.is_empty():
            raise KitpyError(
                f"{store.label} is not empty: import with --replace to replace what it holds"
            )
        try:
            keys, alarms = store.replace(read_records(stream, file), clear=replace)
        except UnicodeDecodeError as exc:
            raise KitpyError(f"{file}: not UTF-8 text: {exc.reason}") from None
    sys.stderr.write(f"kitpy: imported {keys} keys and {alarms} alarms into {store.label}\n")
    return 0
