"""Black-box helpers: write a site to disk, run ``python -m kitpy`` on it.

Only the public surface is used: files on disk, the ``kitpy`` command line, and
real network clients on 127.0.0.1.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
READY = re.compile(r"https?://127\.0\.0\.1:(\d+)")


#: A route that upgrades to a WebSocket and sends every message back, as the site's
#: own code would write it (routes/ws/echo.py in most test sites).
ECHO_ROUTE = """
    from kitpy import Response, WebSocketPair

    async def get(event):
        client, server = WebSocketPair()
        server.accept()

        async def run():
            async for message in server:
                await server.send(message)

        event.platform.wait_until(run())
        return Response(status=101, websocket=client)
"""


def write_site(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> dedented text) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"))
    return root


def kitpy_env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")


def run_kitpy(
    *args: str, cwd: Path | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kitpy ARGS`` to completion (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "kitpy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=kitpy_env(),
        cwd=cwd,
    )


class KitpyProcess:
    """``python -m kitpy ARGS`` with its merged output read line by line in a thread
    (a pipe, drained as it fills: for servers that print little)."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        env.pop("FORCE_COLOR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kitpy", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """The first output line matching ``pattern`` (fails after ``timeout`` s or at EOF)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern.pattern!r} in:\n{''.join(self.output)}")
            if line is None:
                pytest.fail(f"kitpy exited before printing {pattern.pattern!r}:\n{self.text}")
            found = pattern.search(line)
            if found:
                return found

    @property
    def text(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        pid = self.process.pid
        if self.process.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.process.wait(timeout)
        self._reader.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


class Server:
    """``python -m kitpy serve SITE --host 127.0.0.1 --port 0`` in a subprocess."""

    def __init__(self, site: Path, *extra: str, command: str = "serve") -> None:
        self.command = command
        self.site = site
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._runs = 0
        self._logs: list[Path] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self._runs += 1
        logdir = self.site.parent / f"{self.site.name}-logs"
        logdir.mkdir(exist_ok=True)
        out = logdir / f"stdout-{self._runs}.txt"
        err = logdir / f"stderr-{self._runs}.txt"
        self._logs.append(err)
        with out.open("wb") as out_f, err.open("wb") as err_f:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kitpy",
                    self.command,
                    str(self.site),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    *self.extra,
                ],
                stdout=out_f,
                stderr=err_f,
                env=kitpy_env(),
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            found = READY.search(out.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"kitpy serve exited {self.process.returncode}:\n{err.read_text()}"
                )
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"kitpy serve printed no URL in time:\n{err.read_text()}")

    def stdout(self) -> str:
        """Everything the server wrote on stdout, over all its runs."""
        return "".join(
            p.with_name(p.name.replace("stderr", "stdout")).read_text(errors="replace")
            for p in self._logs
        )

    def log(self) -> str:
        """Everything the server wrote on stderr, over all its runs."""
        return "".join(p.read_text(errors="replace") for p in self._logs if p.exists())

    def wait_log(self, predicate: Callable[[str], bool], timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if predicate(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the process by its PID and wait for its exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            os.kill(process.pid, sig)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self.process = None

    def kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
        self.process = None


def raw_exchange(
    port: int, data: bytes, *, timeout: float = 5.0, until_close: bool = True
) -> bytes:
    """Send ``data`` on a fresh socket and read until the server closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock, timeout=timeout, until_close=until_close)


def read_all(sock: socket.socket, *, timeout: float = 5.0, until_close: bool = True) -> bytes:
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        if not until_close:
            break
    return b"".join(chunks)


class Conn:
    """A raw keep-alive connection that reads one Content-Length response at a time."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"response incomplete: {self.buf!r}")
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed mid-response: {self.buf!r}")
        self.buf += chunk

    def response(self) -> tuple[str, dict[str, str], bytes]:
        """(status line, lower-cased headers, body) of the next response."""
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = lines[0]
        if status.split()[1].startswith("1") or "204" in status or "304" in status:
            return status, headers, b""
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill(deadline)
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body


SiteFixtures = tuple[
    Callable[..., Path], Callable[..., Iterator[Server]], Callable[..., Iterator[httpx.Client]]
]


def serve_site(
    files: dict[str, str], *, prepare: Callable[[Path], None] | None = None
) -> SiteFixtures:
    """The module-scoped ``site``, ``server`` and ``client`` fixtures of one test site.

    ``site, server, client = serve_site(FILES)`` at module level writes ``FILES`` once
    (``prepare(root)`` may add what a dict cannot say, such as symlinks), serves it with
    ``kitpy serve`` and gives an httpx client on it that does not follow redirects.
    """

    @pytest.fixture(scope="module")
    def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
        root = write_site(tmp_path_factory.mktemp("site") / "site", files)
        if prepare is not None:
            prepare(root)
        return root

    @pytest.fixture(scope="module")
    def server(site: Path) -> Iterator[Server]:
        srv = Server(site).start()
        try:
            yield srv
        finally:
            srv.stop()

    @pytest.fixture(scope="module")
    def client(server: Server) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as c:
            yield c

    return site, server, client
