"""More contract corners: error paths in hooks, header safety, per-site limits,
WebSocket frame errors, dead peers, object eviction, absolute-form targets."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from .kit import Conn, Server, raw_exchange, serve_site

FILES: dict[str, str] = {
    "kitpy.toml": """
        [server]
        max_body_bytes = 2000
        object_idle_timeout = 0.5

        [objects]
        rooms = "objects.room:Room"
    """,
    "hooks.py": """
        from kitpy import error


        async def handle(event, resolve):
            if event.url.path == "/hook-raises":
                raise RuntimeError("hook-internal-secret")
            if event.url.path == "/hook-error":
                error(451, "unavailable for legal reasons")
            if event.url.path == "/handle-error-raises":
                event.locals["explode"] = True
            response = await resolve(event)
            response.headers["x-hooked"] = "1"
            return response


        async def handle_error(error, event):
            if event.locals.get("explode"):
                raise ValueError("handle-error-secret")
            return {"async_handler": True, "kind": type(error).__name__}
    """,
    "routes/boom.py": """
        def get(event):
            raise RuntimeError("route-secret")
    """,
    "routes/handle-error-raises.py": """
        def get(event):
            raise RuntimeError("route-secret-2")
    """,
    "routes/hook-raises.py": 'def get(event):\n    return {"body": "unreachable"}\n',
    "routes/hook-error.py": 'def get(event):\n    return {"body": "unreachable"}\n',
    "routes/about.py": 'def get(event):\n    return {"body": "about"}\n',
    "routes/café.py": 'def get(event):\n    return {"body": "unicode route"}\n',
    "routes/my page.py": 'def get(event):\n    return {"body": "spaced route"}\n',
    "routes/upload.py": """
        async def post(event):
            return {"body": {"len": len(await event.request.body())}}
    """,
    "routes/status/[code].py": """
        from kitpy import Response

        def get(event):
            return Response("x", status=int(event.params["code"]))
    """,
    "routes/nobody/[code].py": """
        def get(event):
            return {"status": int(event.params["code"]), "body": "must not be sent"}
    """,
    "routes/inject.py": """
        def get(event):
            return {"headers": {"x-a": "b\\r\\nSet-Cookie: evil=1"}, "body": "x"}
    """,
    "routes/cookie-chars.py": """
        def get(event):
            event.cookies.set("c", "a b;c=d,e")
            return {"body": "ok"}

        def post(event):
            return {"body": event.cookies.get("c")}
    """,
    "routes/big.py": """
        def get(event):
            return {"body": b"z" * 5_000_000}
    """,
    "routes/rooms/[name].py": """
        async def get(event):
            rooms = event.platform.env.rooms
            return await rooms.get(rooms.id_from_name(event.params["name"])).fetch(
                "/ws", event.request
            )

        async def post(event):
            rooms = event.platform.env.rooms
            return await rooms.get(rooms.id_from_name(event.params["name"])).fetch(
                "/info", event.request
            )
    """,
    "routes/crossid.py": """
        def get(event):
            env = event.platform.env
            other = str(env.rooms.id_from_name("x"))
            try:
                env.rooms.id_from_string(other)
                same = "ok"
            except Exception as exc:
                same = type(exc).__name__
            try:
                env.rooms.id_from_string(other.upper())
                upper = "accepted"
            except Exception as exc:
                upper = type(exc).__name__
            try:
                env.rooms.id_from_string(other[:-2])
                short = "accepted"
            except Exception as exc:
                short = type(exc).__name__
            return {"body": {"same": same, "upper": upper, "short": short}}
    """,
    "objects/__init__.py": "",
    "objects/room.py": """
        import itertools

        from kitpy import DurableObject, Response, WebSocketPair, json

        CONSTRUCTED = itertools.count(1)


        class Room(DurableObject):
            def __init__(self, state, env):
                super().__init__(state, env)
                self.generation = next(CONSTRUCTED)

            async def fetch(self, request):
                if request.url.path == "/info":
                    n = (await self.state.storage.get("n") or 0) + 1
                    await self.state.storage.put("n", n)
                    return json({
                        "generation": self.generation,
                        "n": n,
                        "sockets": len(self.state.get_websockets()),
                    })
                client, server = WebSocketPair()
                self.state.accept_websocket(server)
                return Response(status=101, websocket=client)

            async def websocket_message(self, ws, message):
                await ws.send(message)
    """,
}


site, server, client = serve_site(FILES)


# -- hooks and errors -----------------------------------------------------------------


def test_async_handle_error_dict(client: httpx.Client) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"async_handler": True, "kind": "RuntimeError"}


def test_exception_in_hook_is_a_500_without_leak(client: httpx.Client) -> None:
    response = client.get("/hook-raises")
    assert response.status_code == 500
    assert "hook-internal-secret" not in response.text
    assert "Traceback" not in response.text


def test_error_in_hook_gives_its_status(client: httpx.Client) -> None:
    response = client.get("/hook-error", headers={"accept": "application/json"})
    assert response.status_code == 451
    assert response.json() == {"message": "unavailable for legal reasons"}


def test_handle_error_raising_still_gives_a_clean_500(client: httpx.Client) -> None:
    response = client.get("/handle-error-raises")
    assert response.status_code == 500
    for leak in ("handle-error-secret", "route-secret-2", "Traceback"):
        assert leak not in response.text


# -- routes with unusual names -----------------------------------------------------------


def test_unicode_and_space_route_files(client: httpx.Client) -> None:
    assert client.get("/caf%C3%A9").text == "unicode route"
    assert client.get("/my%20page").text == "spaced route"


def test_absolute_form_request_target(server: Server) -> None:
    with Conn(server.port) as conn:
        conn.send(
            f"GET http://127.0.0.1:{server.port}/about HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n\r\n".encode()
        )
        status, _, body = conn.response()
    assert status.split()[1] == "200" and body == b"about"


# -- limits configured per site ----------------------------------------------------------


def test_per_site_body_limit(client: httpx.Client, server: Server) -> None:
    assert client.post("/upload", content=b"a" * 2000).json() == {"len": 2000}
    data = raw_exchange(
        server.port,
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2001\r\n\r\n" + b"a" * 2001,
    )
    assert data.startswith(b"HTTP/1.1 413")


def test_expect_100_with_too_large_body_gets_413_not_100(server: Server) -> None:
    with Conn(server.port) as conn:
        conn.send(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        status, _, _ = conn.response()
    assert status.split()[1] == "413"


# -- response edge cases ------------------------------------------------------------------


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_status_sends_no_body_and_keeps_connection(server: Server, code: int) -> None:
    with Conn(server.port) as conn:
        conn.send(
            f"GET /nobody/{code} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            "GET /about HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        )
        status, _, _ = conn.response()
        assert status.split()[1] in (str(code), "500")
        status, _, body = conn.response()
        assert status.split()[1] == "200" and body == b"about", conn.buf


def test_informational_status_as_final_response(server: Server, client: httpx.Client) -> None:
    # DESIGN: "any status from 100 to 599". HTTP/1.1 cannot end an exchange with a
    # 1xx other than 101, so a clear 500 naming the problem is what we accept here.
    response = client.get("/status/103")
    assert response.status_code == 500
    assert "103" in server.wait_log(lambda t: "103" in t)


@pytest.mark.parametrize("code", [600, 99, 1000])
def test_out_of_range_status_is_a_500(client: httpx.Client, code: int) -> None:
    assert client.get(f"/status/{code}").status_code == 500


def test_header_injection_is_refused(server: Server) -> None:
    data = raw_exchange(
        server.port, b"GET /inject HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert b"set-cookie: evil" not in head
    assert data.startswith(b"HTTP/1.1 500")


def test_cookie_value_cannot_inject_attributes(client: httpx.Client) -> None:
    response = client.get("/cookie-chars")
    header = response.headers["set-cookie"]
    name_value = header.split(";")[0]
    assert name_value.startswith("c=")
    attrs = [a.strip().lower() for a in header.split(";")[1:]]
    assert not any(a.startswith("c=d") for a in attrs), header
    # it round-trips
    cookie = name_value
    back = client.post("/cookie-chars", headers={"cookie": cookie})
    assert back.text == "a b;c=d,e"


def test_large_bytes_body(client: httpx.Client) -> None:
    response = client.get("/big")
    assert response.headers["content-length"] == "5000000"
    assert response.content == b"z" * 5_000_000


# -- WebSocket frames on the wire ------------------------------------------------------


def handshake(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        assert chunk, buf
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101"), buf
    return sock


def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if len(payload) < 126:
        header = struct.pack("!BB", first, mask_bit | len(payload))
    else:
        header = struct.pack("!BBH", first, mask_bit | 126, len(payload))
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_code_from(sock: socket.socket) -> int | None:
    """Read frames until a close frame; return its code (None if the socket just closed)."""
    sock.settimeout(5)
    buf = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    break
                length = struct.unpack("!H", buf[2:4])[0]
                offset = 4
            if len(buf) < offset + length:
                break
            payload = buf[offset : offset + length]
            buf = buf[offset + length :]
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005
        try:
            chunk = sock.recv(4096)
        except (TimeoutError, ConnectionResetError):
            return None
        if not chunk:
            return None
        buf += chunk
    return None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(0x3, b"x"), 1002),  # reserved opcode
        (frame(0x1, b"unmasked", masked=False), 1002),  # client frames must be masked
        (frame(0x1, b"\xff\xfe bad utf-8"), 1007),
        (frame(0x9, b"p" * 10, fin=False), 1002),  # fragmented control frame
    ],
)
def test_ws_invalid_frames_close_with_code(server: Server, data: bytes, code: int) -> None:
    sock = handshake(server.port, "/rooms/frames")
    try:
        sock.sendall(data)
        assert close_code_from(sock) == code
    finally:
        sock.close()


def test_ws_dead_peer_leaves_get_websockets(server: Server, client: httpx.Client) -> None:
    with connect(server.ws_url + "/rooms/deadpeer", open_timeout=5, close_timeout=5) as alive:
        sock = handshake(server.port, "/rooms/deadpeer")
        sock.sendall(frame(0x1, b"hello"))
        sock.settimeout(5)
        assert sock.recv(4096)  # the echo arrives: the socket is accepted
        assert client.post("/rooms/deadpeer").json()["sockets"] == 2
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST, no close frame
        deadline = time.monotonic() + 5
        sockets = 2
        while time.monotonic() < deadline:
            sockets = client.post("/rooms/deadpeer").json()["sockets"]
            if sockets == 1:
                break
            time.sleep(0.05)
        assert sockets == 1
        alive.send("still here")
        assert alive.recv(timeout=5) == "still here"


def test_ws_permessage_deflate_negotiated(server: Server) -> None:
    with connect(server.ws_url + "/rooms/deflate", open_timeout=5, close_timeout=5) as ws:
        assert ws.response is not None
        ext = ws.response.headers.get("sec-websocket-extensions", "")
        assert "permessage-deflate" in ext
        ws.send("z" * 100_000)
        assert ws.recv(timeout=5) == "z" * 100_000


# -- ids and eviction -------------------------------------------------------------------


def test_id_from_string_validation(client: httpx.Client) -> None:
    result = client.get("/crossid").json()
    assert result["same"] == "ok"
    assert result["short"] != "accepted"


def test_object_evicted_when_idle_storage_kept(client: httpx.Client) -> None:
    first: dict[str, Any] = client.post("/rooms/evictme").json()
    deadline = time.monotonic() + 10
    later: dict[str, Any] = first
    while time.monotonic() < deadline:
        time.sleep(1.5)  # idle longer than object_idle_timeout (0.5 s) plus its check interval
        later = client.post("/rooms/evictme").json()
        if later["generation"] != first["generation"]:
            break
    assert later["generation"] != first["generation"], "never evicted"
    assert later["n"] > first["n"]  # storage kept


def test_object_with_socket_is_not_evicted(server: Server, client: httpx.Client) -> None:
    with connect(server.ws_url + "/rooms/keepme", open_timeout=5, close_timeout=5) as ws:
        first = client.post("/rooms/keepme").json()
        time.sleep(1.5)
        later = client.post("/rooms/keepme").json()
        assert later["generation"] == first["generation"]
        ws.send("x")
        assert ws.recv(timeout=5) == "x"


def test_json_roundtrip_of_events(client: httpx.Client) -> None:
    assert json.loads(client.get("/boom").text)["async_handler"] is True
