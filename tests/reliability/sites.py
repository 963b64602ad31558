"""The sites the reliability suite serves, as ``{relative path: source}`` dicts.

Small limits everywhere so a test that waits for a timeout waits seconds, not minutes.
"""

from __future__ import annotations

from acceptance.kit import ECHO_ROUTE

#: A marker that must never reach a client or a log: it stands for a secret.
SECRET = "s3cr3t-7f1d9a"

PING = {
    "routes/ping.py": """
        async def get(event):
            return {"body": "pong"}
    """,
    "routes/echo.py": """
        import hashlib

        async def post(event):
            body = await event.request.body()
            return {"body": {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}}

        async def get(event):
            return {"body": {"path": event.url.path, "query": str(event.url)}}
    """,
    "routes/stream.py": """
        async def post(event):
            total = 0
            async for chunk in event.request.stream():
                total += len(chunk)
            return {"body": {"length": total}}
    """,
}

#: Small limits for the protocol fuzz and the slow-client tests.
FAST_LIMITS = """
    [server]
    header_timeout = 2.0
    keepalive_timeout = 1.0
    max_header_bytes = 4096
    max_body_bytes = 65536
    max_ws_message_bytes = 65536
    ws_max_queue_bytes = 262144
    ws_ping_interval = 0
    shutdown_timeout = 2.0
    handler_timeout = 5.0
"""

# -- faulty handlers ---------------------------------------------------------------------

FAULTY = {
    **PING,
    "routes/fault/raise.py": f"""
        async def get(event):
            raise RuntimeError("boom {SECRET}")
    """,
    "routes/fault/raise_sync.py": f"""
        def get(event):
            raise ValueError("sync boom {SECRET}")
    """,
    "routes/fault/hang.py": """
        import anyio

        async def get(event):
            await anyio.sleep(3600)
    """,
    "routes/fault/hang_sync.py": """
        import time

        def get(event):
            time.sleep(4)  # bounded: a thread cannot be cancelled
            return {"body": "late"}
    """,
    "routes/fault/spin.py": """
        import time

        async def get(event):
            # Blocks the event loop (a bug in user code); bounded to 1.5 s.
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                pass
            return {"body": "spun"}
    """,
    "routes/fault/garbage/[kind].py": """
        from kitpy import Response

        class Weird:
            pass

        KINDS = {
            "object": lambda: Weird(),
            "int": lambda: 42,
            "unknown_key": lambda: {"bogus": 1},
            "bad_status_type": lambda: {"status": "abc"},
            "bad_status_range": lambda: {"status": 999},
            "set_body": lambda: {"body": {1, 2}},
            "bad_headers": lambda: {"headers": 5},
            "nan_json": lambda: {"body": {"x": float("nan")}},
            "none": lambda: None,
            "tuple": lambda: ("a", 200),
            "bytes_iter_of_str": lambda: Response(iter(["not", "bytes"])),
        }

        async def get(event):
            return KINDS[event.params["kind"]]()
    """,
    "routes/fault/stream_fails.py": """
        from kitpy import Response

        async def chunks():
            yield b"first part;"
            raise RuntimeError("the stream broke")

        async def get(event):
            return Response(chunks())
    """,
    "routes/fault/crlf/[how].py": f"""
        from kitpy import Response

        EVIL = "a\\r\\nSet-Cookie: pwned={SECRET}"

        async def get(event):
            how = event.params["how"]
            if how == "dict":
                return {{"headers": {{"x-evil": EVIL}}, "body": "x"}}
            if how == "response":
                return Response("x", headers={{"x-evil": EVIL}})
            if how == "mutate":
                response = Response("x")
                response.headers["x-evil"] = EVIL
                return response
            if how == "lf":
                return {{"headers": {{"x-evil": "a\\nX-Injected: 1"}}, "body": "x"}}
            if how == "name":
                return {{"headers": {{"x-evil\\r\\nX-Injected": "1"}}, "body": "x"}}
            if how == "nul":
                return {{"headers": {{"x-evil": "a\\x00b"}}, "body": "x"}}
            if how == "location":
                return Response(None, 302, {{"location": "/x\\r\\nX-Injected: 1"}})
            if how == "cookie":
                event.cookies.set("c", "v\\r\\nX-Injected: 1")
                return {{"body": "x"}}
            if how == "cookie_attr":
                event.cookies.set("c", "v", path="/\\r\\nX-Injected: 1")
                return {{"body": "x"}}
            if how == "unicode":
                return {{"headers": {{"x-evil": "caf\\u00e9 \\u2028 ok"}}, "body": "x"}}
            return {{"body": "unknown"}}
    """,
    "routes/cookie.py": """
        async def get(event):
            event.cookies.set("sid", "abc123")
            event.cookies.set("theme", "dark", httponly=False)
            return {"body": "ok"}
    """,
    "routes/whoami.py": """
        async def get(event):
            host, port = event.client if event.client else (None, None)
            return {"body": {"client": host, "scheme": event.url.scheme, "host": event.url.host}}
    """,
    "routes/secret.py": """
        async def post(event):
            await event.request.body()
            return {"body": "accepted"}

        async def get(event):
            return {"body": "ok"}
    """,
}

FAULTY_CONFIG = """
    [server]
    header_timeout = 3.0
    keepalive_timeout = 2.0
    handler_timeout = 1.0
    shutdown_timeout = 2.0
    ws_ping_interval = 0
"""

# -- durable objects that raise ------------------------------------------------------------

BAD_OBJECT = {
    **PING,
    "objects/bad.py": """
        import anyio
        from kitpy import DurableObject, Response, WebSocketPair, text

        class Bad(DurableObject):
            async def fetch(self, request):
                path = request.url.path
                if path == "/raise":
                    raise RuntimeError("fetch exploded")
                if path == "/hang":
                    await anyio.sleep(3600)
                if path == "/count":
                    return text(str(len(self.state.get_websockets())))
                client, server = WebSocketPair()
                self.state.accept_websocket(server, tags=["all"])
                return Response(status=101, websocket=client)

            async def websocket_message(self, ws, message):
                if message == "raise":
                    raise RuntimeError("websocket_message exploded")
                if message == "count":
                    await ws.send(str(len(self.state.get_websockets())))
                    return
                for peer in self.state.get_websockets("all"):
                    await peer.send(message)

            async def websocket_close(self, ws, code, reason):
                if reason == "raise":
                    raise RuntimeError("websocket_close exploded")
    """,
    "routes/do/[name]/[...rest].py": """
        async def get(event):
            ns = event.platform.env.bad
            stub = ns.get(ns.id_from_name(event.params["name"]))
            return await stub.fetch("/" + event.params["rest"], event.request)
    """,
}

BAD_OBJECT_CONFIG = """
    [server]
    handler_timeout = 2.0
    ws_ping_interval = 0
    shutdown_timeout = 2.0

    [objects]
    bad = "objects.bad:Bad"
"""

# -- storage storm ---------------------------------------------------------------------------

STORE = {
    **PING,
    "objects/store.py": """
        from kitpy import DurableObject, text, json

        class Store(DurableObject):
            async def fetch(self, request):
                path = request.url.path
                key = request.url.query.get("key")
                if path == "/put":
                    value = {"v": request.url.query.get("v"), "pad": "x" * 64}
                    await self.state.storage.put(key, value)
                    return text("ok")
                if path == "/put_nowait":
                    # No await: the output gate must hold the response until durable.
                    self.state.storage.put(key, {"v": request.url.query.get("v")})
                    return text("ok")
                if path == "/txn":
                    async with self.state.storage.transaction() as txn:
                        await txn.put(key + "-a", 1)
                        await txn.put(key + "-b", 2)
                    return text("ok")
                if path == "/get":
                    return json(await self.state.storage.get(key))
                if path == "/bad_value":
                    await self.state.storage.put(key, {1, 2, 3})
                    return text("stored?!")
                return text("?", status=404)
    """,
    "routes/w/[obj]/[op].py": """
        async def get(event):
            ns = event.platform.env.store
            stub = ns.get(ns.id_from_name(event.params["obj"]))
            target = "/" + event.params["op"] + "?" + event.url.query_string
            return await stub.fetch(target, event.request)

        post = get
    """,
}

STORE_CONFIG = """
    [server]
    ws_ping_interval = 0
    shutdown_timeout = 2.0
    max_connections = 2000

    [objects]
    store = "objects.store:Store"
"""

# -- WebSockets: echo endpoint and a broadcasting room -----------------------------------------

WS = {
    **PING,
    "routes/ws/echo.py": ECHO_ROUTE,
    "objects/room.py": """
        import anyio
        from kitpy import DurableObject, Response, WebSocketPair, text

        class Room(DurableObject):
            async def fetch(self, request):
                if request.url.path == "/count":
                    return text(str(len(self.state.get_websockets())))
                client, server = WebSocketPair()
                self.state.accept_websocket(server, tags=["r"])
                return Response(status=101, websocket=client)

            async def websocket_message(self, ws, message):
                if isinstance(message, str) and message.startswith("flood "):
                    _, count, size = message.split()
                    payload = "x" * int(size)
                    for _ in range(int(count)):
                        for peer in self.state.get_websockets("r"):
                            try:
                                await peer.send(payload)
                            except Exception:
                                pass
                        # send() never blocks: yield so the writers drain, as a real
                        # broadcaster does between events
                        await anyio.sleep(0)
                    await ws.send("flood done")
                    return
                if message == "count":
                    await ws.send(str(len(self.state.get_websockets())))
                    return
                for peer in self.state.get_websockets("r"):
                    await peer.send(message)
    """,
    "routes/room/[name]/[...rest].py": """
        async def get(event):
            ns = event.platform.env.rooms
            stub = ns.get(ns.id_from_name(event.params["name"]))
            return await stub.fetch("/" + event.params["rest"], event.request)
    """,
}

WS_CONFIG = """
    [server]
    header_timeout = 3.0
    keepalive_timeout = 2.0
    max_ws_message_bytes = 65536
    ws_max_queue_bytes = 262144
    ws_ping_interval = 0
    shutdown_timeout = 2.0
    max_connections = 5000
    {extra}

    [objects]
    rooms = "objects.room:Room"
"""

# -- static files and private site files -------------------------------------------------------

STATIC = {
    **PING,
    "static/ok.txt": "public file\n",
    "static/sub/inner.txt": "inner file\n",
    "static/.hidden": f"dot file {SECRET}\n",
    "static/.well-known/security.txt": "Contact: mailto:x@example.com\n",
    "secret.txt": f"outside static {SECRET}\n",
    "hooks.py": f"""
        # hooks source {SECRET}
        async def handle(event, resolve):
            return await resolve(event)
    """,
    "routes/source.py": f"""
        # route source {SECRET}
        async def get(event):
            return {{"body": "route answered"}}
    """,
    "routes/_private.py": f"""
        # private helper {SECRET}
        X = 1
    """,
}

STATIC_CONFIG = f"""
    # config {SECRET}
    [server]
    header_timeout = 3.0

    [env]
    API_KEY = "{SECRET}"
"""
