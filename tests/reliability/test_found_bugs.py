"""Bugs the reliability suite found, one test each, until they are fixed.

Each test states the expected behaviour; while the bug is open it is marked
``xfail(strict=True)`` with the precise bug as reason, so CI stays green and the fix
flips it to XPASS (a failure under strict), telling whoever fixed it to drop the mark.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from .conftest import RunningSite, module_server
from .helpers import (
    Server,
    close_code_of,
    exchange,
    get,
    ws_frame,
    ws_handshake,
    ws_read_frames,
)
from .sites import FAULTY, FAULTY_CONFIG, PING, WS, WS_CONFIG

# -- 1. Declared sizes over the limit are not refused up front --------------------------------


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, {**PING, **WS}, WS_CONFIG.format(extra=""))


def test_huge_chunk_size_refused_at_once(fast_server: Server) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffffff\r\nabc"
    )
    got = exchange(fast_server.port, raw, timeout=1.0)
    assert got.statuses in ([413], [400]), got


def test_huge_ws_frame_length_refused_at_once(fast_server: Server) -> None:
    sock, response, rest = ws_handshake(fast_server.port, "/ws/echo")
    try:
        assert response.status == 101
        sock.sendall(struct.pack("!BBQ", 0x82, 0xFF, 2**62) + b"\x00" * 4 + b"x" * 100)
        frames, _ = ws_read_frames(sock, 2, rest)
    finally:
        sock.close()
    assert close_code_of(frames) == 1009


# -- 2. A 400 echoes the request's bytes and h11's internals ---------------------------------


def test_400_body_shows_no_internals(fast_server: Server) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz-secret-bytes\r\n"
    )
    got = exchange(fast_server.port, raw, timeout=3)
    assert got.statuses == [400]
    body = got.responses()[0].body
    assert b"bytearray" not in body and b"secret-bytes" not in body, body


# -- 3. X-Forwarded-For values that are not IP addresses become event.client ------------------


@pytest.mark.parametrize("xff", ["<script>", "not-an-ip", "1.2.3.4.5", "unknown"])
def test_garbage_forwarded_for_is_not_a_client(running_site: RunningSite, xff: str) -> None:
    server = running_site(FAULTY, FAULTY_CONFIG + '\n    trusted_proxies = ["127.0.0.1"]\n')
    response = get(server.port, "/whoami", {"X-Forwarded-For": xff})
    assert json.loads(response.body)["client"] == "127.0.0.1", response.body


# -- 4. No request ids in the logs -------------------------------------------------------------


def test_request_id_ties_access_line_to_error(running_site: RunningSite) -> None:
    server = running_site(FAULTY, FAULTY_CONFIG)
    response = get(server.port, "/fault/raise")
    assert response.status == 500
    request_id = response.header("x-request-id")
    assert request_id, "no X-Request-Id on the response"
    server.stop()
    lines = [line for line in server.log().splitlines() if request_id in line]
    assert any('"GET /fault/raise HTTP/1.1" 500' in line for line in lines), lines
    assert any("raise.py" in line or "RuntimeError" in line for line in lines), lines


# -- 5. Inbound WebSocket messages ignore ws_max_queue_bytes -----------------------------------

DEAF = {
    **PING,
    "routes/deaf.py": """
        import anyio
        from kitpy import Response, WebSocketPair

        async def get(event):
            client, server = WebSocketPair()
            server.accept()

            async def run():
                await anyio.sleep(20)  # does not read for a while

            event.platform.wait_until(run())
            return Response(status=101, websocket=client)
    """,
}


def test_inbound_queue_honours_ws_max_queue_bytes(running_site: RunningSite) -> None:
    config = WS_CONFIG.format(extra="").split("[objects]")[0]
    server = running_site(DEAF, config)
    sock, response, rest = ws_handshake(server.port, "/deaf")
    try:
        assert response.status == 101
        for _ in range(32):  # 32 x 64 KiB = 2 MiB, messages under max_ws_message_bytes
            sock.sendall(ws_frame(0x2, bytes(65536 - 16)))
        frames, _ = ws_read_frames(sock, 3, rest)
    finally:
        sock.close()
    assert close_code_of(frames) == 1008, frames


# -- 6. A slow request body holds a connection slot with no overall deadline ------------------


@pytest.mark.timeout(60)
def test_slow_bodies_at_the_connection_cap(running_site: RunningSite) -> None:
    config = """
        [server]
        header_timeout = 2.0
        keepalive_timeout = 1.0
        body_timeout = 3.0
        max_connections = 20
    """
    server = running_site(PING, config)
    socks = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            socks.append(sock)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            probe = pool.submit(get, server.port, "/ping", timeout=10)
            for _ in range(12):
                for sock in socks:
                    with contextlib.suppress(OSError):
                        sock.send(b"x")
                if probe.done():
                    break
                time.sleep(1)
            response = probe.result(timeout=15)
    finally:
        for sock in socks:
            sock.close()
    assert response.status == 200
