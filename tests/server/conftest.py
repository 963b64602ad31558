"""A real kitpy server on 127.0.0.1 (port 0), on asyncio and on Trio, with small apps."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from kitpy.http import Request, Response
from kitpy.protocol import Limits
from kitpy.server import serve

Handler = Callable[["App", Request], Awaitable[Response]]


class App:
    """A hand-written App: ``handler(app, request)``; ``app.spawn`` runs background work."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.events: list[str] = []
        self.calls = 0
        self._tg: anyio.abc.TaskGroup | None = None

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        return await self.handler(self, request)

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        assert self._tg is not None
        self._tg.start_soon(func)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        self.events.append("startup")
        async with anyio.create_task_group() as tg:
            self._tg = tg
            yield
            tg.cancel_scope.cancel()
        self.events.append("shutdown")


@dataclass
class RunningServer:
    host: str
    port: int
    app: App
    portal: BlockingPortal
    log: list[str] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def run_server(
    handler: Handler,
    backend: str,
    *,
    host: str = "127.0.0.1",
    **kwargs: Any,
) -> Iterator[RunningServer]:
    """Serve ``handler`` in a background event loop; stop (gracefully) on exit."""
    app = App(handler)
    log: list[str] = []
    kwargs.setdefault("limits", Limits())
    done = threading.Event()

    async def serving(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
        try:
            await serve(
                app, host=host, port=0, access_log=log.append, task_status=task_status, **kwargs
            )
        finally:
            done.set()

    with start_blocking_portal(backend) as portal:
        future, addresses = portal.start_task(serving)
        bound_host, port = addresses[0]

        def stop() -> None:
            """Cancel serve() (a graceful shutdown) and wait until it returned."""
            future.cancel()
            assert done.wait(30), "serve() did not return"

        try:
            yield RunningServer(bound_host, port, app, portal, log, stop)
        finally:
            stop()


@pytest.fixture
def make_server(backend: str) -> Iterator[Callable[..., RunningServer]]:
    """``make_server(handler, **serve_kwargs)``: a running server, stopped after the test."""
    stack: list[Any] = []

    def make(handler: Handler, **kwargs: Any) -> RunningServer:
        manager = run_server(handler, backend, **kwargs)
        server = manager.__enter__()
        stack.append(manager)
        return server

    yield make
    while stack:
        stack.pop().__exit__(None, None, None)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class Reader:
    """Buffered reads from a raw socket: whole responses, or up to a marker."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def until(self, marker: bytes) -> bytes:
        """Everything up to and including ``marker`` (or what came before EOF)."""
        while marker not in self.buffer:
            if not self._fill():
                data, self.buffer = self.buffer, b""
                return data
        end = self.buffer.index(marker) + len(marker)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size and self._fill():
            pass
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def all(self) -> bytes:
        """Everything until the peer closes."""
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """One Content-Length framed response."""
        head = self.until(b"\r\n\r\n")
        lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.exactly(int(headers.get("content-length", "0")))
        return status, headers, body


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read until ``marker`` has arrived (or the peer closed); may read past it."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def recv_all(sock: socket.socket) -> bytes:
    """Read until the peer closes."""
    return Reader(sock).all()
