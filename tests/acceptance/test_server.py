"""The server: HTTP/1.1 details, limits, static files, WebSocket origins and limits,
graceful shutdown (docs/server.md)."""

from __future__ import annotations

import email.utils
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .kit import ECHO_ROUTE, Conn, Server, raw_exchange, read_all, serve_site, write_site

FILES: dict[str, str] = {
    "kitpy.toml": """
        [server]
        allowed_origins = ["https://friend.example"]
    """,
    "routes/index.py": """
        def get(event):
            return {"body": "index"}
    """,
    "routes/path/[...rest].py": """
        def get(event):
            return {"body": "path:" + event.params["rest"]}
    """,
    "routes/upload.py": """
        async def post(event):
            total = 0
            async for chunk in event.request.stream():
                total += len(chunk)
            return {"body": {"len": total}}
    """,
    "routes/robots.txt.py": """
        def get(event):
            return {"body": "from the route"}
    """,
    "routes/ws/echo.py": ECHO_ROUTE,
    "static/app.js": "console.log('app');\n",
    "static/style.css": "body { color: red; }\n",
    "static/page.html": "<!doctype html><p>page</p>\n",
    "static/data.json": '{"k": 1}\n',
    "static/robots.txt": "User-agent: *\n",
    "static/sub/deep.txt": "0123456789" * 10,
    "static/.env": "DOTFILE-SECRET\n",
    "secret.txt": "TOPSECRET-OUTSIDE-STATIC\n",
}


def _links(root: Path) -> None:
    (root / "static" / "link.txt").symlink_to(root / "secret.txt")
    (root / "static" / "linkdir").symlink_to(root)


site, server, client = serve_site(FILES, prepare=_links)


def status_of(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1])


# -- HTTP/1.1 -------------------------------------------------------------------------


def test_date_and_server_headers(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.headers["server"]
    parsed = email.utils.parsedate_to_datetime(response.headers["date"])
    assert parsed.tzinfo is not None
    assert response.headers["date"].endswith("GMT")


def test_keep_alive_two_requests_one_connection(server: Server) -> None:
    with Conn(server.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = conn.response()
        assert status.startswith("HTTP/1.1 200") and body == b"index"
        conn.send(b"GET /path/two HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = conn.response()
        assert status.startswith("HTTP/1.1 200") and body == b"path:two"


def test_pipelining_answers_in_order(server: Server) -> None:
    with Conn(server.port) as conn:
        conn.send(
            b"GET /path/first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /path/third HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        assert conn.response()[2] == b"path:first"
        assert conn.response()[2].replace(b" ", b"") == b'{"len":5}'
        assert conn.response()[2] == b"path:third"


def test_connection_close_is_honoured(server: Server) -> None:
    data = raw_exchange(
        server.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status_of(data) == 200 and data.endswith(b"index")


def test_expect_100_continue_raw(server: Server) -> None:
    with Conn(server.port) as conn:
        conn.send(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        status, _, _ = conn.response()
        assert status.startswith("HTTP/1.1 100")
        conn.send(b"0123456789")
        status, _, body = conn.response()
        assert status.startswith("HTTP/1.1 200")
        assert b"10" in body


def test_expect_100_continue_curl(server: Server, tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"z" * 500_000)
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-v",
            "--max-time",
            "15",
            "--expect100-timeout",
            "10",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            f"@{payload}",
            f"{server.url}/upload",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert "HTTP/1.1 100 Continue" in result.stderr
    assert result.stdout.replace(" ", "") == '{"len":500000}'


def test_chunked_request_body(server: Server) -> None:
    with Conn(server.port) as conn:
        conn.send(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        status, _, body = conn.response()
        assert status.startswith("HTTP/1.1 200")
        assert body.replace(b" ", b"") == b'{"len":11}'


# -- limits ---------------------------------------------------------------------------


def test_header_block_over_16k_is_431(client: httpx.Client) -> None:
    response = client.get("/", headers={"x-big": "a" * 17_000})
    assert response.status_code == 431


def test_header_block_under_16k_is_fine(client: httpx.Client) -> None:
    response = client.get("/", headers={"x-big": "a" * 12_000})
    assert response.status_code == 200


def test_body_over_1mib_is_413_without_sending_it(server: Server) -> None:
    data = raw_exchange(
        server.port,
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000000\r\n\r\n",
    )
    assert status_of(data) == 413


def test_body_of_exactly_1mib_is_fine(client: httpx.Client) -> None:
    response = client.post("/upload", content=b"a" * (1024 * 1024))
    assert response.status_code == 200
    assert response.json() == {"len": 1024 * 1024}


def test_chunked_body_over_1mib_is_413(client: httpx.Client) -> None:
    def gen() -> Iterator[bytes]:
        for _ in range(20):
            yield b"b" * 100_000

    try:
        response = client.post("/upload", content=gen())
    except httpx.TransportError:
        # httpx gave up writing once the server refused the body; ask again on a raw
        # socket that keeps reading after its writes fail, so the 413 is still checked.
        response = None
    if response is not None:
        assert response.status_code == 413
        return
    chunk = b"186a0\r\n" + b"b" * 100_000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", client.base_url.port or 80), timeout=5) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(20):
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading after answering
        data = read_all(sock)
    assert status_of(data) == 413


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    ],
)
def test_malformed_request_is_400(server: Server, request_bytes: bytes) -> None:
    data = raw_exchange(server.port, request_bytes)
    assert status_of(data) == 400


def test_bad_request_does_not_kill_server(client: httpx.Client, server: Server) -> None:
    raw_exchange(server.port, b"\x00\x01\x02 nonsense\r\n\r\n")
    assert client.get("/").status_code == 200


# -- static files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/app.js", ("text/javascript", "application/javascript")),
        ("/style.css", ("text/css",)),
        ("/page.html", ("text/html",)),
        ("/data.json", ("application/json",)),
        ("/robots.txt", ("text/plain",)),
    ],
)
def test_static_content_types(client: httpx.Client, path: str, ctype: tuple[str, ...]) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0].strip() in ctype


def test_static_wins_over_route(client: httpx.Client) -> None:
    assert client.get("/robots.txt").text == "User-agent: *\n"


def test_static_subfolder(client: httpx.Client) -> None:
    assert client.get("/sub/deep.txt").text == "0123456789" * 10


def test_static_etag_304(client: httpx.Client) -> None:
    first = client.get("/app.js")
    etag = first.headers["etag"]
    again = client.get("/app.js", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""


def test_static_last_modified_304(client: httpx.Client) -> None:
    first = client.get("/style.css")
    modified = first.headers["last-modified"]
    again = client.get("/style.css", headers={"if-modified-since": modified})
    assert again.status_code == 304


def test_static_head(client: httpx.Client) -> None:
    response = client.head("/sub/deep.txt")
    assert response.status_code == 200
    assert response.headers["content-length"] == "100"
    assert response.content == b""


def test_static_range_206(client: httpx.Client) -> None:
    response = client.get("/sub/deep.txt", headers={"range": "bytes=10-14"})
    assert response.status_code == 206
    assert response.content == b"01234"
    assert response.headers["content-range"] == "bytes 10-14/100"
    suffix = client.get("/sub/deep.txt", headers={"range": "bytes=-3"})
    assert (suffix.status_code, suffix.content) == (206, b"789")


def test_static_range_unsatisfiable_416(client: httpx.Client) -> None:
    response = client.get("/sub/deep.txt", headers={"range": "bytes=500-600"})
    assert response.status_code == 416


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "/..%5csecret.txt",
        "/sub/..%5c..%5csecret.txt",
        "/%252e%252e/secret.txt",
        "/link.txt",
        "/linkdir/secret.txt",
        "/linkdir/kitpy.toml",
        "/.env",
        "/%00/../secret.txt",
        "/static/../secret.txt",
        "//secret.txt",
    ],
)
def test_static_traversal_leaks_nothing(server: Server, target: str) -> None:
    data = raw_exchange(
        server.port,
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
    )
    assert b"TOPSECRET" not in data
    assert b"DOTFILE-SECRET" not in data
    assert b"allowed_origins" not in data
    if data:
        assert status_of(data) in (301, 308, 400, 403, 404), data[:300]


# -- WebSockets -----------------------------------------------------------------------


def test_ws_without_origin_allowed(server: Server) -> None:
    with connect(server.ws_url + "/ws/echo", open_timeout=5, close_timeout=5) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"


def test_ws_same_host_origin_allowed(server: Server) -> None:
    origin = f"http://127.0.0.1:{server.port}"
    with connect(
        server.ws_url + "/ws/echo",
        origin=origin,  # type: ignore[arg-type]
        open_timeout=5,
        close_timeout=5,
    ) as ws:
        ws.send("same")
        assert ws.recv(timeout=5) == "same"


def test_ws_listed_origin_allowed(server: Server) -> None:
    with connect(
        server.ws_url + "/ws/echo",
        origin="https://friend.example",  # type: ignore[arg-type]
        open_timeout=5,
        close_timeout=5,
    ) as ws:
        ws.send("friend")
        assert ws.recv(timeout=5) == "friend"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://localhost:1", "null", "http://127.0.0.1:1"],
)
def test_ws_foreign_origin_refused(server: Server, origin: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(
            server.ws_url + "/ws/echo",
            origin=origin,  # type: ignore[arg-type]
            open_timeout=5,
            close_timeout=5,
        )
    assert info.value.response.status_code == 403


def test_ws_message_over_1mib_closes_1009(server: Server) -> None:
    with connect(
        server.ws_url + "/ws/echo",
        open_timeout=5,
        close_timeout=5,
        compression=None,
        max_size=None,
    ) as ws:
        ws.send("a" * 1000)
        assert ws.recv(timeout=5) == "a" * 1000
        try:
            ws.send(b"x" * (1024 * 1024 + 1))
        except ConnectionClosed:
            pass
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1009


def test_ws_message_of_1mib_is_fine(server: Server) -> None:
    with connect(
        server.ws_url + "/ws/echo",
        open_timeout=5,
        close_timeout=5,
        compression=None,
        max_size=None,
    ) as ws:
        ws.send(b"y" * (1024 * 1024))
        assert len(ws.recv(timeout=10)) == 1024 * 1024


def test_ws_subprotocol_none_requested_is_fine(server: Server) -> None:
    with connect(server.ws_url + "/ws/echo", open_timeout=5, close_timeout=5) as ws:
        assert ws.subprotocol is None


# -- graceful shutdown ----------------------------------------------------------------


def test_sigterm_closes_websockets_1001_and_exits_0(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", {k: v for k, v in FILES.items() if k != "secret.txt"})
    srv = Server(site)
    try:
        srv.start()
        with (
            connect(srv.ws_url + "/ws/echo", open_timeout=5, close_timeout=5) as a,
            connect(srv.ws_url + "/ws/echo", open_timeout=5, close_timeout=5) as b,
        ):
            a.send("1")
            b.send("2")
            assert a.recv(timeout=5) == "1" and b.recv(timeout=5) == "2"
            assert srv.stop(signal.SIGTERM) == 0
            for ws in (a, b):
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=5)
                assert ws.close_code == 1001
    finally:
        srv.kill()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


def test_sigint_exits_0(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", {"routes/index.py": FILES["routes/index.py"]})
    srv = Server(site)
    try:
        srv.start()
        assert httpx.get(srv.url + "/", timeout=5).text == "index"
        assert srv.stop(signal.SIGINT) == 0
    finally:
        srv.kill()


def test_sigterm_lets_request_in_flight_finish(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/slow.py": """
                import anyio

                async def get(event):
                    await anyio.sleep(1.0)
                    return {"body": "finished"}
            """
        },
    )
    srv = Server(site)
    try:
        srv.start()
        with Conn(srv.port, timeout=10) as conn:
            conn.send(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.3)
            assert srv.process is not None
            os.kill(srv.process.pid, signal.SIGTERM)
            status, _, body = conn.response()
            assert status.startswith("HTTP/1.1 200") and body == b"finished"
        assert srv.stop() == 0
    finally:
        srv.kill()
