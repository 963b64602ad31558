"""What the fast paths (plain head reader, cached head lines, route match cache, lazy
cookies, deferred access-log formatting) must not change, seen by real clients of a
real ``kitpy serve`` (docs/server.md, docs/endpoints.md, docs/routes.md)."""

from __future__ import annotations

import email.utils
import json
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from .kit import ECHO_ROUTE, Conn, Server, raw_exchange, serve_site, write_site

SHOW = """
def get(event):
    return {"body": {"route": event.route, "params": event.params}}
"""

FILES: dict[str, str] = {
    "kitpy.toml": """
        [server]
        trusted_proxies = ["10.0.0.0/8"]
        cookie_secret = "0123456789abcdef-test-secret"
    """,
    "hooks.py": """
        async def handle(event, resolve):
            if event.url.path == "/hook-cookie":
                event.cookies.set("from_hook", "1")
            response = await resolve(event)
            if event.url.path == "/late-cookie":
                event.cookies.set("late", "yes")
            response.headers["x-hooked"] = "1"
            return response
    """,
    "routes/index.py": """
        def get(event):
            return {"body": "root"}
    """,
    "routes/about.py": """
        def get(event):
            event.params["touched"] = "yes"  # a handler may change its own dict
            return {"body": {"route": event.route, "params": event.params}}
    """,
    "routes/~user.py": SHOW,
    "routes/blog/special.py": SHOW,
    "routes/blog/[slug].py": SHOW,
    "routes/[[lang]]/page.py": SHOW,
    "routes/n/[id=int].py": SHOW,
    "routes/n/[x].py": SHOW,
    "routes/files/[...rest].py": SHOW,
    "routes/where.py": """
        def get(event):
            return {"body": {
                "host": event.url.host,
                "port": event.url.port,
                "scheme": event.url.scheme,
                "client": list(event.client) if event.client else None,
                "query": event.url.query.get_all("a"),
            }}
    """,
    "routes/mine.py": """
        def get(event):
            return {"headers": {"server": "mine/1", "x-request-id": "app-made"}, "body": "m"}
    """,
    "routes/status/[code].py": """
        from kitpy import Response

        def get(event):
            code = int(event.params["code"])
            return Response("some body", code, {"etag": '"v1"'})
    """,
    "routes/created.py": """
        from http import HTTPStatus

        def get(event):
            return {"status": HTTPStatus.CREATED, "body": "made"}
    """,
    "routes/cookie.py": """
        def get(event):
            action = event.url.query.get("do")
            if action == "set":
                event.cookies.set("plain", "v1")
                event.cookies.set("who", "ann", signed=True)
            elif action == "delete":
                event.cookies.delete("plain")
            return {"body": {
                "plain": event.cookies.get("plain"),
                "who": event.cookies.get("who", signed=True),
            }}
    """,
    "routes/hook-cookie.py": """
        def get(event):
            return {"body": "h"}
    """,
    "routes/late-cookie.py": """
        def get(event):
            return {"body": "l"}
    """,
    "routes/echo.py": """
        async def post(event):
            data = await event.request.body()
            return {"body": {"len": len(data), "head": data[:16].decode("latin-1")}}
    """,
    "routes/stream.py": """
        from kitpy import Response

        async def parts():
            for i in range(3):
                yield f"part{i};".encode()

        def get(event):
            return Response(parts())
    """,
    "routes/ws.py": ECHO_ROUTE,
    "static/plain.txt": "static text\n",
}

site, server, client = serve_site(FILES)

REQUEST_ID = re.compile(r"[0-9a-f]{16}")
PAD = b"X-Pad: " + b"p" * 300 + b"\r\n"


def _raw(server: Server, data: bytes) -> bytes:
    return raw_exchange(server.port, data, timeout=5)


def _statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


# -- framing and connection headers -------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # space before the colon
    ],
    ids=["two-host", "two-length", "length-and-chunked", "no-host", "obs-fold", "space-colon"],
)
@pytest.mark.parametrize("pad", [False, True], ids=["short", "long"])
def test_ambiguous_heads_are_400_and_closed(server: Server, head: bytes, pad: bool) -> None:
    if pad:  # a long head: with kitpy[fast], read by llhttp rather than the plain reader
        line, _, rest = head.partition(b"\r\n")
        head = line + b"\r\n" + PAD + rest
    answer = _raw(server, head)
    assert _statuses(answer) == [400], answer
    assert b"connection: close" in answer.lower()


def test_connection_tokens_and_name_case(server: Server) -> None:
    tokens = (b"keep-alive, close", b"Close", b"CLOSE", b"upgrade, close")
    for value, pad in [(value, pad) for value in tokens for pad in (b"", PAD)]:
        head = b"GET / HTTP/1.1\r\nHost: a\r\n" + pad + b"Connection: " + value + b"\r\n\r\n"
        answer = _raw(server, head)
        assert _statuses(answer) == [200], (value, answer)
        assert b"connection: close" in answer.lower()
    # Connection: upgrade without an Upgrade header, names in any case: kept alive.
    with Conn(server.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHOST: a\r\nConnection: upgrade\r\n\r\n")
        status, headers, body = conn.response()
        assert status.startswith("HTTP/1.1 200") and body == b"root"
        assert "connection" not in headers
        conn.send(b"POST /echo HTTP/1.1\r\nhost: a\r\nCONTENT-LENGTH: 5\r\n\r\nhello")
        status, _, body = conn.response()
        assert json.loads(body) == {"len": 5, "head": "hello"}


def test_http10_with_and_without_keep_alive_closes(server: Server) -> None:
    for extra in (b"", b"Connection: keep-alive\r\n"):
        answer = _raw(server, b"GET / HTTP/1.0\r\n" + extra + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert answer.endswith(b"\r\n\r\nroot")  # answered, then the server closed
    streamed = _raw(server, b"GET /stream HTTP/1.0\r\nHost: a\r\n\r\n")
    assert b"transfer-encoding" not in streamed.lower()
    assert streamed.endswith(b"part0;part1;part2;")


def test_pipelined_mix_in_one_packet(server: Server) -> None:
    burst = (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd"
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nxy\r\n0\r\n\r\n"
        b"GET /blog/one HTTP/1.1\r\nHost: a\r\nX-Request-Id: pipe-4\r\n\r\n"
        b"HEAD /about HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /about HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    with Conn(server.port) as conn:
        conn.send(burst)
        answers = [conn.response() for _ in range(4)]
        # HEAD: headers only (Conn reads a Content-Length body; read this one by hand).
        while b"\r\n\r\n" not in conn.buf:
            conn._fill(time.monotonic() + 5)
        head_part, _, conn.buf = conn.buf.partition(b"\r\n\r\n")
        last = conn.response()
    assert [a[2] for a in answers[:1]] == [b"root"]
    assert json.loads(answers[1][2]) == {"len": 4, "head": "abcd"}
    assert json.loads(answers[2][2]) == {"len": 2, "head": "xy"}
    assert json.loads(answers[3][2])["params"] == {"slug": "one"}
    assert answers[3][1]["x-request-id"] == "pipe-4"
    ids = [a[1]["x-request-id"] for a in answers[:3]]
    assert all(REQUEST_ID.fullmatch(i) for i in ids) and len(set(ids)) == 3
    get_length = int(last[1]["content-length"])
    assert f"content-length: {get_length}".encode() in head_part.lower()
    assert last[1].get("connection") == "close"


def test_expect_continue_then_keep_alive(server: Server) -> None:
    with Conn(server.port) as conn:
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n"
        )
        status, _, _ = conn.response()
        assert status.startswith("HTTP/1.1 100")
        conn.send(b"abc")
        status, _, body = conn.response()
        assert json.loads(body) == {"len": 3, "head": "abc"}
        conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert conn.response()[2] == b"root"


# -- response head lines ------------------------------------------------------------------


def test_date_advances_on_one_connection(server: Server) -> None:
    with Conn(server.port) as conn:
        dates = []
        for _ in range(2):
            conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            _, headers, _ = conn.response()
            dates.append(email.utils.parsedate_to_datetime(headers["date"]).timestamp())
            time.sleep(1.2)
    assert dates[1] > dates[0]
    assert abs(dates[1] - time.time()) < 60


def test_app_server_header_and_request_id(client: httpx.Client) -> None:
    response = client.get("/mine")
    assert response.headers.get_list("server") == ["mine/1"]
    assert len(response.headers.get_list("date")) == 1
    assert response.headers.get_list("x-request-id") != ["app-made"]
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
    plain = client.get("/")
    assert len(plain.headers.get_list("server")) == 1 and plain.headers["server"] != "mine/1"


def test_request_ids_kept_when_safe_fresh_otherwise(client: httpx.Client) -> None:
    assert client.get("/", headers={"x-request-id": "lb-1.a_B"}).headers["x-request-id"] == (
        "lb-1.a_B"
    )
    for bad in ("has space", "x" * 65, "semi;colon"):
        got = client.get("/", headers={"x-request-id": bad}).headers["x-request-id"]
        assert REQUEST_ID.fullmatch(got), (bad, got)
    ids = {client.get("/").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_statuses_and_head(server: Server, code: int) -> None:
    rid = f"bodyless-{code}"
    with Conn(server.port) as conn:
        conn.send(f"GET /status/{code} HTTP/1.1\r\nHost: a\r\nX-Request-Id: {rid}\r\n\r\n".encode())
        status, headers, _ = conn.response()
        assert status.startswith(f"HTTP/1.1 {code}")
        assert "transfer-encoding" not in headers
        if code == 204:
            assert "content-length" not in headers
        conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # no stray body bytes before it
        assert conn.response()[2] == b"root"
    # The access line counts the body bytes written: none (the route's body is dropped).
    log = server.wait_log(lambda text: rid in text)
    line = next(line for line in log.splitlines() if line.endswith(rid))
    assert f'"GET /status/{code} HTTP/1.1" {code} 0 ' in line, line


def test_unusual_statuses_on_the_status_line(server: Server) -> None:
    for code in (299, 420, 599):
        answer = _raw(
            server, f"GET /status/{code} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
        )
        assert answer.startswith(f"HTTP/1.1 {code} ".encode()), answer
        assert answer.endswith(b"some body")
    created = _raw(server, b"GET /created HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert created.startswith(b"HTTP/1.1 201 Created\r\n") and created.endswith(b"made")


# -- the access log -----------------------------------------------------------------------


def test_access_lines_written_by_the_end_of_a_sigterm(tmp_path: Path) -> None:
    root = write_site(
        tmp_path / "site", {k: v for k, v in FILES.items() if k.startswith("routes/")}
    )
    srv = Server(root).start()
    try:
        burst = b"".join(
            f'GET /files/{i}?q="x" HTTP/1.1\r\nHost: a\r\nX-Request-Id: burst-{i}\r\n\r\n'.encode()
            for i in range(40)
        )
        with Conn(srv.port) as conn:
            conn.send(burst + b"HEAD /about HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            bodies = [conn.response()[2] for _ in range(40)]
        assert len(bodies) == 40
        assert srv.stop(signal.SIGTERM) == 0
        log = srv.log()
    finally:
        srv.kill()
    lines = [line for line in log.splitlines() if '"GET /files/' in line]
    assert len(lines) == 40, log
    for i, line in enumerate(lines):
        assert line.startswith("127.0.0.1:")
        assert f'"GET /files/{i}?q=\\"x\\" HTTP/1.1" 200 {len(bodies[i])} ' in line, line
        assert line.endswith(f"ms burst-{i}")
    head = [line for line in log.splitlines() if '"HEAD /about HTTP/1.1" 200 0 ' in line]
    assert len(head) == 1 and REQUEST_ID.search(head[0].rsplit(" ", 1)[1])


# -- routing fast paths -------------------------------------------------------------------


def test_route_cache_never_mixes_routes(client: httpx.Client) -> None:
    for _ in range(3):  # the second and third rounds come from the cache, when there is one
        about = client.get("/about").json()
        assert about == {"route": "/about", "params": {"touched": "yes"}}
        assert client.get("/blog/special").json() == {"route": "/blog/special", "params": {}}
        assert client.get("/blog/other").json()["params"] == {"slug": "other"}
        assert client.get("/page").json() == {"route": "/[[lang]]/page", "params": {}}
        assert client.get("/en/page").json()["params"] == {"lang": "en"}
        assert client.get("/n/42").json()["route"] == "/n/[id=int]"
        assert client.get("/n/abc").json()["route"] == "/n/[x]"
        assert client.get("/files").json()["params"] == {"rest": ""}
        assert client.get("/files/a/b").json()["params"] == {"rest": "a/b"}
        assert client.get("/About").status_code == 404
        redirect = client.get("/about/?x=1")
        assert redirect.status_code == 308 and redirect.headers["location"] == "/about?x=1"


def test_percent_encoded_paths(server: Server) -> None:
    for path in ("/~user", "/%7Euser", "/%7euser"):
        answer = httpx.get(server.url + path)
        assert answer.status_code == 200, path
        assert answer.json()["route"] == "/~user"
    slug = httpx.get(server.url + "/blog/a%2Fb").json()
    assert slug == {"route": "/blog/[slug]", "params": {"slug": "a/b"}}
    assert httpx.get(server.url + "/blog%2Fspecial").status_code == 404


def test_query_host_and_proxies(server: Server) -> None:
    def where(host: bytes, extra: bytes = b"", target: bytes = b"/where") -> dict[str, object]:
        answer = _raw(
            server,
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: "
            + host
            + b"\r\n"
            + extra
            + b"Connection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 200"), answer
        return json.loads(answer.partition(b"\r\n\r\n")[2])

    assert where(b"example.com:8080")["host"] == "example.com"
    assert where(b"example.com:8080")["port"] == 8080
    v6 = where(b"[::1]:9000")
    assert (v6["host"], v6["port"]) == ("::1", 9000)
    assert where(b"example.com", target=b"/where?a=1&a=%20two+x")["query"] == ["1", " two x"]
    # 127.0.0.1 is not in trusted_proxies (10.0.0.0/8): forwarded headers are ignored.
    plain = where(b"example.com", b"X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Proto: https\r\n")
    assert plain["scheme"] == "http" and plain["client"][0] == "127.0.0.1"


def test_cookies_set_read_delete_and_signed(client: httpx.Client) -> None:
    fresh = httpx.Client(base_url=str(client.base_url))
    with fresh:
        assert fresh.get("/cookie").json() == {"plain": None, "who": None}
        made = fresh.get("/cookie?do=set")
        assert len(made.headers.get_list("set-cookie")) == 2
        assert fresh.get("/cookie").json() == {"plain": "v1", "who": "ann"}
        gone = fresh.get("/cookie?do=delete")
        deleted = [c for c in gone.headers.get_list("set-cookie") if c.startswith("plain=")]
        assert deleted and ("max-age=0" in deleted[0].lower() or "expires" in deleted[0].lower())
    untouched = client.get("/")
    assert "set-cookie" not in untouched.headers
    assert client.get("/hook-cookie").headers["set-cookie"].startswith("from_hook=1")
    assert client.get("/late-cookie").headers["set-cookie"].startswith("late=yes")


def test_signed_cookie_refuses_a_changed_value(server: Server) -> None:
    made = httpx.get(server.url + "/cookie?do=set")
    signed = next(c for c in made.headers.get_list("set-cookie") if c.startswith("who="))
    value = signed.split(";", 1)[0][len("who=") :]
    good = httpx.get(server.url + "/cookie", headers={"cookie": f"who={value}"})
    assert good.json()["who"] == "ann"
    bad = httpx.get(server.url + "/cookie", headers={"cookie": f"who=bob{value[3:]}"})
    assert bad.json()["who"] is None


def test_static_file_hooks_and_websocket(server: Server) -> None:
    answer = httpx.get(server.url + "/plain.txt")
    assert answer.text == "static text\n" and answer.headers["x-hooked"] == "1"
    head = httpx.head(server.url + "/plain.txt")
    assert head.headers["content-length"] == str(len("static text\n")) and head.content == b""
    with connect(server.ws_url + "/ws", open_timeout=5) as ws:
        for message in ("one", "two", b"\x00bin"):
            ws.send(message)
            assert ws.recv(timeout=5) == message
        ws.ping(b"p").wait(5)


def test_concurrent_clients_get_their_own_answers(server: Server) -> None:
    def one_client(n: int) -> list[str]:
        problems = []
        with Conn(server.port, timeout=10) as conn:
            for i in range(20):
                rid = f"c{n}-r{i}"
                conn.send(
                    f"GET /blog/s{n}x{i} HTTP/1.1\r\nHost: a\r\nX-Request-Id: {rid}\r\n\r\n"
                    f"GET /blog/special HTTP/1.1\r\nHost: a\r\n\r\n".encode()
                )
                _, headers, body = conn.response()
                if headers.get("x-request-id") != rid or json.loads(body)["params"] != {
                    "slug": f"s{n}x{i}"
                }:
                    problems.append(f"{rid}: {headers} {body!r}")
                _, _, body = conn.response()
                if json.loads(body) != {"route": "/blog/special", "params": {}}:
                    problems.append(f"{rid} special: {body!r}")
        return problems

    with ThreadPoolExecutor(8) as pool:
        problems = [p for found in pool.map(one_client, range(8)) for p in found]
    assert problems == []


def test_dev_reload_forgets_routes_removed_and_sees_routes_added(tmp_path: Path) -> None:
    root = write_site(
        tmp_path / "site",
        {
            "routes/about.py": SHOW,
            "routes/blog/[slug].py": SHOW,
        },
    )
    srv = Server(root, command="dev").start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as web:
            for _ in range(2):  # served twice: remembered, when matches are cached
                assert web.get("/about").json()["route"] == "/about"
                assert web.get("/blog/special").json()["route"] == "/blog/[slug]"
            (root / "routes" / "about.py").unlink()
            (root / "routes" / "[name].py").write_text(SHOW)
            (root / "routes" / "blog" / "special.py").write_text(SHOW)
            deadline = time.monotonic() + 20
            routes: tuple[object, ...] = ()
            while time.monotonic() < deadline:
                try:
                    routes = (
                        web.get("/about").json()["route"],
                        web.get("/blog/special").json()["route"],
                    )
                except (httpx.TransportError, ValueError, KeyError):
                    pass
                if routes == ("/[name]", "/blog/special"):
                    break
                time.sleep(0.2)
            assert routes == ("/[name]", "/blog/special")
            assert web.get("/about").json()["params"] == {"name": "about"}
        assert srv.stop() == 0
    finally:
        srv.kill()


def test_static_files_written_by_init_are_served(tmp_path: Path) -> None:
    # init() runs once before the first request: what it writes to static/ (a build
    # step, a generated manifest) is there before anything is served.
    root = write_site(
        tmp_path / "site",
        {
            "hooks.py": """
                from pathlib import Path

                def init():
                    static = Path(__file__).parent / "static"
                    (static / "built.js").write_text("built();\\n")
                    (static / "gen").mkdir(exist_ok=True)
                    (static / "gen" / "index.html").write_text("<p>generated</p>\\n")
            """,
            "routes/[page].py": SHOW,
            "static/app.js": "app();\n",
        },
    )
    srv = Server(root).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as web:
            assert web.get("/app.js").text == "app();\n"
            assert web.get("/built.js").text == "built();\n"
            assert web.get("/gen").text == "<p>generated</p>\n"
            assert web.get("/other").json()["route"] == "/[page]"
        assert srv.stop() == 0
    finally:
        srv.kill()
