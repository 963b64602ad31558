"""kill -9 in the middle of a write storm: every acknowledged write is stored.

On the embedded SQLite file and on PostgreSQL (the cluster's store).

docs/storage.md, "Writing and durability": a write that a response or message has acknowledged
survives a crash (kill -9) of the server. The child process below prints a key only
after the awaitable of its ``put`` completed, so each printed key was acknowledged.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from kitpy.storage import SqliteBackend
from kitpy.storage.postgres import PostgresBackend

pytestmark = pytest.mark.slow

WRITERS = 50
ACKS_BEFORE_KILL = 2000

_WRITER_CHILD = r"""
import sys
import anyio
from kitpy.storage import SqliteBackend
from kitpy.storage.postgres import PostgresBackend

async def writer(backend, index):
    storage = backend.storage("storm", f"object-{index % 10}")
    step = 0
    while True:
        key = f"w{index}-{step}"
        if step % 3 == 0:
            await storage.put({key: step, key + "-twin": [index, step]})
        else:
            await storage.put(key, {"index": index, "step": step, "pad": "x" * 200})
        print(f"{index % 10} {key}", flush=True)
        step += 1

async def main(where, writers):
    if where.startswith("postgresql://"):
        backend = PostgresBackend(where)
    else:
        backend = SqliteBackend(where)
    print("ready", flush=True)
    async with anyio.create_task_group() as group:
        for index in range(writers):
            group.start_soon(writer, backend, index)

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


def _acknowledged(lines: list[str]) -> list[tuple[str, str]]:
    """(object id, key) of each complete line; a line cut by the kill is not counted."""
    pairs = []
    for line in lines:
        if not line.endswith("\n") or line == "ready\n":
            continue
        object_index, key = line.split()
        pairs.append((f"object-{object_index}", key))
    return pairs


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the writer child stores: a SQLite file, or a PostgreSQL database URL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / ".kitpy" / "storage.sqlite3")


def test_acknowledged_writes_survive_kill_9(store: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER_CHILD, store, str(WRITERS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines: list[str] = []
    try:
        while len(lines) < ACKS_BEFORE_KILL:
            line = child.stdout.readline()
            assert line, f"the writer exited early with {child.wait()}"
            lines.append(line)
        child.send_signal(signal.SIGKILL)
        lines.extend(child.stdout.readlines())  # acknowledged before the kill, still piped
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    acknowledged = _acknowledged(lines)
    assert len(acknowledged) >= ACKS_BEFORE_KILL - 1

    postgres = store.startswith("postgresql://")
    if not postgres:
        with sqlite3.connect(store) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()

    async def check() -> None:
        backend = PostgresBackend(store) if postgres else SqliteBackend(store)
        missing = []
        for object_id, key in acknowledged:
            if await backend.storage("storm", object_id).get(key) is None:
                missing.append(key)
        await backend.aclose()
        assert missing == []

    anyio.run(check)
