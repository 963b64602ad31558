"""Issue #7, part 3: kill -9 during a storm of storage writes; full disk; read-only .kitpy/.

The storm goes through the whole stack: HTTP -> route -> durable object -> storage.
A write counts as acknowledged when its 200 has been read by the client. After the
kill, with the server gone, the SQLite file must pass ``PRAGMA integrity_check`` and
hold every acknowledged write (and every transaction whole or not at all); a restarted
server must serve them.

Where the docs are silent: a write that cannot be stored (disk full, read-only store)
must be an error the client sees (5xx) and a log line that says what and where, never a
200 for data that is not on disk.
"""

from __future__ import annotations

import http.client
import os
import random
import resource
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from .conftest import SOAK, MakeSite, ServeDir, record_figure
from .helpers import HOST, Server, close_code_of, get, wait_for, ws_handshake, ws_read_frames
from .sites import STORE, STORE_CONFIG, WS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if SOAK else 120)]

WRITERS = 16
CYCLES = 20 if SOAK else 2
ACKS_BEFORE_KILL = 3000 if SOAK else 400


class Storm:
    """Writer threads hammering one server; ``acked`` holds (kind, key) per 200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acked: list[tuple[str, str]] = []
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(WRITERS)]

    def run(self, index: int) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        step = 0
        try:
            while not self.stop.is_set() and step < 100_000:
                step += 1
                key = f"w{index}-{step}-{random.randrange(1 << 30):x}"
                kind = ("put", "put_nowait", "txn")[step % 3]
                try:
                    conn.request("GET", f"/w/o{index % 4}/{kind}?key={key}&v={step}")
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException):
                    with self.lock:
                        self.errors += 1
                    conn.close()
                    if self.stop.wait(0.05):
                        return
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                    continue
                if response.status == 200 and body == b"ok":
                    with self.lock:
                        self.acked.append((kind, key))
        finally:
            conn.close()

    def __enter__(self) -> Storm:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def stored_keys(db: Path) -> tuple[str, set[str]]:
    """(integrity_check result, every key in the store), read with the server dead."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        keys = {row[0] for row in conn.execute("SELECT key FROM kv")}
    finally:
        conn.close()
    return check, keys


def missing(acked: list[tuple[str, str]], keys: set[str]) -> list[str]:
    lost = []
    for kind, key in acked:
        wanted = [f"{key}-a", f"{key}-b"] if kind == "txn" else [key]
        lost += [k for k in wanted if k not in keys]
    return lost


def torn_transactions(keys: set[str]) -> list[str]:
    halves = {k[:-2] for k in keys if k.endswith(("-a", "-b"))}
    return [h for h in halves if (f"{h}-a" in keys) != (f"{h}-b" in keys)]


def test_kill_9_during_write_storm(make_site: MakeSite, serve_dir: ServeDir) -> None:
    site = make_site(STORE, STORE_CONFIG)
    db = site / ".kitpy" / "storage.sqlite3"
    all_acked: list[tuple[str, str]] = []
    figures = []
    for cycle in range(CYCLES):
        server = serve_dir(site, log_name=f"cycle{cycle}.log")
        assert wait_for(lambda s=server: get(s.port, "/ping").status == 200, 5)
        with Storm(server.port) as storm:
            started = time.monotonic()
            wait_for(lambda st=storm: len(st.acked) >= ACKS_BEFORE_KILL, 30)
            # kill in the middle of the storm, at a random moment
            time.sleep(random.uniform(0, 0.05))
            with storm.lock:
                acked_at_kill = len(storm.acked)
            server.kill9()
            elapsed = time.monotonic() - started
        acked = list(storm.acked)  # a 200 read after the kill is impossible; all count
        all_acked += acked
        check, keys = stored_keys(db)
        lost = missing(all_acked, keys)
        figures.append(
            {"acked": len(acked), "at_kill": acked_at_kill, "seconds": round(elapsed, 2)}
        )
        assert check == "ok", check
        assert not lost, f"cycle {cycle}: {len(lost)} acknowledged writes lost: {lost[:10]}"
        assert not torn_transactions(keys), torn_transactions(keys)[:10]
    record_figure("kill9_storm", figures)

    # A restarted server serves what was acknowledged.
    server = serve_dir(site, log_name="after.log")
    sample = random.sample([k for kind, k in all_acked if kind != "txn"], 20)
    for key in sample:
        response = get(server.port, f"/w/o{int(key[1:].split('-')[0]) % 4}/get?key={key}")
        assert response.status == 200 and b'"v"' in response.body, (key, response.body)


# -- full disk and read-only store -----------------------------------------------------------


def _limit_file_size(limit: int) -> None:
    """preexec_fn: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_full_disk_is_a_clear_error_not_silent_loss(
    make_site: MakeSite, serve_dir: ServeDir
) -> None:
    """RLIMIT_FSIZE stands for a full disk: SQLite's files cannot grow past it."""
    files = {
        **STORE,
        "objects/store.py": STORE["objects/store.py"].replace(
            '"pad": "x" * 64', '"pad": "x" * 20_000'
        ),
    }
    site = make_site(files, STORE_CONFIG)
    server = serve_dir(site, preexec_fn=lambda: _limit_file_size(512 * 1024))
    statuses: dict[int, int] = {}
    acked = []
    for step in range(120):  # 120 x 20 KB = 2.4 MB > 512 KiB
        key = f"big-{step}"
        response = get(server.port, f"/w/full/put?key={key}&v={step}", timeout=15)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status == 200:
            acked.append(("put", key))
    record_figure("full_disk_statuses", statuses)
    assert server.alive(), "the server died on a full disk"
    assert statuses.get(200, 0) < 120, "every write succeeded: the limit did not bite"
    assert set(statuses) <= {200, 500, 503, 507}, statuses
    log = server.log().lower()
    assert any(word in log for word in ("full", "space", "too large", "disk")), log[-2000:]
    assert "storage.sqlite3" in log, "the error should name the file"
    # the server keeps serving what does not write
    assert get(server.port, "/ping").body == b"pong"
    server.kill9()
    check, keys = stored_keys(site / ".kitpy" / "storage.sqlite3")
    assert check == "ok"
    assert not missing(acked, keys), missing(acked, keys)


def _readonly_site(make_site: MakeSite, serve_dir: ServeDir) -> tuple[Path, Server | None, str]:
    """A site whose .kitpy/ holds a store but is read-only for the server.

    Not root: chmod. Root ignores modes, so the server runs in its own mount namespace
    where .kitpy/ is a read-only bind mount (EROFS, as a read-only volume gives).
    """
    site = make_site(STORE, STORE_CONFIG)
    server = serve_dir(site, log_name="rw.log")
    assert get(server.port, "/w/a/put?key=before&v=1").status == 200
    server.stop()
    state = site / ".kitpy"
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("running as root without unshare: cannot make .kitpy/ read-only")
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        prefix = ("unshare", "-m", "sh", "-c", script, str(state))
    else:
        for child in state.iterdir():
            child.chmod(0o444)
        state.chmod(0o555)
    try:
        server = serve_dir(site, log_name="ro.log", command_prefix=prefix)
    except RuntimeError as exc:  # refusing to start is a fine answer too
        return site, None, str(exc)
    return site, server, ""


def test_read_only_store_is_a_clear_error(make_site: MakeSite, serve_dir: ServeDir) -> None:
    site, server, startup_error = _readonly_site(make_site, serve_dir)
    try:
        if server is None:
            lowered = startup_error.lower()
            assert ".kitpy" in startup_error, startup_error
            assert any(
                hint in lowered for hint in ("read-only", "permission", "may write", "writable")
            ), startup_error
            record_figure("read_only_store", "refused to start: " + startup_error.strip()[-200:])
            return
        response = get(server.port, "/w/a/put?key=after&v=2", timeout=15)
        record_figure("read_only_store", f"write answered {response.status}")
        assert response.status >= 500, f"a write to a read-only store answered {response.status}"
        log = server.log().lower()
        assert "read-only" in log or "readonly" in log or "permission" in log, log[-2000:]
        assert server.alive()
        reading = get(server.port, "/w/a/get?key=before", timeout=15)
        record_figure("read_only_store_read", (reading.status, reading.body[:40]))
    finally:
        state = site / ".kitpy"
        state.chmod(0o755)
        for child in state.iterdir():
            child.chmod(0o644)


def test_sigterm_during_write_storm(make_site: MakeSite, serve_dir: ServeDir) -> None:
    """Graceful shutdown mid-storm: exit 0 in time, WebSockets get 1001, nothing acked lost."""
    files = {**STORE, **{k: v for k, v in WS.items() if k.startswith(("objects/", "routes/room"))}}
    config = STORE_CONFIG.replace("[objects]", '[objects]\n    rooms = "objects.room:Room"')
    site = make_site(files, config)
    server = serve_dir(site)
    sockets = []
    try:
        for _ in range(3):
            sock, response, rest = ws_handshake(server.port, "/room/lobby/websocket")
            assert response.status == 101
            sockets.append((sock, rest))
        with Storm(server.port) as storm:
            wait_for(lambda: len(storm.acked) >= ACKS_BEFORE_KILL, 30)
            started = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)
            code = server.proc.wait(timeout=15)
            took = time.monotonic() - started
        codes = [close_code_of(ws_read_frames(sock, 3, rest)[0]) for sock, rest in sockets]
    finally:
        for sock, _ in sockets:
            sock.close()
    record_figure(
        "sigterm_storm",
        {"acked": len(storm.acked), "exit": code, "shutdown_s": round(took, 2), "ws_close": codes},
    )
    assert code == 0, server.log()[-2000:]
    assert took < 2.0 + 3.0  # shutdown_timeout = 2.0
    assert codes == [1001, 1001, 1001], codes
    check, keys = stored_keys(site / ".kitpy" / "storage.sqlite3")
    assert check == "ok"
    assert not missing(storm.acked, keys), missing(storm.acked, keys)[:10]
