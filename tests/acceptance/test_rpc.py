"""RPC on stubs, WebSocket auto-responses and hooks.py ``init()`` on a real
``kitpy serve`` / ``kitpy dev`` (docs/objects.md, docs/hooks.md)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from .kit import Server, run_kitpy, write_site

FILES: dict[str, str] = {
    "kitpy.toml": """
        [objects]
        counters = "objects.counter:Counter"
    """,
    "objects/__init__.py": "",
    "objects/counter.py": """
        from kitpy import DurableObject, Response, WebSocketPair, error

        class Counter(DurableObject):
            def __init__(self, state, env):
                super().__init__(state, env)
                self.events = 0
                state.set_websocket_auto_response("ping", "pong")

            async def increment(self, by=1):
                n = (await self.state.storage.get("n") or 0) + by
                self.state.storage.put("n", n)
                return n

            def stats(self):
                ws = self.state.get_websockets()
                stamp = self.state.get_websocket_auto_response_timestamp(ws[0]) if ws else None
                return {"events": self.events, "stamp": stamp and stamp.isoformat()}

            async def check(self, name):
                if name != "ok":
                    error(404, f"no counter {name}")
                return b"\\x00bytes"

            async def fetch(self, request):
                client, server = WebSocketPair()
                self.state.accept_websocket(server)
                return Response(status=101, websocket=client)

            async def websocket_message(self, ws, message):
                self.events += 1
                await ws.send("event " + message)
    """,
    "hooks.py": """
        from pathlib import Path

        def init(env):
            with (Path(__file__).parent / "init-log.txt").open("a") as log:
                log.write("init\\n")
    """,
    "routes/c/[name]/inc.py": """
        async def post(event):
            stub = event.platform.env.counters.get_by_name(event.params["name"])
            return {"body": {"n": await stub.increment(by=int(event.url.query.get("by", 1)))}}
    """,
    "routes/c/[name]/stats.py": """
        async def get(event):
            stub = event.platform.env.counters.get_by_name(event.params["name"])
            return {"body": await stub.stats()}
    """,
    "routes/c/[name]/check.py": """
        async def get(event):
            stub = event.platform.env.counters.get_by_name("x")
            return {"body": await stub.check(event.params["name"])}
    """,
    "routes/c/[name]/ws.py": """
        async def get(event):
            stub = event.platform.env.counters.get_by_name(event.params["name"])
            return await stub.fetch("/ws", event.request)
    """,
}


def test_rpc_auto_response_and_init_on_kitpy_serve(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", FILES)
    srv = Server(site).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            assert client.post("/c/a/inc?by=2").json() == {"n": 2}
            assert client.post("/c/a/inc?by=3").json() == {"n": 5}
            assert client.get("/c/ok/check").content == b"\x00bytes"
            missing = client.get("/c/zz/check", headers={"accept": "application/json"})
            assert missing.status_code == 404
            assert missing.json() == {"message": "no counter zz"}
            with connect(srv.ws_url + "/c/room/ws", open_timeout=10) as ws:
                for _ in range(10):
                    ws.send("ping")
                    assert ws.recv(timeout=10) == "pong"
                stats = client.get("/c/room/stats").json()
                assert stats["events"] == 0 and stats["stamp"] is not None
                ws.send("hello")
                assert ws.recv(timeout=10) == "event hello"
                assert client.get("/c/room/stats").json()["events"] == 1
        assert srv.stop() == 0
        # Durable across a restart; init ran once per start.
        srv.start()
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            assert client.post("/c/a/inc").json() == {"n": 6}
        assert srv.stop() == 0
        assert (site / "init-log.txt").read_text() == "init\ninit\n"
    finally:
        srv.kill()


def test_a_failing_init_stops_kitpy_serve_with_its_traceback(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "hooks.py": """
                async def init():
                    raise ConnectionError("database at db.internal refused")
            """,
            "routes/index.py": "def get(event):\n    return {'body': 'never'}\n",
        },
    )
    result = run_kitpy("serve", str(site), "--host", "127.0.0.1", "--port", "0")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert 'hooks.py", line 2, in init' in result.stderr
    assert "kitpy: " in result.stderr and "init() raised ConnectionError" in result.stderr
    assert "kitpy serving" not in result.stdout


def test_kitpy_dev_runs_init_on_every_reload(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "hooks.py": FILES["hooks.py"],
            "routes/index.py": "def get(event):\n    return {'body': 'one'}\n",
        },
    )
    srv = Server(site, command="dev")
    try:
        srv.start()
        log = site / "init-log.txt"
        assert log.read_text() == "init\n"
        (site / "routes" / "index.py").write_text("def get(event):\n    return {'body': 'two'}\n")
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get("/").text == "two":
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            assert client.get("/").text == "two"
        assert log.read_text() == "init\ninit\n"
        assert srv.stop() == 0
    finally:
        srv.kill()
