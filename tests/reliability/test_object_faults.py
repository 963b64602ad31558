"""Issue #7, part 3: a durable object whose fetch or websocket_message raises does not
take its sockets or the server down.

Expected (Cloudflare's behaviour, and kitpy's DurableObject.websocket_error docstring):
- ``fetch`` raising: that request gets a 500; the object keeps serving;
- ``websocket_message`` raising: logged, the socket stays open, its siblings keep
  receiving broadcasts;
- ``websocket_close`` raising: logged, nothing else happens;
- ``fetch`` hanging: bounded by ``handler_timeout`` (503), other requests unaffected.
"""

from __future__ import annotations

import socket

import pytest

from .conftest import RunningSite
from .helpers import (
    LatencyProbe,
    Server,
    close_code_of,
    get,
    wait_for,
    ws_close_frame,
    ws_frame,
    ws_handshake,
    ws_read_frames,
)
from .sites import BAD_OBJECT, BAD_OBJECT_CONFIG, SECRET

pytestmark = pytest.mark.timeout(60)


def _join(server: Server, name: str = "room") -> tuple[socket.socket, bytes]:
    sock, response, rest = ws_handshake(server.port, f"/do/{name}/websocket")
    assert response.status == 101, (response.status, response.raw_head)
    return sock, rest


def _send_text(sock: socket.socket, text: str) -> None:
    sock.sendall(ws_frame(0x1, text.encode()))


def _receive_text(sock: socket.socket, rest: bytes = b"", timeout: float = 5) -> str | None:
    frames, _ = ws_read_frames(sock, timeout, rest, until_close=False)
    for frame in frames:
        if frame.opcode == 0x1:
            return frame.payload.decode()
        if frame.opcode == 0x8:
            return f"<close {close_code_of([frame])}>"
    return None


def test_fetch_raising_is_a_500_and_the_object_lives_on(running_site: RunningSite) -> None:
    server = running_site(BAD_OBJECT, BAD_OBJECT_CONFIG)
    for _ in range(3):
        response = get(server.port, "/do/room/raise")
        assert response.status == 500
        assert b"exploded" not in response.body and SECRET.encode() not in response.body
    assert get(server.port, "/do/room/count").status == 200
    assert get(server.port, "/ping").body == b"pong"
    assert "fetch exploded" in server.log()  # logged server-side


def test_fetch_hanging_is_bounded(running_site: RunningSite) -> None:
    server = running_site(BAD_OBJECT, BAD_OBJECT_CONFIG)
    with LatencyProbe(server.port) as probe:
        response = get(server.port, "/do/other/hang", timeout=10)
    assert response.status in (503, 504)
    assert not probe.failures, probe.failures[:5]
    # the object that hung is not wedged for the next request... or is it? A hung event
    # holds the object's input gate (one event at a time), so it may refuse to admit
    # more; other objects must not care.
    assert get(server.port, "/do/room/count", timeout=5).status == 200


def test_websocket_message_raising_keeps_sockets(running_site: RunningSite) -> None:
    server = running_site(BAD_OBJECT, BAD_OBJECT_CONFIG)
    a, rest_a = _join(server)
    b, rest_b = _join(server)
    try:
        _send_text(a, "count")
        assert _receive_text(a, rest_a) == "2"
        _send_text(a, "raise")
        _send_text(a, "hello after raise")
        assert _receive_text(a) == "hello after raise"  # a is still open
        assert _receive_text(b, rest_b) == "hello after raise"  # b still gets broadcasts
        _send_text(b, "raise")
        _send_text(b, "count")
        assert _receive_text(b) == "2"
        # closing with a reason that makes websocket_close raise
        a.sendall(ws_close_frame(1000, b"raise"))
        frames, _ = ws_read_frames(a, 5)
        assert close_code_of(frames) == 1000
        assert wait_for(lambda: _count_via(b) == "1", 5)
    finally:
        a.close()
        b.close()
    assert server.alive()
    assert "websocket_message exploded" in server.log()
    assert get(server.port, "/ping").body == b"pong"


def _count_via(sock: socket.socket) -> str | None:
    _send_text(sock, "count")
    return _receive_text(sock, timeout=2)


def test_dead_sockets_leave_the_object(running_site: RunningSite) -> None:
    """Sockets dropped without a close frame (RST) leave get_websockets at once."""
    server = running_site(BAD_OBJECT, BAD_OBJECT_CONFIG)
    warm, _ = _join(server, "warm-up")  # first use opens a few lazy descriptors
    warm.close()
    assert wait_for(lambda: get(server.port, "/do/warm-up/count").body == b"0", 5)
    fds_before = server.fds()
    socks = [_join(server, "drop")[0] for _ in range(20)]
    assert get(server.port, "/do/drop/count").body == b"20"
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
    assert wait_for(lambda: get(server.port, "/do/drop/count").body == b"0", 5)
    assert wait_for(lambda: server.fds() <= fds_before, 5), (fds_before, server.fds())
