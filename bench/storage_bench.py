"""Acknowledged writes per second: kitpy's group commit vs one commit per write.

Both sides use the same SQLite settings (WAL, synchronous=FULL), the same payload and
100 concurrent writers on one database file; each writer awaits every write before it
issues the next. The naive side commits each write on its own (one fsync each), one
at a time, in a worker thread; kitpy's SqliteBackend commits whatever queued up while
the previous commit ran. Run from the repository root:

    python bench/storage_bench.py [--writers 100] [--seconds 2] [--rounds 3] [--dir PATH] [--trio]

The folder must be on a real disk (not tmpfs), or fsync costs nothing and the figure
means little; the default is a temporary folder under the current directory.
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.to_thread

from kitpy.storage import SqliteBackend

PAYLOAD = {"name": "someone", "message": "x" * 100, "timestamp": 1_700_000_000_000}


async def _storm(
    writers: int, seconds: float, write: Callable[[int, int], Awaitable[None]]
) -> float:
    """Acknowledged writes per second with ``writers`` tasks writing for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        nonlocal done
        step = 0
        while time.perf_counter() < deadline:
            await write(index, step)
            done += 1
            step += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for index in range(writers):
            group.start_soon(writer, index)
    return done / (time.perf_counter() - started)


async def naive(path: Path, writers: int, seconds: float) -> float:
    """One INSERT + COMMIT per write, serialised, each in a worker thread."""
    import json

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS kv (namespace TEXT, object_id TEXT, key TEXT, value TEXT,"
        " PRIMARY KEY (namespace, object_id, key)) WITHOUT ROWID"
    )
    lock = anyio.Lock()

    def commit_one(index: int, step: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)",
            ("bench", f"o{index}", f"k{step}", json.dumps(PAYLOAD)),
        )
        conn.execute("COMMIT")

    async def write(index: int, step: int) -> None:
        async with lock:
            await anyio.to_thread.run_sync(functools.partial(commit_one, index, step))

    try:
        return await _storm(writers, seconds, write)
    finally:
        conn.close()


async def kitpy_storage(path: Path, writers: int, seconds: float) -> tuple[float, float]:
    """kitpy's SqliteBackend: ``await storage.put(...)``; also the writes per commit."""
    backend = SqliteBackend(path)
    views = [backend.storage("bench", f"o{index}") for index in range(writers)]

    async def write(index: int, step: int) -> None:
        await views[index].put(f"k{step}", PAYLOAD)

    await views[0].put("warm-up", 0)
    commits = backend.commits
    try:
        rate = await _storm(writers, seconds, write)
    finally:
        total = backend.commits - commits
        await backend.aclose()
    return rate, rate * seconds / max(total, 1)


async def main(folder: Path, writers: int, seconds: float, rounds: int) -> None:
    """Alternate the two sides, so a noisy neighbour or disk hits both alike."""
    naive_rates: list[float] = []
    kitpy_rates: list[float] = []
    per_commit: list[float] = []
    for round_ in range(rounds):
        naive_rates.append(await naive(folder / f"naive-{round_}.sqlite3", writers, seconds))
        rate, batch = await kitpy_storage(folder / f"kitpy-{round_}.sqlite3", writers, seconds)
        kitpy_rates.append(rate)
        per_commit.append(batch)
        print(
            f"round {round_ + 1}: naive {naive_rates[-1]:8.0f}/s   kitpy {rate:8.0f}/s   "
            f"ratio {rate / naive_rates[-1]:5.1f}x"
        )
    naive_rate, kitpy_rate = statistics.median(naive_rates), statistics.median(kitpy_rates)
    print(f"writers: {writers}, {rounds} x {seconds:g} s each, WAL + synchronous=FULL, in {folder}")
    print(f"naive, one commit per write: {naive_rate:10.0f} acknowledged writes/s (median)")
    print(
        f"kitpy SqliteBackend:         {kitpy_rate:10.0f} acknowledged writes/s (median, "
        f"~{statistics.median(per_commit):.0f} writes per commit)"
    )
    print(f"ratio: {kitpy_rate / naive_rate:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the databases")
    parser.add_argument("--trio", action="store_true", help="run on Trio instead of asyncio")
    args = parser.parse_args()
    options = {"backend": "trio" if args.trio else "asyncio"}
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        anyio.run(main, args.dir, args.writers, args.seconds, args.rounds, **options)
    else:
        with tempfile.TemporaryDirectory(prefix="storage-bench-", dir=".") as folder:
            anyio.run(main, Path(folder), args.writers, args.seconds, args.rounds, **options)
