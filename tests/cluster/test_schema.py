"""The cluster schema: created on first start, versioned, and safe when nodes start together."""

from __future__ import annotations

import threading

import psycopg
import pytest

from kitpy.cluster.schema import SCHEMA_VERSION, TABLES, migrate, migrate_async
from kitpy.errors import StorageError


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'kitpy_%'"
        ).fetchall()
    return {str(name) for (name,) in rows}


def test_first_start_creates_every_table_then_is_a_no_op(cluster_db: str) -> None:
    with psycopg.connect(cluster_db) as conn:
        assert migrate(conn) == 0
        assert migrate(conn) == SCHEMA_VERSION
        (version,) = conn.execute("SELECT version FROM kitpy_schema").fetchall()
        assert version == (SCHEMA_VERSION,)
    assert _tables(cluster_db) == {"kitpy_schema", *TABLES}


def test_keys_compare_as_utf8_bytes(cluster_db: str) -> None:
    with psycopg.connect(cluster_db) as conn:
        migrate(conn)
        keys = ["b", "a", "é", "😀", "\uffff", "Z", "aa"]
        for key in keys:
            conn.execute("INSERT INTO kitpy_kv VALUES ('n', 'o', %s, '1')", (key,))
        rows = conn.execute("SELECT key FROM kitpy_kv ORDER BY key").fetchall()
    assert [key for (key,) in rows] == sorted(keys, key=lambda k: k.encode())


def test_nodes_starting_together_do_not_race(cluster_db: str) -> None:
    found: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        try:
            with psycopg.connect(cluster_db) as conn:
                barrier.wait()
                found.append(migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(found) == [0] + [SCHEMA_VERSION] * 5  # exactly one created it


@pytest.mark.anyio
async def test_async_migration_and_a_newer_schema_is_refused(cluster_db: str) -> None:
    async with await psycopg.AsyncConnection.connect(cluster_db) as conn:
        assert await migrate_async(conn) == 0
        await conn.execute("UPDATE kitpy_schema SET version = version + 1")
        await conn.commit()
        with pytest.raises(StorageError, match=r"schema version 2; this kitpy knows up to 1"):
            await migrate_async(conn)
