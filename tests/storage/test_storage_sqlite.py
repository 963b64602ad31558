"""What only the SQLite backend promises: the file, persistence, and clear errors."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitpy.errors import StorageError
from kitpy.storage import SqliteBackend

pytestmark = pytest.mark.anyio


async def test_creates_folders_and_the_schema(db_path: Path) -> None:
    backend = SqliteBackend(db_path)
    assert not db_path.parent.exists()  # nothing happens before the first operation
    await backend.storage("ns", "o").put("k", {"v": 1})
    await backend.storage("ns", "o").set_alarm(5.0)
    await backend.aclose()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT namespace, object_id, key, value FROM kv").fetchall() == [
            ("ns", "o", "k", '{"v":1}')
        ]
        assert conn.execute("SELECT namespace, object_id, at FROM alarms").fetchall() == [
            ("ns", "o", 5.0)
        ]
    conn.close()


async def test_data_survives_closing_and_reopening(db_path: Path) -> None:
    backend = SqliteBackend(db_path)
    storage = backend.storage("ns", "o")
    await storage.put({"a": 1, "b": [2], "é": "ü", "a\x00b": None})
    await storage.delete("b")
    await backend.storage("ns", "cleared").put("x", 1)
    await backend.storage("ns", "cleared").delete_all()
    await storage.set_alarm(123.0)
    storage.put("unawaited", True)  # aclose() flushes what is pending
    await backend.aclose()

    reopened = SqliteBackend(db_path)
    storage = reopened.storage("ns", "o")
    assert await storage.list() == {"a": 1, "a\x00b": None, "unawaited": True, "é": "ü"}
    assert await storage.get("a\x00b") is None
    assert await storage.list(start="a\x00") == {"a\x00b": None, "unawaited": True, "é": "ü"}
    assert await reopened.storage("ns", "cleared").list() == {}
    assert await reopened.pending_alarms() == [("ns", "o", 123.0)]
    await reopened.aclose()


async def test_two_backends_in_turn_on_one_file(db_path: Path) -> None:
    """A dev reload: the old worker closes, the new one opens the same file."""
    for round_ in range(3):
        backend = SqliteBackend(db_path)
        storage = backend.storage("ns", "o")
        assert await storage.get("round") == (round_ - 1 if round_ else None)
        await storage.put("round", round_)
        await backend.aclose()


async def test_corrupt_file_is_a_clear_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database, just some text " * 200)
    backend = SqliteBackend(db_path)
    storage = backend.storage("ns", "o")
    with pytest.raises(StorageError, match=f"{db_path}.*corrupt"):
        await storage.put("k", 1)
    with pytest.raises(StorageError, match=f"{db_path}.*corrupt"):
        await storage.get("k")
    with pytest.raises(StorageError, match=f"{db_path}.*corrupt"):
        await storage.put("k", 2)  # the next batch fails the same way: nothing hangs
    storage.put("k", 3)
    with pytest.raises(StorageError, match=f"{db_path}.*corrupt"):
        await storage.sync()
    await backend.aclose()


async def test_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".kitpy").write_text("not a folder")
    backend = SqliteBackend(tmp_path / ".kitpy" / "storage.sqlite3")
    with pytest.raises(StorageError, match="cannot create its folder .*\\.kitpy"):
        await backend.storage("ns", "o").put("k", 1)
    with pytest.raises(StorageError, match="cannot create its folder"):
        await backend.pending_alarms()
    await backend.aclose()


# The read-only checks run in a child process: as root (in CI containers) the child
# drops to "nobody" once everything it needs is imported, so permissions apply.
_READ_ONLY_CHILD = r"""
import os, sys
import anyio, anyio.to_thread, anyio._backends._asyncio
from kitpy.storage import SqliteBackend
if os.geteuid() == 0:
    os.setuid(65534)

async def main(path):
    backend = SqliteBackend(path)
    for attempt in ("put", "get", "put"):
        try:
            if attempt == "put":
                await backend.storage("ns", "o").put("k", 1)
            else:
                await backend.storage("ns", "o").get("k")
        except Exception as exc:
            print(type(exc).__name__, exc)
        else:
            print("no error")
    await backend.aclose()

anyio.run(main, sys.argv[1])
"""


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temporary folder that another user may enter (pytest's tmp_path is private)."""
    folder = Path(tempfile.mkdtemp(prefix="kitpy-storage-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _run_read_only_child(path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _READ_ONLY_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-database", "existing-database"])
async def test_read_only_folder_is_a_clear_error(public_tmp: Path, existing: bool) -> None:
    kitpy_dir = public_tmp / "site" / ".kitpy"
    kitpy_dir.mkdir(parents=True)
    (public_tmp / "site").chmod(0o755)
    path = kitpy_dir / "storage.sqlite3"
    if existing:
        backend = SqliteBackend(path)
        await backend.storage("ns", "o").put("k", 0)
        await backend.aclose()
        path.chmod(0o644)
    kitpy_dir.chmod(0o555)
    lines = _run_read_only_child(path)
    assert len(lines) == 3
    for line in lines:
        assert line.startswith(f"StorageError storage database {path}: ")
        assert "writ" in line or "read" in line  # "write to", "readonly"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_read_only_parent_is_a_clear_error(public_tmp: Path) -> None:
    site = public_tmp / "site"
    site.mkdir(mode=0o555)
    site.chmod(0o555)
    path = site / ".kitpy" / "storage.sqlite3"
    lines = _run_read_only_child(path)
    assert (
        lines
        == [
            f"StorageError storage database {path}: cannot create its folder {path.parent}: "
            "Permission denied"
        ]
        * 3
    )


def test_no_leftover_files_after_close(tmp_path: Path) -> None:
    """Closing the last connection checkpoints the WAL into the file."""
    import anyio

    path = tmp_path / "storage.sqlite3"

    async def main() -> None:
        backend = SqliteBackend(path)
        await backend.storage("ns", "o").put("k", 1)
        assert await backend.storage("ns", "o").get("k") == 1
        await backend.aclose()

    anyio.run(main)
    assert sorted(os.listdir(tmp_path)) == ["storage.sqlite3"]
