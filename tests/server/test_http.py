"""HTTP/1.1 on a real loopback server, with httpx, curl and raw sockets."""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable

import anyio
import httpx
import pytest

from kitpy.errors import HTTPError
from kitpy.http import Request, Response
from kitpy.server.accesslog import format_line
from kitpy.server.requestid import REQUEST_ID, RequestIdFormatter

from .conftest import App, Reader, RunningServer, recv_all, recv_until, wait_for

MakeServer = Callable[..., RunningServer]


async def hello(app: App, request: Request) -> Response:
    return Response("hello")


async def echo(app: App, request: Request) -> Response:
    return Response(await request.body(), headers={"x-method": request.method})


async def describe(app: App, request: Request) -> Response:
    url = request.url
    text = f"{request.method}|{url.path}|{url.query_string}|{url.host}|{url.port}|{request.client}"
    return Response(text)


def test_get(make_server: MakeServer) -> None:
    server = make_server(hello)
    with httpx.Client() as client:
        response = client.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["content-length"] == "5"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["server"] == "kitpy"
    assert "GMT" in response.headers["date"]


def test_request_fields(make_server: MakeServer) -> None:
    server = make_server(describe)
    with httpx.Client() as client:
        response = client.get(server.url + "/a%20b/c?x=1&y=2")
    method, path, query, host, port, peer = response.text.split("|")
    assert (method, path, query, host) == ("GET", "/a b/c", "x=1&y=2", "127.0.0.1")
    assert int(port) == server.port
    assert peer.startswith("('127.0.0.1', ")


def test_keep_alive_serves_many_requests_on_one_connection(make_server: MakeServer) -> None:
    server = make_server(echo)
    with server.connect() as sock:
        for n in range(3):
            body = f"body {n}".encode()
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            status, headers, content = Reader(sock).response()
            assert (status, content) == (200, body)
            assert "connection" not in headers


def test_pipelined_requests_are_answered_in_order(make_server: MakeServer) -> None:
    async def slow_first(app: App, request: Request) -> Response:
        if request.url.path == "/0":
            await anyio.sleep(0.2)
        return Response(request.url.path)

    server = make_server(slow_first)
    with server.connect() as sock:
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(5)))
        reader = Reader(sock)
        bodies = [reader.response()[2] for _ in range(5)]
    assert bodies == [b"/0", b"/1", b"/2", b"/3", b"/4"]


def test_streamed_request_body_is_read_chunk_by_chunk(make_server: MakeServer) -> None:
    seen: list[int] = []

    async def count_chunks(app: App, request: Request) -> Response:
        total = 0
        async for chunk in request.stream():
            seen.append(len(chunk))
            total += len(chunk)
        return Response(str(total))

    server = make_server(count_chunks)

    def chunks() -> object:
        for _ in range(20):
            yield b"x" * 10_000

    with httpx.Client() as client:
        response = client.post(server.url + "/", content=chunks())  # type: ignore[arg-type]
    assert response.text == "200000"
    assert len(seen) > 1  # it came in pieces, not as one buffered body


def test_streamed_response_goes_out_chunked(make_server: MakeServer) -> None:
    async def stream(app: App, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for n in range(5):
                yield b"part %d\n" % n
                await anyio.sleep(0)

        return Response(body(), headers={"content-type": "text/plain"})

    server = make_server(stream)
    with httpx.Client() as client, client.stream("GET", server.url + "/") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        parts = list(response.iter_lines())
    assert parts == [f"part {n}" for n in range(5)]


def test_streamed_response_with_sync_iterator_and_length(make_server: MakeServer) -> None:
    async def stream(app: App, request: Request) -> Response:
        return Response(iter([b"ab", b"cd"]), headers={"content-length": "4"})

    server = make_server(stream)
    with httpx.Client() as client:
        response = client.get(server.url + "/")
    assert response.content == b"abcd"
    assert "transfer-encoding" not in response.headers


def test_big_streamed_response_has_backpressure(make_server: MakeServer) -> None:
    produced: list[int] = []

    async def big(app: App, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for n in range(400):
                produced.append(n)
                yield b"x" * 65536

        return Response(body())

    server = make_server(big)
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        recv_until(sock, b"\r\n\r\n")
        # Not reading: the producer must stall well before the 25 MiB end.
        time.sleep(0.3)
        assert len(produced) < 400
        total = 0
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
            if b"0\r\n\r\n" in chunk[-5:]:
                break
    assert len(produced) == 400


def test_head_has_no_body(make_server: MakeServer) -> None:
    server = make_server(hello)
    with server.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(sock, b"hello")
    first, _, second = data.partition(b"\r\n\r\n")
    assert b"content-length: 5" in first
    assert second.startswith(b"HTTP/1.1 200 OK")  # no stray body between the two


def test_expect_100_continue(make_server: MakeServer) -> None:
    server = make_server(echo)
    with server.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = Reader(sock)
        assert reader.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        status, _, body = reader.response()
    assert (status, body) == (200, b"hello")


def test_expect_100_continue_refused_without_reading(make_server: MakeServer) -> None:
    async def refuse(app: App, request: Request) -> Response:
        return Response("no", status=401)

    server = make_server(refuse)
    with server.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 401 ")
    assert b"100 Continue" not in data and b"connection: close" in data


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", id="close"),
        pytest.param(b"GET / HTTP/1.0\r\n\r\n", id="http10"),
    ],
)
def test_connection_close_is_honoured(make_server: MakeServer, request_bytes: bytes) -> None:
    server = make_server(hello)
    with server.connect() as sock:
        sock.sendall(request_bytes)
        data = recv_all(sock)  # the server closes after the response
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" in data and data.endswith(b"hello")


def test_unread_small_body_is_drained_and_the_connection_kept(make_server: MakeServer) -> None:
    server = make_server(hello)
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Reader(sock)
        assert reader.response()[2] == b"hello"
        assert reader.response()[2] == b"hello"


def test_app_exception_is_a_plain_500_with_the_traceback_logged(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(app: App, request: Request) -> Response:
        raise RuntimeError("secret detail")

    server = make_server(broken)
    with caplog.at_level(logging.ERROR, logger="kitpy.server"), httpx.Client() as client:
        response = client.get(server.url + "/boom")
        assert client.get(server.url + "/again").status_code == 500  # still serving
    assert response.status_code == 500
    assert response.text == "Internal Server Error\n"
    assert "secret" not in response.text
    record = next(r for r in caplog.records if "/boom" in r.getMessage())
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])


def test_http_error_from_the_app_gives_its_status(make_server: MakeServer) -> None:
    async def missing(app: App, request: Request) -> Response:
        raise HTTPError(404, "no such thing", headers={"x-why": "gone"})

    server = make_server(missing)
    with httpx.Client() as client:
        response = client.get(server.url + "/")
    assert response.status_code == 404
    assert response.text == "no such thing\n" and response.headers["x-why"] == "gone"


@pytest.mark.parametrize(
    ("result", "why"),
    [
        pytest.param(Response(status=103), "1xx", id="informational"),
        pytest.param({"status": 200}, "not a Response", id="dict"),
    ],
)
def test_bad_app_results_are_500(make_server: MakeServer, result: object, why: str) -> None:
    async def bad(app: App, request: Request) -> Response:
        return result  # type: ignore[return-value]

    server = make_server(bad)
    with httpx.Client() as client:
        assert client.get(server.url + "/").status_code == 500


def test_failing_stream_cuts_the_response(make_server: MakeServer) -> None:
    async def failing(app: App, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"start"
            raise RuntimeError("mid-stream")

        return Response(body())

    server = make_server(failing)
    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url + "/")


def test_access_log_lines(make_server: MakeServer) -> None:
    server = make_server(hello)
    with httpx.Client() as client:
        client.get(server.url + "/path?q=1")
        client.post(server.url + "/other", content=b"x")
    wait_for(lambda: len(server.log) == 2)
    assert server.log[0].startswith("127.0.0.1:")
    assert '"GET /path?q=1 HTTP/1.1" 200 5 ' in server.log[0]
    assert '"POST /other HTTP/1.1" 200 5 ' in server.log[1]
    assert re.fullmatch(r".* [0-9.]+ms [0-9a-f]{16}", server.log[0]), server.log[0]


def test_client_closing_after_the_whole_stream_is_logged_as_sent(
    make_server: MakeServer,
) -> None:
    """The client has every byte (Content-Length) and closes while the body's iterator
    still runs: the response was sent, so the log shows its size, not 0."""
    finished = anyio.Event()

    async def stream(app: App, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"hello"
            await finished.wait()  # cleanup after the last chunk, not to be cancelled

        return Response(body(), headers={"content-length": "5"})

    server = make_server(stream)
    with server.connect() as sock:
        sock.sendall(b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, data = Reader(sock).response()
    assert (status, data) == (200, b"hello")
    time.sleep(0.2)  # the server sees the EOF while the iterator still waits
    server.portal.call(finished.set)
    wait_for(lambda: len(server.log) == 1)
    assert '"GET /whole HTTP/1.1" 200 5 ' in server.log[0], server.log


def test_client_leaving_mid_stream_is_logged_with_the_bytes_sent(make_server: MakeServer) -> None:
    async def stream(app: App, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"start"
            await anyio.sleep_forever()

        return Response(body(), headers={"content-length": "100"})

    server = make_server(stream)
    with server.connect() as sock:
        sock.sendall(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until(sock, b"start").endswith(b"start")
    wait_for(lambda: len(server.log) == 1)
    assert '"GET /cut HTTP/1.1" 200 5 ' in server.log[0], server.log


def test_every_response_carries_a_request_id_that_its_access_line_ends_with(
    make_server: MakeServer,
) -> None:
    async def own_id(app: App, request: Request) -> Response:
        # The id is in the context while the app runs (what log lines pick up), and
        # an X-Request-Id the app sets itself gives way to it.
        return Response(REQUEST_ID.get() or "-", headers={"x-request-id": "from-the-app"})

    server = make_server(own_id)
    with httpx.Client() as client:
        first = client.get(server.url + "/a")
        second = client.get(server.url + "/b")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids) and ids[0] != ids[1], ids
    assert [first.text, second.text] == ids
    assert first.headers.get_list("x-request-id") == [ids[0]]
    wait_for(lambda: len(server.log) == 2)
    assert [line.rsplit(" ", 1)[1] for line in server.log] == ids


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        pytest.param("edge-7f3a.b_2", True, id="safe"),
        pytest.param("x" * 64, True, id="64-chars"),
        pytest.param("x" * 65, False, id="too-long"),
        pytest.param("a b", False, id="space"),
        pytest.param('"><script>', False, id="markup"),
    ],
)
def test_incoming_request_id_is_kept_only_when_short_and_safe(
    make_server: MakeServer, incoming: str, kept: bool
) -> None:
    server = make_server(hello)
    with httpx.Client() as client:
        response = client.get(server.url + "/", headers={"x-request-id": incoming})
    got = response.headers["x-request-id"]
    assert (got == incoming) is kept
    if not kept:
        assert re.fullmatch(r"[0-9a-f]{16}", got)
    wait_for(lambda: len(server.log) == 1)
    assert server.log[0].endswith(" " + got)


def test_protocol_error_response_has_a_request_id_too(make_server: MakeServer) -> None:
    server = make_server(hello)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
        status, headers, body = Reader(sock).response()
    assert status == 400 and body == b"Bad Request: invalid header\n"
    request_id = headers["x-request-id"]
    wait_for(lambda: len(server.log) == 1)
    assert '"- - HTTP/1.1" 400 0 ' in server.log[0], server.log
    assert server.log[0].endswith(" " + request_id)


def test_request_id_formatter_prefixes_every_line_during_a_request() -> None:
    formatter = RequestIdFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("kitpy", logging.ERROR, __file__, 1, "one\ntwo", None, None)
    assert formatter.format(record) == "ERROR one\ntwo"
    token = REQUEST_ID.set("abc")
    try:
        assert formatter.format(record) == "[abc] ERROR one\n[abc] two"
    finally:
        REQUEST_ID.reset(token)


def test_access_log_escapes_the_target() -> None:
    line = format_line(("::1", 5), "GET", '/a"b\x1b', "1.1", 200, 0, 0.001)
    assert line.startswith("[::1]:5 - ")
    assert "\x1b" not in line and '\\"' in line


def test_curl(make_server: MakeServer) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    server = make_server(echo)
    result = subprocess.run(
        [curl, "-sS", "-i", "--max-time", "10", "-d", "from curl", server.url + "/"],
        capture_output=True,
        timeout=20,
        check=True,
    )
    assert result.stdout.startswith(b"HTTP/1.1 200 OK")
    assert result.stdout.endswith(b"\r\n\r\nfrom curl")
    assert b"x-method: POST" in result.stdout


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
def test_ipv6(make_server: MakeServer) -> None:
    server = make_server(describe, host="::1")
    assert server.host == "::1"
    with httpx.Client() as client:
        response = client.get(server.url + "/v6")
    assert response.status_code == 200
    assert "|::1|" in response.text and "('::1', " in response.text
