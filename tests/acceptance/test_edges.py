"""Edge cases an experienced SvelteKit / Starlette / Cloudflare user relies on.

Where the docs are silent, the expectation is noted on the test.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .kit import Conn, Server, raw_exchange, serve_site, write_site

ECHO = """
def get(event):
    return {"body": {"route": event.route, "params": event.params}}
"""

WS_ECHO = """
from kitpy import Response, WebSocketPair

async def get(event):
    client, server = WebSocketPair()
    server.accept()
    headers = {}
    wanted = event.request.headers.get("sec-websocket-protocol", "")
    if "chat" in [p.strip() for p in wanted.split(",")]:
        headers["sec-websocket-protocol"] = "chat"

    async def run():
        async for message in server:
            if message == "close-me":
                await server.close(4001, "done here")
                return
            if message == "protocol?":  # the subprotocol as the app's own end sees it
                await server.send(repr(server.protocol))
                continue
            await server.send(message)

    event.platform.wait_until(run())
    return Response(status=101, websocket=client, headers=headers)
"""

FILES: dict[str, str] = {
    "kitpy.toml": """
        [objects]
        counters = "objects.counter:Counter"

        [env]
        GREETING = "hello"
    """,
    "matchers.py": """
        def even(value: str) -> bool:
            return value.isdigit() and int(value) % 2 == 0
    """,
    "hooks.py": """
        async def handle(event, resolve):
            event.locals["hooked"] = True
            if event.url.path == "/guarded-ws" and event.request.headers.get("x-token") != "yes":
                from kitpy import Response
                return Response("no token", status=401)
            response = await resolve(event)
            response.headers["x-hooked"] = "1"
            return response
    """,
    "routes/about.py": ECHO,
    "routes/blog/[slug].py": ECHO,
    "routes/docs/[...rest].py": ECHO,
    "routes/x/[[a]].py": ECHO,
    "routes/x/[...rest].py": ECHO,
    "routes/y/foo-[c].py": ECHO,
    "routes/y/[x].py": ECHO,
    "routes/[[lang]]/home.py": ECHO,
    "routes/o2/[[n=even]].py": ECHO,
    "routes/two/[...a]/mid/[...b].py": ECHO,
    "routes/query.py": """
        def get(event):
            return {"body": {k: event.url.query.get_all(k) for k in event.url.query}}
    """,
    "routes/locals-ws.py": WS_ECHO,
    "routes/guarded-ws.py": WS_ECHO,
    "routes/postonly.py": 'def post(event):\n    return {"body": "p"}\n',
    "routes/stream.py": """
        from kitpy import Response

        async def gen():
            yield b"abc"
            yield b"def"

        def get(event):
            return Response(gen())
    """,
    "routes/json.py": """
        def get(event):
            return {"body": {"k": "v" * 100}}
    """,
    "routes/resp101-plain.py": """
        from kitpy import Response

        def get(event):
            return Response(status=101)
    """,
    "routes/err-default.py": """
        from kitpy import error

        def get(event):
            error(403)
    """,
    "routes/raise-httperror.py": """
        from kitpy import HTTPError

        def get(event):
            raise HTTPError(409, "conflict here")
    """,
    "routes/counter/[name].py": """
        async def post(event):
            c = event.platform.env.counters
            return await c.get(c.id_from_name(event.params["name"])).fetch("/incr", event.request)

        async def get(event):
            c = event.platform.env.counters
            return await c.get(c.id_from_name(event.params["name"])).fetch("/info", event.request)

        async def put(event):
            c = event.platform.env.counters
            return await c.get(c.id_from_name(event.params["name"])).fetch("/teapot", event.request)

        async def delete(event):
            c = event.platform.env.counters
            stub = c.get(c.id_from_name(event.params["name"]))
            return await stub.fetch("/missing", event.request)
    """,
    "routes/counter/[name]/ws.py": """
        async def get(event):
            c = event.platform.env.counters
            return await c.get(c.id_from_name(event.params["name"])).fetch("/ws", event.request)
    """,
    "objects/__init__.py": "",
    "objects/counter.py": """
        from kitpy import DurableObject, Response, WebSocketPair, error, json


        class Counter(DurableObject):
            def __init__(self, state, env):
                super().__init__(state, env)
                self.hits = 0
                self.greeting = env["GREETING"]

            async def fetch(self, request):
                self.hits += 1
                path = request.url.path
                if path == "/incr":
                    n = await self.state.storage.get("n") or 0
                    await self.state.storage.put("n", n + 1)
                    return json({"n": n + 1})
                if path == "/info":
                    return json({
                        "hits": self.hits,
                        "greeting": self.greeting,
                        "n": await self.state.storage.get("n"),
                        "last_close": await self.state.storage.get("last_close"),
                    })
                if path == "/teapot":
                    return Response("short", status=418, headers={"x-from-object": "yes"})
                if path == "/ws":
                    client, server = WebSocketPair()
                    self.state.accept_websocket(server)
                    return Response(status=101, websocket=client)
                error(404, "object says no")

            async def websocket_message(self, ws, message):
                await ws.send(message)

            async def websocket_close(self, ws, code, reason):
                await self.state.storage.put("last_close", [code, reason])
    """,
    "static/my file.txt": "spaced\n",
    "static/café.txt": "accent\n",
    "static/plain.txt": "plain text\n",
}


site, server, client = serve_site(FILES)


def get_raw(server: Server, target: str, extra: str = "") -> tuple[str, dict[str, str], bytes]:
    with Conn(server.port) as conn:
        conn.send(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        return conn.response()


# -- routing edges ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "route", "params"),
    [
        # SvelteKit: an optional outranks a rest
        ("/x", "/x/[[a]]", {}),
        ("/x/y", "/x/[[a]]", {"a": "y"}),
        ("/x/y/z", "/x/[...rest]", {"rest": "y/z"}),
        # static text in a segment outranks a bare parameter
        ("/y/foo-bar", "/y/foo-[c]", {"c": "bar"}),
        ("/y/bar", "/y/[x]", {"x": "bar"}),
        # an optional parameter at the start
        ("/home", "/[[lang]]/home", {}),
        ("/en/home", "/[[lang]]/home", {"lang": "en"}),
        # an optional with a matcher
        ("/o2", "/o2/[[n=even]]", {}),
        ("/o2/4", "/o2/[[n=even]]", {"n": "4"}),
        # two rests around a static segment
        ("/two/mid", "/two/[...a]/mid/[...b]", {"a": "", "b": ""}),
        ("/two/p/q/mid/r", "/two/[...a]/mid/[...b]", {"a": "p/q", "b": "r"}),
    ],
)
def test_more_precedence(
    client: httpx.Client, path: str, route: str, params: dict[str, str]
) -> None:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text)
    assert response.json() == {"route": route, "params": params}


def test_optional_matcher_rejecting_is_404(client: httpx.Client) -> None:
    assert client.get("/o2/3").status_code == 404


def test_rest_param_fully_decoded(server: Server) -> None:
    _, _, body = get_raw(server, "/docs/a%2Fb/c%20d")
    assert json.loads(body)["params"] == {"rest": "a/b/c d"}


def test_encoded_slash_does_not_split_a_static_path(server: Server) -> None:
    status, _, _ = get_raw(server, "/blog%2Fhello")
    assert status.split()[1] == "404"


def test_trailing_slash_keeps_encoding(server: Server) -> None:
    # the redirect must point at the same resource: /blog/a%20b, not a re-split path
    status, headers, _ = get_raw(server, "/blog/a%2Fb/")
    assert status.split()[1] == "308"
    assert headers["location"] == "/blog/a%2Fb"


def test_trailing_slash_is_not_an_open_redirect(server: Server) -> None:
    # "//evil.example/" -> "Location: //evil.example" would send browsers off-site
    status, headers, _ = get_raw(server, "//evil.example/")
    location = headers.get("location", "")
    assert not location.startswith("//"), (status, location)
    assert not location.startswith("/\\"), (status, location)


def test_query_plus_and_percent_decoding(client: httpx.Client) -> None:
    response = client.get("/query?a=x+y&a=%20z&b=%C3%A9&empty=")
    assert response.json() == {"a": ["x y", " z"], "b": ["é"], "empty": [""]}


# -- methods and HEAD edges ---------------------------------------------------------


def test_head_on_post_only_route_is_405(client: httpx.Client) -> None:
    response = client.head("/postonly")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def test_head_of_json_matches_get_length(client: httpx.Client) -> None:
    get = client.get("/json")
    head = client.head("/json")
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_of_stream_sends_no_body_bytes(server: Server) -> None:
    # HEAD then GET pipelined: if HEAD leaked its body, the GET answer is garbled
    with Conn(server.port) as conn:
        conn.send(
            b"HEAD /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"GET /about HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        status, headers, _ = conn.response()
        assert status.split()[1] == "200"
        # after the HEAD head, the very next bytes are the GET's status line
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in conn.buf and time.monotonic() < deadline:
            conn._fill(deadline)
        assert conn.buf.startswith(b"HTTP/1.1 200"), conn.buf[:80]


def test_http10_client_gets_no_chunked_encoding(server: Server) -> None:
    data = raw_exchange(server.port, b"GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert b"chunked" not in head.lower()
    assert body == b"abcdef"


def test_error_without_message(client: httpx.Client) -> None:
    response = client.get("/err-default", headers={"accept": "application/json"})
    assert response.status_code == 403
    assert isinstance(response.json().get("message"), str)


def test_raising_httperror_directly(client: httpx.Client) -> None:
    response = client.get("/raise-httperror", headers={"accept": "application/json"})
    assert response.status_code == 409
    assert response.json() == {"message": "conflict here"}


def test_101_without_websocket_is_a_500_not_a_hang(client: httpx.Client) -> None:
    response = client.get("/resp101-plain")
    assert response.status_code == 500


def test_error_json_when_accept_prefers_json(client: httpx.Client) -> None:
    response = client.get("/err-default", headers={"accept": "text/html;q=0.5, application/json"})
    assert response.headers["content-type"].split(";")[0] == "application/json"


# -- cookies on local hosts --------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "localhost"])
def test_no_secure_cookie_on_local_hosts(tmp_path: Path, host: str) -> None:
    srv = Server(
        write_site(
            tmp_path / "site",
            {
                "routes/c.py": """
        def get(event):
            event.cookies.set("s", "1")
            return {"body": "ok"}
    """
            },
        )
    )
    try:
        srv.start()
        response = httpx.get(srv.url + "/c", headers={"host": host}, timeout=10)
        cookie = response.headers["set-cookie"].lower()
        assert "secure" not in cookie, (host, cookie)
    finally:
        srv.stop()


# -- static edges -------------------------------------------------------------------


def test_static_names_with_spaces_and_unicode(client: httpx.Client) -> None:
    assert client.get("/my%20file.txt").text == "spaced\n"
    assert client.get("/caf%C3%A9.txt").text == "accent\n"


def test_static_text_has_charset(client: httpx.Client) -> None:
    assert client.get("/plain.txt").headers["content-type"].replace(" ", "").lower() in (
        "text/plain;charset=utf-8",
    )


def test_static_304_keeps_etag_and_weak_match(client: httpx.Client) -> None:
    etag = client.get("/plain.txt").headers["etag"]
    again = client.get("/plain.txt", headers={"if-none-match": f'"nope", {etag}'})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    weak = etag if etag.startswith("W/") else "W/" + etag
    assert client.get("/plain.txt", headers={"if-none-match": weak}).status_code == 304
    assert client.get("/plain.txt", headers={"if-none-match": "*"}).status_code == 304


def test_static_head_range(client: httpx.Client) -> None:
    response = client.head("/plain.txt", headers={"range": "bytes=0-4"})
    assert response.status_code in (200, 206)
    assert response.content == b""


def test_hooks_headers_on_static(client: httpx.Client) -> None:
    assert client.get("/plain.txt").headers["x-hooked"] == "1"


# -- WebSocket edges ----------------------------------------------------------------


def test_ws_subprotocol(server: Server) -> None:
    with connect(
        server.ws_url + "/locals-ws",
        subprotocols=["chat"],  # type: ignore[list-item]
        open_timeout=5,
        close_timeout=5,
    ) as ws:
        assert ws.subprotocol == "chat"
        ws.send("sub")
        assert ws.recv(timeout=5) == "sub"
        ws.send("protocol?")
        assert ws.recv(timeout=5) == "'chat'"
    with connect(server.ws_url + "/locals-ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("protocol?")
        assert ws.recv(timeout=5) == "None"


def test_ws_hook_headers_on_101(server: Server) -> None:
    with connect(server.ws_url + "/locals-ws", open_timeout=5, close_timeout=5) as ws:
        assert ws.response is not None
        assert ws.response.headers.get("x-hooked") == "1"


def test_hook_can_refuse_an_upgrade(server: Server) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + "/guarded-ws", open_timeout=5, close_timeout=5)
    assert info.value.response.status_code == 401
    with connect(
        server.ws_url + "/guarded-ws",
        additional_headers={"x-token": "yes"},
        open_timeout=5,
        close_timeout=5,
    ) as ws:
        ws.send("in")
        assert ws.recv(timeout=5) == "in"


def test_ws_server_close_code_reaches_client(server: Server) -> None:
    with connect(server.ws_url + "/locals-ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("close-me")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4001
        assert ws.close_reason == "done here"


def test_ws_ping_is_answered(server: Server) -> None:
    with connect(server.ws_url + "/locals-ws", open_timeout=5, close_timeout=5) as ws:
        pong = ws.ping()
        assert pong.wait(timeout=5)


def test_ws_upgrade_to_missing_route_is_404(server: Server) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + "/no/such/ws", open_timeout=5, close_timeout=5)
    assert info.value.response.status_code == 404


def test_ws_star_origin_refused_by_default_same_host_case_insensitive(server: Server) -> None:
    with connect(
        server.ws_url + "/locals-ws",
        origin=f"http://127.0.0.1:{server.port}",  # type: ignore[arg-type]
        open_timeout=5,
        close_timeout=5,
    ) as ws:
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"


def ws_handshake(server: Server, host: str, origin: str) -> str:
    request = (
        "GET /locals-ws HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n\r\n"
    )
    with Conn(server.port) as conn:
        conn.send(request.encode())
        status, _, _ = conn.response()
    return status.split()[1]


@pytest.mark.parametrize(
    ("host", "origin", "allowed"),
    [
        ("example.com:8080", "http://example.com:8080", True),
        ("example.com:8080", "http://Example.COM:8080", True),
        ("example.com:8080", "http://example.com:9090", False),
        ("example.com:8080", "http://other.example:8080", False),
        ("example.com:8080", "http://example.com.evil.test:8080", False),
    ],
)
def test_ws_origin_compared_with_host_header(
    server: Server, host: str, origin: str, allowed: bool
) -> None:
    # DESIGN: allowed when the Origin's host and port equal the Host header
    status = ws_handshake(server, host, origin)
    assert status == ("101" if allowed else "403"), (host, origin, status)


# -- durable object edges -----------------------------------------------------------


def test_object_non_101_response_passes_through(client: httpx.Client) -> None:
    response = client.put("/counter/tp")
    assert response.status_code == 418
    assert response.headers["x-from-object"] == "yes"
    assert response.text == "short"


def test_object_error_reaches_the_caller(client: httpx.Client) -> None:
    response = client.delete("/counter/tp", headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"message": "object says no"}


def test_object_constructed_with_env_and_single_instance(client: httpx.Client) -> None:
    first = client.get("/counter/single").json()
    second = client.get("/counter/single").json()
    assert first["greeting"] == "hello"
    assert second["hits"] == first["hits"] + 1  # the same live instance


def test_object_events_run_one_at_a_time(server: Server) -> None:
    # read-modify-write across an await of storage: no lost update (input gate)
    def incr(_: int) -> int:
        return httpx.post(server.url + "/counter/concurrent", timeout=20).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(incr, range(60)))
    assert codes == [200] * 60
    info = httpx.get(server.url + "/counter/concurrent", timeout=10).json()
    assert info["n"] == 60


def test_object_websocket_close_gets_code_and_reason(server: Server, client: httpx.Client) -> None:
    with connect(server.ws_url + "/counter/closer/ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        ws.close(4005, "client leaving")
    deadline = time.monotonic() + 5
    last: Any = None
    while time.monotonic() < deadline:
        last = client.get("/counter/closer").json()["last_close"]
        if last:
            break
        time.sleep(0.05)
    assert last == [4005, "client leaving"]


# -- server timeouts (defaults from docs/server.md) ---------------------------------------


def test_idle_keepalive_and_slowloris_are_closed(server: Server) -> None:
    results: dict[str, Any] = {}

    def idle() -> None:
        with Conn(server.port, timeout=12) as conn:
            conn.send(b"GET /about HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            conn.response()
            start = time.monotonic()
            conn.sock.settimeout(12)
            try:
                results["idle"] = conn.sock.recv(1)
            except OSError as exc:
                results["idle"] = exc
            results["idle_after"] = time.monotonic() - start

    def slowloris() -> None:
        with Conn(server.port, timeout=20) as conn:
            conn.send(b"GET /about HTTP/1.1\r\n")
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < 16:
                try:
                    conn.sock.sendall(b"X-a: b\r\n")
                except OSError:
                    closed = True
                    break
                conn.sock.settimeout(0.5)
                try:
                    data = conn.sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
                if not data or data.startswith(b"HTTP/1.1 4"):
                    closed = True
                    break
            results["slowloris_closed"] = closed

    threads = [threading.Thread(target=idle), threading.Thread(target=slowloris)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=25)
    assert results.get("idle") == b"", results  # the server closed the idle connection
    assert results.get("slowloris_closed") is True, results
