"""Limits with clear answers: 431, 413, 400, slowloris, idle keep-alive, connection cap."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from kitpy.errors import HTTPError
from kitpy.http import Request, Response
from kitpy.protocol import Limits

from .conftest import App, Reader, RunningServer, recv_all

MakeServer = Callable[..., RunningServer]


async def hello(app: App, request: Request) -> Response:
    return Response("hello")


async def read_all(app: App, request: Request) -> Response:
    try:
        body = await request.body()
    except HTTPError as exc:
        app.events.append(f"body error {exc.status}")
        raise
    return Response(str(len(body)))


def test_header_block_too_large_is_431(make_server: MakeServer) -> None:
    server = make_server(hello, limits=Limits(max_header_bytes=1024))
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in data
    assert server.app.calls == 0


def test_header_block_trickled_past_the_limit_is_431(make_server: MakeServer) -> None:
    server = make_server(hello, limits=Limits(max_header_bytes=1024))
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(40):
                sock.sendall(b"X-Header: " + b"a" * 90 + b"\r\n")
        except OSError:
            pass  # the server may have answered and closed already
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 431 ")


def test_content_length_over_the_limit_is_413_without_reading_it(
    make_server: MakeServer,
) -> None:
    server = make_server(read_all, limits=Limits(max_body_bytes=1000))
    with server.connect() as sock:
        # The body is never sent: the answer must not wait for it.
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in data
    assert server.app.calls == 0


def test_chunked_body_over_the_limit_is_413(make_server: MakeServer) -> None:
    server = make_server(read_all, limits=Limits(max_body_bytes=1000))
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert server.app.events[-1] == "body error 413"


def test_body_within_the_limit_passes(make_server: MakeServer) -> None:
    server = make_server(read_all, limits=Limits(max_body_bytes=1000))
    with httpx.Client() as client:
        assert client.post(server.url + "/", content=b"x" * 1000).text == "1000"


def test_body_limit_default_is_one_mebibyte(make_server: MakeServer) -> None:
    server = make_server(read_all)
    with httpx.Client() as client:
        assert client.post(server.url + "/", content=b"x" * (1 << 20)).text == str(1 << 20)
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % ((1 << 20) + 1))
        assert recv_all(sock).startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="garbage"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nBad\x00Header: y\r\n\r\n", id="nul"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            id="smuggling",
        ),
    ],
)
def test_malformed_request_is_400_and_closed(make_server: MakeServer, garbage: bytes) -> None:
    server = make_server(hello)
    with server.connect() as sock:
        sock.sendall(garbage)
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert data.count(b"HTTP/1.1") == 1
    assert server.app.calls == 0


def test_slowloris_trickle_does_not_extend_the_header_timeout(make_server: MakeServer) -> None:
    server = make_server(hello, limits=Limits(header_timeout=0.5, keepalive_timeout=5))
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    started = time.monotonic()
    closed = False
    with server.connect() as sock:
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.02)  # the whole head would take over 4 s
            if time.monotonic() - started > 8:
                break
        if not closed:
            sock.settimeout(5)
            try:
                closed = sock.recv(100) == b""
            except ConnectionResetError:
                closed = True
    assert closed
    assert server.app.calls == 0


def test_idle_keep_alive_connection_is_closed(make_server: MakeServer) -> None:
    server = make_server(hello, limits=Limits(keepalive_timeout=0.3))
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Reader(sock)
        assert reader.response()[2] == b"hello"
        assert reader.all() == b""  # closed by the server, with nothing more


def test_a_handler_slower_than_the_keepalive_timeout_still_answers(
    make_server: MakeServer,
) -> None:
    """The head deadline applies while a head is awaited, never while the app runs."""

    async def slow(app: App, request: Request) -> Response:
        await anyio.sleep(0.8)
        return Response("late")

    server = make_server(slow, limits=Limits(keepalive_timeout=0.2, header_timeout=0.3))
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Reader(sock)
        assert reader.response()[2] == b"late"
        assert reader.all() == b""  # then idle past keepalive_timeout: closed


def test_a_busy_keep_alive_connection_outlives_its_first_deadline(
    make_server: MakeServer,
) -> None:
    """Each request moves the deadline: 20 requests spread over more than one timeout."""
    server = make_server(hello, limits=Limits(keepalive_timeout=0.5))
    with server.connect() as sock:
        reader = Reader(sock)
        for _ in range(20):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reader.response()[2] == b"hello"
            time.sleep(0.05)
        assert reader.all() == b""


def test_a_fresh_silent_connection_is_closed(make_server: MakeServer) -> None:
    server = make_server(hello, limits=Limits(keepalive_timeout=0.3, header_timeout=0.6))
    with server.connect() as sock:
        assert recv_all(sock) == b""


def test_connection_cap(make_server: MakeServer) -> None:
    server = make_server(hello, limits=Limits(max_connections=1, keepalive_timeout=10))
    with server.connect() as first:
        first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(first).response()[2] == b"hello"
        second = server.connect()
        with second:
            second.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            second.settimeout(0.5)
            with pytest.raises(socket.timeout):
                second.recv(100)  # waiting in the backlog while the first is open
            first.close()
            second.settimeout(5)
            assert Reader(second).response()[2] == b"hello"


def test_stalled_body_is_408(make_server: MakeServer) -> None:
    server = make_server(read_all, limits=Limits(header_timeout=0.3))
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert server.app.events == ["startup", "body error 408"]


def test_trickled_body_is_408_at_body_timeout(make_server: MakeServer) -> None:
    """A byte every 50 ms never stalls for header_timeout, but the whole body has
    body_timeout to arrive: then 408 and the connection closes."""
    server = make_server(read_all, limits=Limits(header_timeout=5.0, body_timeout=0.5))
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        sock.settimeout(0.05)
        data = b""
        for _ in range(200):  # 10 s at most: far past body_timeout
            try:
                sock.send(b"x")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            data += chunk
            if not chunk or b"\r\n\r\n" in data:
                break
        sock.settimeout(5)
        data += recv_all(sock)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"connection: close" in data
    assert b"took too long" in data
    assert server.app.events == ["startup", "body error 408"]


def test_body_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="body_timeout"):
        Limits(body_timeout=0)
