"""Endpoints, the request event, return values, helpers, hooks (docs/endpoints.md, hooks.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .kit import ECHO_ROUTE, Server, serve_site

FILES: dict[str, str] = {
    "kitpy.toml": """
        [env]
        GREETING = "hello"
        ANSWER = "forty-two"
    """,
    "hooks.py": """
        from kitpy import Response, WebSocketPair, sequence


        async def _echo(ws):
            async for message in ws:
                await ws.send(message)


        async def first(event, resolve):
            event.locals["seen"] = ["first"]
            if event.url.path == "/hook-short":
                return Response("answered by the hook", status=202)
            if event.url.path == "/hook-ws":
                client, server = WebSocketPair()
                server.accept()
                event.platform.wait_until(_echo(server))
                return Response(status=101, websocket=client)
            response = await resolve(event)
            response.headers["x-first"] = "1"
            return response


        async def second(event, resolve):
            event.locals["seen"].append("second")
            response = await resolve(event)
            response.headers["x-second"] = "1"
            return response


        handle = sequence(first, second)


        def handle_error(error, event):
            if event.url.path.startswith("/boom-dict"):
                return {"oops": True, "path": event.url.path}
            return "custom error text"
    """,
    "static/hello.txt": "static hello\n",
    "routes/event/[a]/[...rest].py": """
        async def get(event):
            req = event.request
            url = event.url
            env = event.platform.env
            return {"body": {
                "method": req.method,
                "request_url": str(req.url),
                "x_one": req.headers.get("X-ONE"),
                "x_multi": req.headers.get_all("x-multi"),
                "path": url.path,
                "q": url.query["q"],
                "q_all": url.query.get_all("q"),
                "host": url.host,
                "port": url.port,
                "scheme": url.scheme,
                "str_url": str(url),
                "params": event.params,
                "route": event.route,
                "locals": event.locals,
                "env_attr": env.GREETING,
                "env_item": env["ANSWER"],
                "cookie": event.cookies.get("flavour"),
                "missing_cookie": event.cookies.get("nope"),
                "client": list(event.client),
            }}
    """,
    "routes/threads.py": """
        import threading

        def get(event):
            return {"body": {"sync": threading.get_ident(), "main": threading.main_thread().ident}}

        async def post(event):
            return {"body": {"async": threading.get_ident()}}
    """,
    "routes/body.py": """
        async def post(event):
            kind = event.url.query.get("kind", "text")
            if kind == "json":
                return {"body": {"got": await event.request.json()}}
            if kind == "bytes":
                return {"body": {"len": len(await event.request.body())}}
            if kind == "form":
                form = await event.request.form()
                return {"body": {k: (v if isinstance(v, str) else "file:" + type(v).__name__)
                                 for k, v in form.items()}}
            if kind == "stream":
                total = 0
                chunks = 0
                async for chunk in event.request.stream():
                    total += len(chunk)
                    chunks += 1
                return {"body": {"len": total}}
            return {"body": {"text": await event.request.text()}}
    """,
    "routes/cookies.py": """
        def get(event):
            event.cookies.set("session", "abc")
            event.cookies.delete("old")
            return {"body": "ok"}
    """,
    "routes/methods.py": """
        def get(event):
            return {"body": "got"}

        def post(event):
            return {"status": 201, "body": "posted"}

        async def put(event):
            return {"body": "put"}

        def patch(event):
            return {"body": "patched"}

        def delete(event):
            return {"status": 204}
    """,
    "routes/postonly.py": """
        def post(event):
            return {"body": "posted"}
    """,
    "routes/custom_options.py": """
        def get(event):
            return {"body": "x"}

        def options(event):
            return {"status": 200, "headers": {"x-custom": "yes"}, "body": "my options"}
    """,
    "routes/fb.py": """
        def get(event):
            return {"body": "get"}

        def fallback(event):
            return {"body": "fallback " + event.request.method}
    """,
    "routes/sized.py": """
        def get(event):
            return {"headers": {"x-kind": "sized"}, "body": "0123456789abcdef"}
    """,
    "routes/ret/[kind].py": """
        def get(event):
            kind = event.params["kind"]
            if kind == "str":
                return {"body": "héllo"}
            if kind == "bytes":
                return {"body": b"\\x00\\x01\\x02"}
            if kind == "dict":
                return {"body": {"a": 1, "b": [True, None]}}
            if kind == "list":
                return {"body": [1, "two", 3.5]}
            if kind == "none":
                return {"status": 201, "headers": {"x-a": "b"}, "body": None}
            if kind == "empty":
                return {}
            if kind == "status":
                return {"status": 202}
            if kind == "own-ctype":
                return {"headers": {"content-type": "text/csv"}, "body": "a,b"}
            if kind == "badkey":
                return {"status": 200, "bogus_key_xyz": 1}
            if kind == "badtype":
                return 12345
    """,
    "routes/resp/[status].py": """
        from kitpy import Response

        def get(event):
            return Response("status " + event.params["status"], status=int(event.params["status"]),
                            headers={"x-resp": "yes"})
    """,
    "routes/stream.py": """
        import anyio
        from kitpy import Response

        async def chunks():
            for i in range(5):
                yield f"chunk{i};".encode()
                await anyio.sleep(0)

        def sync_chunks():
            for i in range(3):
                yield f"s{i};".encode()

        async def get(event):
            if event.url.query.get("sync"):
                return Response(sync_chunks(), headers={"content-type": "text/plain"})
            return Response(chunks(), headers={"content-type": "text/plain"})
    """,
    "routes/helpers/[kind].py": """
        from kitpy import error, html, json, redirect, text

        async def get(event):
            kind = event.params["kind"]
            if kind == "json":
                return json({"x": 1}, status=201)
            if kind == "text":
                return text("plain words")
            if kind == "html":
                return html("<h1>hi</h1>")
            if kind == "redirect":
                return redirect("/somewhere")
            if kind == "redirect307":
                return redirect("/elsewhere", status=307)
            if kind == "error":
                error(404, "no such thing")
            if kind == "error418":
                error(418, "short and stout")
    """,
    "routes/locals.py": """
        async def get(event):
            return {"body": {"seen": event.locals.get("seen")}}
    """,
    "routes/boom.py": """
        def get(event):
            raise RuntimeError("internal-secret-abc")
    """,
    "routes/boom-dict.py": """
        async def get(event):
            raise KeyError("internal-secret-def")
    """,
    "routes/ws/echo.py": ECHO_ROUTE,
    "routes/ws/refuse.py": """
        from kitpy import Response

        def get(event):
            return Response("go away", status=401)
    """,
}


site, server, client = serve_site(FILES)


# -- the event ---------------------------------------------------------------------


def test_event_fields(server: Server, client: httpx.Client) -> None:
    response = client.get(
        "/event/one/x/y%20z?q=1&q=2",
        headers=[
            ("x-one", "first"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("cookie", "flavour=mint"),
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "GET"
    assert body["x_one"] == "first"
    assert body["x_multi"] in (["a", "b"], ["a, b"])
    assert body["path"] == "/event/one/x/y%20z" or body["path"] == "/event/one/x/y z"
    assert body["q"] == "1"
    assert body["q_all"] == ["1", "2"]
    assert body["host"] == "127.0.0.1"
    assert body["port"] == server.port
    assert body["scheme"] == "http"
    assert body["str_url"].startswith(f"http://127.0.0.1:{server.port}/event/one/x/")
    assert body["str_url"].endswith("?q=1&q=2")
    assert body["request_url"] == body["str_url"]
    assert body["params"] == {"a": "one", "rest": "x/y z"}
    assert body["route"] == "/event/[a]/[...rest]"
    assert body["locals"] == {"seen": ["first", "second"]}
    assert body["env_attr"] == "hello"
    assert body["env_item"] == "forty-two"
    assert body["cookie"] == "mint"
    assert body["missing_cookie"] is None
    assert body["client"][0] == "127.0.0.1"
    assert isinstance(body["client"][1], int) and body["client"][1] > 0


def test_client_ignores_forwarded_for_without_trusted_proxies(client: httpx.Client) -> None:
    response = client.get("/event/a/b?q=1", headers={"x-forwarded-for": "203.0.113.9"})
    assert response.json()["client"][0] == "127.0.0.1"


def test_sync_handler_runs_in_worker_thread_async_in_loop(client: httpx.Client) -> None:
    sync = client.get("/threads").json()
    async_ = client.post("/threads").json()
    assert sync["sync"] != async_["async"]
    assert sync["sync"] != sync["main"]


def test_request_body_readers(client: httpx.Client) -> None:
    assert client.post("/body", content="héllo".encode()).json() == {"text": "héllo"}
    assert client.post("/body?kind=json", json={"a": [1, 2]}).json() == {"got": {"a": [1, 2]}}
    assert client.post("/body?kind=bytes", content=b"x" * 100_000).json() == {"len": 100_000}
    form = client.post("/body?kind=form", data={"name": "ann", "city": "Oslo"}).json()
    assert form == {"name": "ann", "city": "Oslo"}
    multipart = client.post(
        "/body?kind=form", data={"name": "bob"}, files={"upload": ("a.txt", b"xyz")}
    )
    assert multipart.status_code == 200
    assert multipart.json()["name"] == "bob"
    assert multipart.json()["upload"].startswith("file:")


def test_request_stream_chunked_upload(client: httpx.Client) -> None:
    def gen() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 10_000

    response = client.post("/body?kind=stream", content=gen())
    assert response.json() == {"len": 100_000}


def test_invalid_json_body_is_400(client: httpx.Client) -> None:
    response = client.post("/body?kind=json", content=b"{not json")
    assert response.status_code == 400


def test_cookie_defaults_on_localhost(client: httpx.Client) -> None:
    response = client.get("/cookies")
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("session="))
    attrs = [a.strip().lower() for a in session.split(";")]
    assert attrs[0] == "session=abc"
    assert "path=/" in attrs and "httponly" in attrs and "samesite=lax" in attrs
    assert "secure" not in attrs
    old = next(c for c in cookies if c.startswith("old="))
    assert "max-age=0" in old.lower() or "expires=" in old.lower()


def test_cookie_secure_on_other_hosts(client: httpx.Client) -> None:
    response = client.get("/cookies", headers={"host": "example.com"})
    session = next(c for c in response.headers.get_list("set-cookie") if c.startswith("session="))
    assert "secure" in [a.strip().lower() for a in session.split(";")]


# -- methods -----------------------------------------------------------------------


def test_each_method(client: httpx.Client) -> None:
    assert client.get("/methods").text == "got"
    posted = client.post("/methods")
    assert (posted.status_code, posted.text) == (201, "posted")
    assert client.put("/methods").text == "put"
    assert client.patch("/methods").text == "patched"
    assert client.delete("/methods").status_code == 204


def test_head_from_get_with_content_length(client: httpx.Client) -> None:
    get = client.get("/sized")
    head = client.head("/sized")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == "16"
    assert head.headers["x-kind"] == "sized"
    assert head.headers["content-type"] == get.headers["content-type"]


def allow(response: httpx.Response) -> set[str]:
    return {m.strip().upper() for m in response.headers["allow"].split(",") if m.strip()}


def test_405_with_allow(client: httpx.Client) -> None:
    response = client.get("/postonly")
    assert response.status_code == 405
    assert "POST" in allow(response)
    assert not {"GET", "HEAD", "PUT", "DELETE"} & allow(response)
    response = client.request("PROPFIND", "/methods")
    assert response.status_code == 405
    assert {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} <= allow(response)


def test_options_without_handler_is_204_with_allow(client: httpx.Client) -> None:
    response = client.options("/methods")
    assert response.status_code == 204
    assert {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} <= allow(response)
    assert response.content == b""


def test_options_handler_wins(client: httpx.Client) -> None:
    response = client.options("/custom_options")
    assert response.status_code == 200
    assert response.text == "my options"
    assert response.headers["x-custom"] == "yes"


def test_fallback_handles_other_methods(client: httpx.Client) -> None:
    assert client.get("/fb").text == "get"
    assert client.request("PROPFIND", "/fb").text == "fallback PROPFIND"
    assert client.post("/fb").text == "fallback POST"


# -- return values -----------------------------------------------------------------


def test_dict_body_str(client: httpx.Client) -> None:
    response = client.get("/ret/str")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "héllo"


def test_dict_body_bytes(client: httpx.Client) -> None:
    response = client.get("/ret/bytes")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\x00\x01\x02"


@pytest.mark.parametrize(
    ("kind", "data"), [("dict", {"a": 1, "b": [True, None]}), ("list", [1, "two", 3.5])]
)
def test_dict_body_json(client: httpx.Client, kind: str, data: Any) -> None:
    response = client.get(f"/ret/{kind}")
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.json() == data


def test_dict_body_none_with_status_and_headers(client: httpx.Client) -> None:
    response = client.get("/ret/none")
    assert response.status_code == 201
    assert response.headers["x-a"] == "b"
    assert response.content == b""


def test_empty_dict_is_200(client: httpx.Client) -> None:
    response = client.get("/ret/empty")
    assert (response.status_code, response.content) == (200, b"")
    assert client.get("/ret/status").status_code == 202


def test_dict_headers_override_content_type(client: httpx.Client) -> None:
    response = client.get("/ret/own-ctype")
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text == "a,b"


def test_dict_with_unknown_key_is_500_naming_route_and_key(
    server: Server, client: httpx.Client
) -> None:
    response = client.get("/ret/badkey")
    assert response.status_code == 500
    assert "Traceback" not in response.text
    log = server.wait_log(lambda t: "bogus_key_xyz" in t)
    line = next((ln for ln in log.splitlines() if "bogus_key_xyz" in ln), "")
    assert "bogus_key_xyz" in line, log
    assert "routes/ret/[kind].py" in log


def test_unknown_return_type_is_500_naming_route(server: Server, client: httpx.Client) -> None:
    response = client.get("/ret/badtype")
    assert response.status_code == 500
    log = server.wait_log(lambda t: "int" in t and "badtype" in t)
    assert "routes/ret/[kind].py" in log


@pytest.mark.parametrize("status", [200, 203, 207, 226, 299, 418, 451, 499, 503, 599])
def test_response_any_status(client: httpx.Client, status: int) -> None:
    response = client.get(f"/resp/{status}")
    assert response.status_code == status
    assert response.text == f"status {status}"
    assert response.headers["x-resp"] == "yes"


def test_streamed_async_iterator_body_is_chunked(client: httpx.Client) -> None:
    response = client.get("/stream")
    assert response.status_code == 200
    assert response.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.headers
    assert response.text == "".join(f"chunk{i};" for i in range(5))


def test_streamed_sync_iterator_body(client: httpx.Client) -> None:
    response = client.get("/stream?sync=1")
    assert response.status_code == 200
    assert response.text == "s0;s1;s2;"


# -- helpers -----------------------------------------------------------------------


def test_helper_json(client: httpx.Client) -> None:
    response = client.get("/helpers/json")
    assert response.status_code == 201
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.json() == {"x": 1}


def test_helper_text_and_html(client: httpx.Client) -> None:
    text = client.get("/helpers/text")
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == "plain words"
    html = client.get("/helpers/html")
    assert html.headers["content-type"].startswith("text/html")
    assert html.text == "<h1>hi</h1>"


def test_helper_redirect(client: httpx.Client) -> None:
    response = client.get("/helpers/redirect")
    assert response.status_code == 303
    assert response.headers["location"] == "/somewhere"
    other = client.get("/helpers/redirect307")
    assert (other.status_code, other.headers["location"]) == (307, "/elsewhere")


def test_helper_error_json_when_accepted(client: httpx.Client) -> None:
    response = client.get("/helpers/error", headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.json() == {"message": "no such thing"}


def test_helper_error_text_otherwise(client: httpx.Client) -> None:
    response = client.get("/helpers/error", headers={"accept": "text/plain"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "no such thing"
    teapot = client.get("/helpers/error418", headers={"accept": "text/html,text/plain"})
    assert (teapot.status_code, teapot.text) == (418, "short and stout")


def test_expected_error_does_not_reach_handle_error(client: httpx.Client) -> None:
    response = client.get("/helpers/error", headers={"accept": "text/plain"})
    assert "custom error text" not in response.text


# -- hooks -------------------------------------------------------------------------


def test_sequence_runs_in_order_and_sets_locals(client: httpx.Client) -> None:
    response = client.get("/locals")
    assert response.json() == {"seen": ["first", "second"]}
    assert response.headers["x-first"] == "1"
    assert response.headers["x-second"] == "1"


def test_hooks_run_for_static_files(client: httpx.Client) -> None:
    response = client.get("/hello.txt")
    assert response.status_code == 200
    assert response.text == "static hello\n"
    assert response.headers["x-first"] == "1"


def test_hooks_run_for_404(client: httpx.Client) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers.get("x-first") == "1"


def test_hook_answers_itself(client: httpx.Client) -> None:
    response = client.get("/hook-short")
    assert (response.status_code, response.text) == (202, "answered by the hook")


def test_handle_error_str(client: httpx.Client) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.text == "custom error text"
    assert response.headers["content-type"].startswith("text/plain")
    assert "internal-secret-abc" not in response.text


def test_handle_error_dict(client: httpx.Client) -> None:
    response = client.get("/boom-dict")
    assert response.status_code == 500
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.json() == {"oops": True, "path": "/boom-dict"}
    assert "internal-secret-def" not in response.text


def test_error_traceback_goes_to_log(server: Server, client: httpx.Client) -> None:
    client.get("/boom")
    log = server.wait_log(lambda t: "internal-secret-abc" in t)
    assert "routes/boom.py" in log


# -- WebSockets from endpoints and hooks ---------------------------------------------


def test_endpoint_self_upgrade_echo(server: Server) -> None:
    with connect(server.ws_url + "/ws/echo", open_timeout=5, close_timeout=5) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\xffbin")
        assert ws.recv(timeout=5) == b"\x00\xffbin"
        ws.send(json.dumps({"a": 1}))
        assert json.loads(ws.recv(timeout=5)) == {"a": 1}


def test_hook_returns_its_own_101(server: Server) -> None:
    with connect(server.ws_url + "/hook-ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("via hook")
        assert ws.recv(timeout=5) == "via hook"


def test_refused_upgrade_gets_the_response(server: Server) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + "/ws/refuse", open_timeout=5, close_timeout=5)
    assert info.value.response.status_code == 401


async def test_async_websockets_client_many_messages(server: Server) -> None:
    async with websockets.connect(
        server.ws_url + "/ws/echo", open_timeout=5, close_timeout=5
    ) as ws:
        for i in range(50):
            await ws.send(f"m{i}")
        got = [await ws.recv() for _ in range(50)]
        assert got == [f"m{i}" for i in range(50)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


def test_no_leaked_path_in_500_bodies(client: httpx.Client, server: Server) -> None:
    response = client.get("/ret/badkey")
    assert str(Path(server.site)) not in response.text
