"""The cluster's tables in PostgreSQL: created on first start, versioned, migrated safely.

``kitpy_schema(version)`` records the version reached. Migrations run in one
transaction that first takes ``pg_advisory_xact_lock(SCHEMA_LOCK)``, so nodes that
start together wait for each other instead of racing on ``CREATE TABLE``; the lock
ends with the transaction.

Tables (their names and columns are part of what ``kitpy storage export`` and
``kitpy cluster status`` read):

- ``kitpy_nodes``: one row per node, its NATS inbox and its lease (``expires_at``, on
  the database clock: a node whose ``expires_at`` has passed is dead).
- ``kitpy_objects``: who owns each object and the fencing ``epoch``, bumped at every
  takeover; every write batch checks it inside its own transaction.
- ``kitpy_kv``: the objects' storage, values as JSON text; keys under ``COLLATE "C"``
  compare as UTF-8 bytes on a UTF8 database, the embedded store's key order.
- ``kitpy_alarms``: one alarm per object, in epoch seconds.

Works with both psycopg connection kinds: :func:`migrate` with a sync connection,
:func:`migrate_async` with an async one; both run the same statements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kitpy.errors import StorageError

if TYPE_CHECKING:  # psycopg is imported by the callers, only in cluster mode
    import psycopg

__all__ = ("SCHEMA_LOCK", "SCHEMA_VERSION", "TABLES", "migrate", "migrate_async")

#: An arbitrary constant: the advisory lock that serializes schema migrations.
SCHEMA_LOCK = 0x6B6974_7079_0001
#: The newest version this kitpy knows.
SCHEMA_VERSION = 1
TABLES = ("kitpy_nodes", "kitpy_objects", "kitpy_kv", "kitpy_alarms")

_PREPARE = (
    f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})",
    "CREATE TABLE IF NOT EXISTS kitpy_schema (version integer NOT NULL)",
)
_CURRENT = "SELECT coalesce(max(version), 0), current_setting('server_encoding') FROM kitpy_schema"

#: ``_MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1``.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE kitpy_nodes (
            name text PRIMARY KEY,
            inbox text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            heartbeat_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        )""",
        """CREATE TABLE kitpy_objects (
            namespace text NOT NULL,
            object_id text NOT NULL,
            owner text NULL,
            epoch bigint NOT NULL,
            PRIMARY KEY (namespace, object_id)
        )""",
        "CREATE INDEX kitpy_objects_owner ON kitpy_objects (owner)",
        """CREATE TABLE kitpy_kv (
            namespace text NOT NULL,
            object_id text NOT NULL,
            key text COLLATE "C" NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (namespace, object_id, key)
        )""",
        """CREATE TABLE kitpy_alarms (
            namespace text NOT NULL,
            object_id text NOT NULL,
            at double precision NOT NULL,
            PRIMARY KEY (namespace, object_id)
        )""",
        "CREATE INDEX kitpy_alarms_at ON kitpy_alarms (at)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


def _steps(found: int, encoding: str) -> list[str]:
    """The statements that bring version ``found`` to :data:`SCHEMA_VERSION`."""
    if encoding.upper() not in ("UTF8", "UTF-8"):
        raise StorageError(
            f"the cluster database has encoding {encoding}; kitpy needs a UTF8 database "
            "(CREATE DATABASE ... ENCODING 'UTF8') for its key order"
        )
    if found > SCHEMA_VERSION:
        raise StorageError(
            f"the cluster database has kitpy schema version {found}; this kitpy knows up "
            f"to {SCHEMA_VERSION}: upgrade kitpy on this node"
        )
    steps = [sql for version in range(found, SCHEMA_VERSION) for sql in _MIGRATIONS[version]]
    if steps:
        steps += ["DELETE FROM kitpy_schema", f"INSERT INTO kitpy_schema VALUES ({SCHEMA_VERSION})"]
    return steps


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Create or upgrade the schema in one locked transaction; the version found before."""
    with conn.transaction():
        for sql in _PREPARE:
            conn.execute(sql)
        row = conn.execute(_CURRENT).fetchone()
        assert row is not None
        found, encoding = int(str(row[0])), str(row[1])
        for sql in _steps(found, encoding):
            conn.execute(sql)
    return found


async def migrate_async(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
    """:func:`migrate` on an async connection."""
    async with conn.transaction():
        for sql in _PREPARE:
            await conn.execute(sql)
        row = await (await conn.execute(_CURRENT)).fetchone()
        assert row is not None
        found, encoding = int(str(row[0])), str(row[1])
        for sql in _steps(found, encoding):
            await conn.execute(sql)
    return found
