"""Graceful shutdown: cancellation in process, SIGTERM on a real process."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from kitpy.http import Request, Response
from kitpy.protocol import Limits

from .conftest import App, Reader, run_server
from .test_websocket import upgrade


def test_cancelling_serve_drains_gracefully(backend: str) -> None:
    started = threading.Event()

    async def handler(app: App, request: Request) -> Response:
        if request.url.path == "/ws":
            return upgrade(app, request)
        if request.url.path == "/slow":
            started.set()
            await anyio.sleep(0.5)
            return Response("finished")
        return Response("quick")

    with run_server(handler, backend, shutdown_close_code=1012) as server:
        ws = connect(server.ws_url + "/ws")
        idle = server.connect()
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        idle_reader = Reader(idle)
        assert idle_reader.response()[2] == b"quick"
        with ThreadPoolExecutor(1) as pool, ws, idle:
            slow = pool.submit(httpx.get, server.url + "/slow", timeout=10)
            assert started.wait(10)
            server.stop()  # returns once serve() is done
            response = slow.result(timeout=10)
            assert (response.status_code, response.text) == (200, "finished")
            assert response.headers["connection"] == "close"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
            assert ws.close_code == 1012
            assert idle_reader.all() == b""  # the idle keep-alive connection was closed
        assert server.app.events[0] == "startup" and server.app.events[-1] == "shutdown"
        assert "closed 1012 server shutting down" in server.app.events


def test_shutdown_timeout_bounds_a_stuck_request(backend: str) -> None:
    async def stuck(app: App, request: Request) -> Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with run_server(stuck, backend, limits=Limits(shutdown_timeout=0.2)) as server:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.get, server.url + "/", timeout=10)
            while server.app.calls == 0:
                threading.Event().wait(0.01)
            server.stop()
            with pytest.raises(httpx.HTTPError):
                pending.result(timeout=10)
        assert server.app.events[-1] == "shutdown"


SCRIPT = r"""
import sys
from contextlib import asynccontextmanager

import anyio

from kitpy.http import Response, WebSocketPair
from kitpy.server import run


class App:
    async def __call__(self, request):
        if request.url.path == "/ws":
            client, server = WebSocketPair()
            server.accept()

            async def echo():
                try:
                    while True:
                        await server.send(await server.receive())
                except Exception:
                    print("ws-closed", server.close_code, flush=True)

            self.tg.start_soon(echo)
            return Response(status=101, websocket=client)
        if request.url.path == "/slow":
            print("slow-started", flush=True)
            await anyio.sleep(1.0)
            return Response("slow done")
        return Response("hi")

    @asynccontextmanager
    async def lifespan(self):
        async with anyio.create_task_group() as tg:
            self.tg = tg
            yield
            tg.cancel_scope.cancel()
        print("lifespan-exit", flush=True)


run(
    App(),
    port=0,
    backend=sys.argv[1],
    access_log=None,
    on_ready=lambda addresses: print("ready", addresses[0][1], flush=True),
)
print("returned", flush=True)
"""


@pytest.fixture
def child(backend: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def next_line(lines: queue.Queue[str], prefix: str) -> str:
    while True:
        line = lines.get(timeout=20)
        if line.startswith(prefix):
            return line


@pytest.mark.slow
def test_sigterm_drains_and_exits_zero(
    child: tuple[subprocess.Popen[str], queue.Queue[str]],
) -> None:
    proc, lines = child
    port = int(next_line(lines, "ready").split()[1])
    base = f"http://127.0.0.1:{port}"
    with connect(f"ws://127.0.0.1:{port}/ws") as ws, ThreadPoolExecutor(1) as pool:
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        slow = pool.submit(httpx.get, base + "/slow", timeout=20)
        next_line(lines, "slow-started")
        proc.send_signal(signal.SIGTERM)
        response = slow.result(timeout=20)
        assert (response.status_code, response.text) == (200, "slow done")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=20)
        assert ws.close_code == 1001
    assert proc.wait(timeout=20) == 0
    assert next_line(lines, "ws-closed") == "ws-closed 1001"
    next_line(lines, "lifespan-exit")
    next_line(lines, "returned")
