"""TestClient: lifecycle, WebSockets through the app, timeouts, backends."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from kitpy import WebSocketClosed
from kitpy.testing import TestClient, WebSocketRejectedError, WebSocketTimeoutError

from .conftest import ClientFactory, MakeSite

ECHO_WS = """
from kitpy import Response, WebSocketPair, text

async def serve(ws, prefix):
    async for message in ws:
        if message == "close":
            await ws.close(4001, "asked to")
            return
        if message == "protocol?":
            await ws.send(repr(ws.protocol))
            continue
        await ws.send(message if isinstance(message, bytes) else prefix + message)

async def get(event):
    if event.request.headers.get("upgrade", "").lower() != "websocket":
        return text("expected a websocket", 426)
    if event.url.query.get("deny"):
        return text("go away", 401)
    client, server = WebSocketPair()
    server.accept()
    event.platform.wait_until(serve(server, event.locals.get("prefix", "")))
    protocols = event.request.headers.get("sec-websocket-protocol", "")
    headers = {}
    if "chat" in protocols:
        headers["sec-websocket-protocol"] = "chat"
    return Response(status=101, websocket=client, headers=headers)
"""


def test_websocket_from_an_endpoint(client_for: ClientFactory) -> None:
    client = client_for({"routes/ws.py": ECHO_WS})
    with client.websocket("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"\x00\x01"
        ws.send_json({"a": 1})
        assert ws.receive_json() == {"a": 1}
        ws.send_text("close")
        with pytest.raises(WebSocketClosed) as info:
            ws.receive_text()
        assert info.value.code == 4001
        assert ws.close_code == 4001


def test_client_close_reaches_the_app(client_for: ClientFactory) -> None:
    client = client_for({"routes/ws.py": ECHO_WS})
    with client.websocket("/ws") as ws:
        ws.close(4000)
        assert ws.close_code == 4000
        assert ws.closed


def test_hooks_run_for_upgrades(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/ws.py": ECHO_WS,
            "hooks.py": """
            async def handle(event, resolve):
                event.locals["prefix"] = "hooked:"
                return await resolve(event)
            """,
        }
    )
    with client.websocket("/ws") as ws:
        ws.send_text("x")
        assert ws.receive_text() == "hooked:x"


def test_websocket_101_from_a_hook_without_resolve(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/index.py": "async def get(event):\n    return {'body': 'page'}\n",
            "hooks.py": """
            from kitpy import Response, WebSocketPair

            async def greet(ws):
                await ws.send("hello from the hook")
                async for message in ws:
                    await ws.send(message.upper())

            async def handle(event, resolve):
                if event.url.path == "/live":
                    client, server = WebSocketPair()
                    server.accept()
                    event.platform.wait_until(greet(server))
                    return Response(status=101, websocket=client)
                return await resolve(event)
            """,
        }
    )
    with client.websocket("/live") as ws:
        assert ws.receive_text() == "hello from the hook"
        ws.send_text("abc")
        assert ws.receive_text() == "ABC"
    assert client.get("/").text == "page"


def test_refused_upgrade_raises_with_status(client_for: ClientFactory) -> None:
    client = client_for({"routes/ws.py": ECHO_WS})
    with pytest.raises(WebSocketRejectedError, match="status 401: go away") as info:
        with client.websocket("/ws?deny=1"):
            pass  # pragma: no cover
    assert info.value.status_code == 401
    assert info.value.response.text == "go away"
    with pytest.raises(WebSocketRejectedError, match="status 404"):
        with client.websocket("/nowhere"):
            pass  # pragma: no cover
    assert client.get("/ws").status_code == 426


def test_subprotocols(client_for: ClientFactory) -> None:
    client = client_for({"routes/ws.py": ECHO_WS})
    with client.websocket("/ws", subprotocols=["chat", "v2"]) as ws:
        assert ws.accepted_subprotocol == "chat"
        ws.send_text("protocol?")  # the app's end knows it too, as under kitpy serve
        assert ws.receive_text() == "'chat'"
    with client.websocket("/ws") as ws:
        assert ws.accepted_subprotocol is None
        ws.send_text("protocol?")
        assert ws.receive_text() == "None"


def test_receive_times_out_instead_of_hanging(client_for: ClientFactory) -> None:
    client = client_for({"routes/ws.py": ECHO_WS})
    with client.websocket("/ws") as ws:
        with pytest.raises(WebSocketTimeoutError, match="no WebSocket message within 0.05 s"):
            ws.receive_text(timeout=0.05)
        ws.send_text("still alive")
        assert ws.receive_text() == "still alive"


def test_several_websockets_at_once(client_for: ClientFactory) -> None:
    client = client_for({"routes/ws.py": ECHO_WS})
    with client.websocket("/ws") as one, client.websocket("/ws") as two:
        one.send_text("1")
        two.send_text("2")
        assert two.receive_text() == "2"
        assert one.receive_text() == "1"


def test_receive_type_mismatch(client_for: ClientFactory) -> None:
    client = client_for({"routes/ws.py": ECHO_WS})
    with client.websocket("/ws") as ws:
        ws.send_bytes(b"raw")
        with pytest.raises(TypeError, match="expected a text message, got bytes"):
            ws.receive_text()


def test_without_with_and_close(make_site: MakeSite) -> None:
    site = make_site({"routes/index.py": "async def get(event):\n    return {'body': 'ok'}\n"})
    client = TestClient(site)
    assert client.get("/").text == "ok"
    client.close()
    client.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        client.get("/")
    assert str(site.resolve()) not in sys.path


def test_garbage_collection_closes_the_client(make_site: MakeSite) -> None:
    site = make_site({"routes/index.py": "async def get(event):\n    return {'body': 'ok'}\n"})
    before = threading.active_count()
    client = TestClient(site)
    assert client.get("/").text == "ok"
    del client
    gc.collect()
    assert threading.active_count() <= before
    assert str(site.resolve()) not in sys.path


def test_open_websockets_are_closed_with_the_client(make_site: MakeSite) -> None:
    site = make_site({"routes/ws.py": ECHO_WS})
    client = TestClient(site)
    context = client.websocket("/ws")
    ws = context.__enter__()
    client.close()
    assert ws.close_code == 1001


def test_trio_backend(make_site: MakeSite) -> None:
    site = make_site(
        {
            "routes/index.py": """
            import sniffio

            async def get(event):
                return {"body": sniffio.current_async_library()}
            """,
            "routes/ws.py": ECHO_WS,
        }
    )
    with TestClient(site, backend="trio") as client:
        assert client.get("/").text == "trio"
        with client.websocket("/ws") as ws:
            ws.send_text("on trio")
            assert ws.receive_text() == "on trio"


def test_storage_never_in_the_site(make_site: MakeSite) -> None:
    site = make_site({"routes/index.py": "async def get(event):\n    return {}\n"})
    with TestClient(site) as client:
        client.get("/")
    assert not (site / ".kitpy").exists()


def test_request_options(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/echo.py": """
            async def handle(event):
                return {"body": {
                    "method": event.request.method,
                    "query": event.url.query.items(),
                    "type": event.request.headers.get("content-type"),
                    "length": event.request.headers.get("content-length"),
                    "body": (await event.request.body()).decode(),
                }}

            get = post = put = patch = delete = handle
            """
        }
    )
    assert client.put("/echo", content="raw").json() == {
        "method": "PUT",
        "query": [],
        "type": None,
        "length": "3",
        "body": "raw",
    }
    body = client.patch("/echo", params={"a": ["1", "2"]}, json=[1]).json()
    assert body["query"] == [["a", "1"], ["a", "2"]]
    assert body["type"] == "application/json" and body["body"] == "[1]"
    assert client.delete("/echo?x=1", params={"y": "2"}).json()["query"] == [
        ["x", "1"],
        ["y", "2"],
    ]
    assert client.get("http://other.example/echo").status_code == 200
