"""What an idle WebSocket held by a durable object costs the server, counted in process.

A real server (asyncio, loopback, port 0) serves a site whose room object accepts
every socket. tracemalloc counts the bytes allocated by kitpy's code (and what it
calls) that are still held once the sockets are open, idle, and have each carried one
broadcast. A byte count, not a timing: it is deterministic up to a few dict resizes,
spread over many sockets. bench/run.py's idle_memory measures the same thing as RSS.
"""

from __future__ import annotations

import gc
import socket
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal

import kitpy
from kitpy.runtime import SiteApp, load_site
from kitpy.server import serve

from .helpers import ws_frame, ws_handshake, ws_read_frames

SOCKETS = 200
#: Bytes per idle socket that kitpy may hold (7.1-7.2 KB when written; 15.3 KiB of RSS
#: before an idle socket stopped holding wsproto, its HTTP frames and an anyio task).
BOUND = 9 * 1024
KITPY_DIR = str(Path(kitpy.__file__).parent)

ROOM = """
from kitpy import DurableObject, Request, Response, WebSocket, WebSocketPair


class Room(DurableObject):
    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.state.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: object) -> None:
        for peer in self.state.get_websockets():
            await peer.send(message)
"""

ENDPOINT = """
from kitpy import Response


async def get(event) -> Response:
    rooms = event.platform.env.rooms
    return await rooms.get(rooms.id_from_name("idle")).fetch("/", event.request)
"""


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "routes").mkdir()
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / "room.py").write_text(textwrap.dedent(ROOM))
    (tmp_path / "routes" / "room.py").write_text(textwrap.dedent(ENDPOINT))
    (tmp_path / "kitpy.toml").write_text('[objects]\nrooms = "objects.room:Room"\n')
    app = SiteApp(load_site(tmp_path))

    async def serving(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
        await serve(app, host="127.0.0.1", port=0, access_log=None, task_status=task_status)

    with start_blocking_portal("asyncio") as portal:
        future, addresses = portal.start_task(serving)
        try:
            yield addresses[0][1]
        finally:
            future.cancel()


def _open(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock, response, _ = ws_handshake(port, "/room")
        assert response.status == 101
        socks.append(sock)
    # One broadcast reaches every socket: each is attached, has carried a message,
    # and is idle again.
    socks[0].sendall(ws_frame(0x1, b"hello"))
    for sock in socks:
        frames, _ = ws_read_frames(sock, 10, until_close=False)
        assert [f.payload for f in frames] == [b"hello"]
    return socks


def _held_by_kitpy(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes of the traces allocated with a kitpy frame on the stack."""
    return sum(
        trace.size
        for trace in snapshot.traces
        if any(frame.filename.startswith(KITPY_DIR) for frame in trace.traceback)
    )


def test_an_idle_websocket_held_by_an_object_costs_under_9_kib(port: int) -> None:
    for sock in _open(port, 20):  # the room exists, lazy imports and caches are made
        sock.close()
    tracemalloc.start(16)
    try:
        gc.collect()
        before = _held_by_kitpy(tracemalloc.take_snapshot())
        socks = _open(port, SOCKETS)
        try:
            gc.collect()
            after = _held_by_kitpy(tracemalloc.take_snapshot())
        finally:
            for sock in socks:
                sock.close()
    finally:
        tracemalloc.stop()
    per_socket = (after - before) / SOCKETS
    print(f"idle WebSocket: {per_socket:.0f} B held by kitpy per socket")
    assert per_socket > 1024, f"{per_socket:.0f} B: the count missed the sockets"
    assert per_socket < BOUND, f"an idle WebSocket holds {per_socket:.0f} B (bound {BOUND})"
