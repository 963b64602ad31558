"""WebSockets on a real loopback server, with the websockets client and raw sockets."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Callable

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin, Subprotocol

from kitpy.http import Request, Response, WebSocket, WebSocketClosed, WebSocketPair
from kitpy.protocol import Limits

from .conftest import App, Reader, RunningServer, wait_for

MakeServer = Callable[..., RunningServer]


def upgrade(app: App, request: Request, headers: dict[str, str] | None = None) -> Response:
    """Pair up, run the echo loop in the background, hand back the client end."""
    client, server = WebSocketPair()
    server.accept()
    app.events.append(f"protocol offered {request.headers.get('sec-websocket-protocol')}")

    async def echo() -> None:
        await run_echo(app, server)

    app.spawn(echo)
    return Response(status=101, websocket=client, headers=headers)


async def run_echo(app: App, ws: WebSocket) -> None:
    try:
        while True:
            message = await ws.receive()
            if message == "close-me":
                await ws.close(4000, "done")
                break
            await ws.send(message)
    except WebSocketClosed:
        pass
    finally:
        app.events.append(f"closed {ws.close_code} {ws.close_reason}".strip())


async def echo_handler(app: App, request: Request) -> Response:
    return upgrade(app, request)


def closed_events(app: App) -> list[str]:
    return [e for e in app.events if e.startswith("closed")]


def test_echo_text_and_binary(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    with connect(server.ws_url + "/ws") as ws:
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send(b"\x00\xff")
        assert ws.recv() == b"\x00\xff"
    wait_for(lambda: closed_events(server.app) == ["closed 1000"])
    assert any('"GET /ws HTTP/1.1" 101' in line for line in server.log)


def test_subprotocol_chosen_by_the_app(make_server: MakeServer) -> None:
    async def choose(app: App, request: Request) -> Response:
        offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",")]
        return upgrade(app, request, {"sec-websocket-protocol": offered[-1]})

    server = make_server(choose)
    with connect(
        server.ws_url + "/", subprotocols=[Subprotocol("chat.v1"), Subprotocol("chat.v2")]
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        ws.send("x")
        assert ws.recv() == "x"


def test_permessage_deflate(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    with connect(server.ws_url + "/") as ws:
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        text = "squeeze " * 10_000
        ws.send(text)
        assert ws.recv() == text


def test_fragmented_message(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    with connect(server.ws_url + "/") as ws:
        ws.send(["frag", "men", "ted"])
        assert ws.recv() == "fragmented"
        ws.send([b"a", b"b"])
        assert ws.recv() == b"ab"


def test_message_too_big_is_1009(make_server: MakeServer) -> None:
    server = make_server(echo_handler, limits=Limits(max_ws_message_bytes=1000))
    with connect(server.ws_url + "/", compression=None) as ws:
        ws.send("x" * 1000)
        assert ws.recv() == "x" * 1000
        ws.send("x" * 1001)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    wait_for(lambda: bool(closed_events(server.app)))
    assert closed_events(server.app)[0].startswith("closed 1009")


def test_client_close_reaches_the_app(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    with connect(server.ws_url + "/") as ws:
        ws.close(1000, "bye")
    wait_for(lambda: closed_events(server.app) == ["closed 1000 bye"])


def test_app_close_reaches_the_client(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    with connect(server.ws_url + "/") as ws:
        ws.send("close-me")
        with pytest.raises(ConnectionClosed):
            ws.recv()
        assert ws.close_code == 4000 and ws.close_reason == "done"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_refusing_the_upgrade_with_an_ordinary_response(
    make_server: MakeServer, status: int
) -> None:
    async def refuse(app: App, request: Request) -> Response:
        return Response("go away", status=status)

    server = make_server(refuse)
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + "/")
    assert info.value.response.status_code == status
    assert info.value.response.body == b"go away"


def test_foreign_origin_is_refused_before_the_app(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + "/", origin=Origin("http://evil.example"))
    assert info.value.response.status_code == 403
    assert server.app.calls == 0


def test_same_host_origin_is_allowed(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    origin = f"http://127.0.0.1:{server.port}"
    with connect(server.ws_url + "/", origin=Origin(origin)) as ws:
        ws.send("ok")
        assert ws.recv() == "ok"


@pytest.mark.parametrize("allowed", [["*"], ["http://evil.example"]], ids=["star", "listed"])
def test_allowed_origins(make_server: MakeServer, allowed: list[str]) -> None:
    server = make_server(echo_handler, allowed_origins=allowed)
    with connect(server.ws_url + "/", origin=Origin("http://evil.example")) as ws:
        ws.send("ok")
        assert ws.recv() == "ok"


def test_101_to_a_plain_request_is_500(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    ends: list[WebSocket] = []

    async def always_101(app: App, request: Request) -> Response:
        client, _server = WebSocketPair()
        ends.append(client)
        return Response(status=101, websocket=client)

    server = make_server(always_101)
    with httpx.Client() as client:
        response = client.get(server.url + "/")
    assert response.status_code == 500
    assert ends[0].close_code == 1011
    assert any("101" in r.getMessage() for r in caplog.records)


def test_101_without_a_websocket_end_is_500(make_server: MakeServer) -> None:
    async def bare_101(app: App, request: Request) -> Response:
        return Response(status=101)

    server = make_server(bare_101)
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + "/")
    assert info.value.response.status_code == 500


# -- raw sockets: bad frames, dead clients, slow readers --------------------------------------


def raw_upgrade(server: RunningServer) -> tuple[socket.socket, Reader]:
    sock = server.connect()
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key
    )
    reader = Reader(sock)
    head = reader.until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock, reader


def read_frame(reader: Reader) -> tuple[int, bytes]:
    first, second = reader.exactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", reader.exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", reader.exactly(8))
    return first & 0x0F, reader.exactly(length)


def read_close_code(reader: Reader) -> int:
    while True:
        opcode, payload = read_frame(reader)
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0])


def masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    return (
        bytes([0x80 | opcode, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(bytes([0x81, 0x02]) + b"hi", 1002, id="unmasked"),
        pytest.param(masked(0x1, b"\xc3\x28"), 1007, id="invalid-utf8"),
        pytest.param(masked(0x3, b""), 1002, id="reserved-opcode"),
    ],
)
def test_bad_frames_close_with_their_code(make_server: MakeServer, frame: bytes, code: int) -> None:
    server = make_server(echo_handler)
    sock, reader = raw_upgrade(server)
    with sock:
        sock.sendall(frame)
        assert read_close_code(reader) == code
        assert reader.all() == b""  # and the connection is dropped
    wait_for(lambda: closed_events(server.app) != [])
    assert closed_events(server.app)[0].startswith(f"closed {code}")


def test_dropped_client_closes_the_end_with_1006(make_server: MakeServer) -> None:
    server = make_server(echo_handler)
    sock, _ = raw_upgrade(server)
    sock.close()
    wait_for(lambda: closed_events(server.app) != [])
    assert closed_events(server.app)[0].startswith("closed 1006")


def test_unanswered_pings_close_the_end_with_1006(make_server: MakeServer) -> None:
    server = make_server(echo_handler, limits=Limits(ws_ping_interval=0.1, ws_ping_timeout=0.3))
    sock, reader = raw_upgrade(server)
    with sock:
        opcode, _ = read_frame(reader)
        assert opcode == 0x9  # a ping, which this client never answers
        wait_for(lambda: closed_events(server.app) != [])
    assert closed_events(server.app)[0].startswith("closed 1006")


def test_answered_pings_keep_the_socket_open(make_server: MakeServer) -> None:
    server = make_server(echo_handler, limits=Limits(ws_ping_interval=0.05, ws_ping_timeout=0.5))
    with connect(server.ws_url + "/") as ws:
        for n in range(5):
            # Several ping intervals pass; the websockets client answers each ping
            # from its background thread, so the socket stays open.
            time.sleep(0.1)
            ws.send(str(n))
            assert ws.recv() == str(n)
        assert closed_events(server.app) == []


def test_slow_reader_cannot_grow_server_memory(make_server: MakeServer) -> None:
    async def flood(app: App, request: Request) -> Response:
        client, ws = WebSocketPair()
        ws.accept()

        async def run() -> None:
            chunk = b"x" * 65536
            sent = 0
            try:
                while True:
                    await ws.send(chunk)
                    sent += len(chunk)
                    if sent % (1 << 20) == 0:
                        await anyio.sleep(0.001)
            except WebSocketClosed as exc:
                app.events.append(f"closed {exc.code}")

        app.spawn(run)
        return Response(status=101, websocket=client)

    limits = Limits(ws_max_queue_bytes=1 << 20, ws_ping_timeout=0.5)
    server = make_server(flood, limits=limits)
    sock, _ = raw_upgrade(server)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_for(lambda: closed_events(server.app) != [])
    assert closed_events(server.app) == ["closed 1008"]


def test_app_that_does_not_read_gets_1008_past_ws_max_queue_bytes(
    make_server: MakeServer,
) -> None:
    """The client's unread messages are bounded by ws_max_queue_bytes as well."""
    ends: list[WebSocket] = []

    async def deaf(app: App, request: Request) -> Response:
        client, ws = WebSocketPair()
        ws.accept()
        ends.append(ws)  # kept, never read
        return Response(status=101, websocket=client)

    server = make_server(deaf, limits=Limits(ws_max_queue_bytes=64 * 1024))
    sock, reader = raw_upgrade(server)
    with sock:
        message = masked(0x2, b"x" * 100)
        for _ in range(64 * 1024 // 100 - 1):  # just under the bound: kept
            sock.sendall(message)
        sock.sendall(masked(0x1, b"ping?"))
        wait_for(lambda: ends[0]._inbox_bytes > 63 * 1024)
        assert not ends[0].closed
        for _ in range(20):  # past it
            sock.sendall(message)
        assert read_close_code(reader) == 1008
    wait_for(lambda: ends[0].closed)  # its backlog dropped; receive() raises (1008)


def test_messages_before_a_protocol_error_are_answered_before_the_close(
    make_server: MakeServer,
) -> None:
    """Strict: what came whole before the bad frame is echoed, then the 1002 close."""
    server = make_server(echo_handler)
    sock, reader = raw_upgrade(server)
    with sock:
        sock.sendall(masked(0x1, b"one") + masked(0x2, b"two") + masked(0x3, b""))
        assert read_frame(reader) == (0x1, b"one")
        assert read_frame(reader) == (0x2, b"two")
        assert read_close_code(reader) == 1002
        assert reader.all() == b""
    wait_for(lambda: closed_events(server.app) != [])
    assert closed_events(server.app)[0].startswith("closed 1002")


def test_one_message_larger_than_the_queue_bound_goes_through(make_server: MakeServer) -> None:
    """ws_max_queue_bytes bounds a backlog, not a message the site allows."""
    limits = Limits(ws_max_queue_bytes=64 * 1024, max_ws_message_bytes=1 << 20)
    server = make_server(echo_handler, limits=limits)
    big = os.urandom(512 * 1024)
    with connect(server.ws_url + "/", max_size=None) as ws:
        ws.send(big)
        assert ws.recv() == big
        ws.send("x" * (300 * 1024))
        assert ws.recv() == "x" * (300 * 1024)
    wait_for(lambda: closed_events(server.app) == ["closed 1000"])


def test_a_failing_close_lingers_so_the_client_reads_its_code(make_server: MakeServer) -> None:
    """A client still sending a too-large message reads 1009, never a reset (a loop)."""
    server = make_server(echo_handler, limits=Limits(max_ws_message_bytes=64 * 1024))
    payload = b"x" * (4 << 20)
    for _ in range(8):
        sock, reader = raw_upgrade(server)
        with sock:
            header = struct.pack("!BBQ", 0x82, 0x80 | 127, len(payload)) + b"\0\0\0\0"
            try:
                sock.sendall(header + payload)  # the server discards what it refused
            except OSError as exc:  # pragma: no cover - what the lingering close prevents
                pytest.fail(f"the server reset the connection while the client sent: {exc}")
            assert read_close_code(reader) == 1009
            sock.shutdown(socket.SHUT_WR)
            assert reader.all() == b""
