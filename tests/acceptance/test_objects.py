"""Durable objects: the article's 101 pass-through, storage, transactions, alarms,
durability across restarts and crashes (docs/objects.md, docs/storage.md)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .kit import Server, serve_site, write_site

FILES: dict[str, str] = {
    "kitpy.toml": """
        [objects]
        rooms = "objects.room:Room"
        store = "objects.store:Store"
    """,
    # the article's endpoint, verbatim from docs/objects.md
    "routes/api/rooms/[id]/[...rest].py": """
        async def get(event):
            rooms = event.platform.env.rooms
            room = rooms.get(rooms.id_from_name(event.params["id"]))
            return await room.fetch(event.params["rest"], event.request)
    """,
    "routes/store/[name]/[op].py": """
        async def post(event):
            store = event.platform.env.store
            stub = store.get(store.id_from_name(event.params["name"]))
            return await stub.fetch("/" + event.params["op"], event.request)
    """,
    "routes/ids.py": """
        async def get(event):
            env = event.platform.env
            a1 = env.rooms.id_from_name("alpha")
            a2 = env.rooms.id_from_name("alpha")
            b = env.store.id_from_name("alpha")
            u1 = env.rooms.new_unique_id()
            u2 = env.rooms.new_unique_id()
            back = env.rooms.id_from_string(str(a1))
            try:
                env.rooms.id_from_string("not-hex!")
                bad = "accepted"
            except Exception as exc:
                bad = type(exc).__name__
            return {"body": {
                "a1": str(a1), "a2": str(a2), "b": str(b), "u1": str(u1), "u2": str(u2),
                "back": str(back), "bad": bad,
            }}
    """,
    "objects/__init__.py": "",
    "objects/room.py": """
        from kitpy import DurableObject, Response, WebSocketPair


        class Room(DurableObject):
            async def fetch(self, request):
                client, server = WebSocketPair()
                self.state.accept_websocket(server, tags=["chat"])
                return Response(status=101, websocket=client)

            async def websocket_message(self, ws, message):
                if message == "count":
                    await ws.send(str(len(self.state.get_websockets("chat"))))
                    return
                if isinstance(message, str) and message.startswith("iam:"):
                    ws.serialize_attachment({"name": message[4:]})
                    return
                if message == "whoami":
                    await ws.send(json.dumps(ws.deserialize_attachment()))
                    return
                for peer in self.state.get_websockets("chat"):
                    await peer.send(message)

            async def websocket_close(self, ws, code, reason): ...


        import json
    """,
    "objects/store.py": """
        import datetime
        import time
        from pathlib import Path

        from kitpy import DurableObject, json as json_response

        MARK = Path(__file__).resolve().parent.parent / "alarm-fired.txt"


        class Store(DurableObject):
            def __init__(self, state, env):
                super().__init__(state, env)
                self.loaded = "not yet"
                state.block_concurrency_while(self._load())

            async def _load(self):
                self.loaded = await self.state.storage.get("k")

            async def fetch(self, request):
                op = request.url.path.rsplit("/", 1)[-1]
                args = await request.json()
                storage = self.state.storage
                if op == "put":
                    if "entries" in args:
                        await storage.put(args["entries"])
                    else:
                        await storage.put(args["key"], args["value"])
                    return json_response({"ok": True})
                if op == "get":
                    return json_response({"value": await storage.get(args["key"])})
                if op == "list":
                    result = await storage.list(**args)
                    return json_response({"items": list(result.items())})
                if op == "delete":
                    result = await storage.delete(args["key"])
                    return json_response({"result": result})
                if op == "delete_all":
                    await storage.delete_all()
                    return json_response({"ok": True})
                if op == "put_unawaited":
                    storage.put(args["key"], args["value"])  # Cloudflare style: no await
                    return json_response({"ok": True})
                if op == "loaded":
                    return json_response({"loaded": self.loaded})
                if op == "bad_value":
                    try:
                        await storage.put("bad", {1, 2})
                    except Exception as exc:
                        return json_response({"error": type(exc).__name__, "message": str(exc)})
                    return json_response({"error": None})
                if op == "txn_ok":
                    async with storage.transaction() as txn:
                        await txn.put("t1", 1)
                        await txn.put("t2", 2)
                        seen = await txn.get("t1")
                    return json_response({"seen": seen})
                if op == "txn_fail":
                    try:
                        async with storage.transaction() as txn:
                            await txn.put("f1", "x")
                            await txn.delete("t1")
                            raise RuntimeError("abort")
                    except RuntimeError:
                        pass
                    return json_response({"ok": True})
                if op == "txn_rollback":
                    async with storage.transaction() as txn:
                        await txn.put("r1", "x")
                        txn.rollback()
                    return json_response({"ok": True})
                if op == "alarm":
                    when = time.time() + args["delay"]
                    if args.get("aware"):
                        when = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
                    await storage.set_alarm(when)
                    alarm = await storage.get_alarm()
                    return json_response({"alarm": alarm is not None})
                if op == "alarm_delete":
                    await storage.delete_alarm()
                    return json_response({"alarm": await storage.get_alarm()})
                return json_response({"error": "unknown op " + op}, status=400)

            async def alarm(self):
                count = (await self.state.storage.get("alarm_count")) or 0
                await self.state.storage.put("alarm_count", count + 1)
                with MARK.open("a") as f:
                    f.write("fired\\n")
    """,
}


site, server, client = serve_site(FILES)


def call(base: str | httpx.Client, name: str, op: str, **args: Any) -> Any:
    if isinstance(base, str):
        response = httpx.post(f"{base}/store/{name}/{op}", json=args, timeout=10)
    else:
        response = base.post(f"/store/{name}/{op}", json=args)
    assert response.status_code == 200, response.text
    return response.json()


def room(server: Server, name: str) -> ClientConnection:
    return connect(f"{server.ws_url}/api/rooms/{name}/websocket", open_timeout=5, close_timeout=5)


# -- the article: a durable object's 101 through an endpoint -------------------------


def test_room_broadcasts_to_every_socket(server: Server) -> None:
    with room(server, "lobby") as a, room(server, "lobby") as b, room(server, "lobby") as c:
        a.send("hello all")
        for ws in (a, b, c):
            assert ws.recv(timeout=5) == "hello all"
        c.send(b"binary too")
        for ws in (a, b, c):
            assert ws.recv(timeout=5) == b"binary too"


def test_rooms_are_separate_objects(server: Server) -> None:
    with room(server, "r-one") as a, room(server, "r-two") as b:
        a.send("count")
        assert a.recv(timeout=5) == "1"
        b.send("only b")
        assert b.recv(timeout=5) == "only b"
        a.send("ping-a")
        assert a.recv(timeout=5) == "ping-a"  # a never saw "only b"


def test_closed_socket_leaves_get_websockets(server: Server) -> None:
    with room(server, "leavers") as a, room(server, "leavers") as b, room(server, "leavers") as c:
        a.send("count")
        assert a.recv(timeout=5) == "3"
        b.close()
        c.close()
        deadline = time.monotonic() + 3
        count = ""
        while time.monotonic() < deadline:
            a.send("count")
            count = a.recv(timeout=5)
            if count == "1":
                break
            time.sleep(0.05)
        assert count == "1"


def test_socket_attachment(server: Server) -> None:
    with room(server, "attach") as a:
        a.send("iam:ann")
        a.send("whoami")
        assert json.loads(a.recv(timeout=5)) == {"name": "ann"}


# -- ids ----------------------------------------------------------------------------


def test_ids(client: httpx.Client) -> None:
    ids = client.get("/ids").json()
    hexdigits = set("0123456789abcdef")
    for key in ("a1", "b", "u1", "u2"):
        assert ids[key] and set(ids[key]) <= hexdigits, ids
    assert ids["a1"] == ids["a2"] == ids["back"]  # deterministic, round-trips
    assert ids["a1"] != ids["b"]  # per namespace
    assert ids["u1"] != ids["u2"]
    assert ids["bad"] != "accepted"  # validated


# -- storage ------------------------------------------------------------------------


def test_storage_put_get(client: httpx.Client) -> None:
    call(client, "kv", "put", key="a", value={"nested": [1, 2, None]})
    assert call(client, "kv", "get", key="a") == {"value": {"nested": [1, 2, None]}}
    assert call(client, "kv", "get", key="missing") == {"value": None}
    call(client, "kv", "put", entries={"b": 2, "c": "three"})
    assert call(client, "kv", "get", key=["a", "b", "zz"]) == {
        "value": {"a": {"nested": [1, 2, None]}, "b": 2}
    }


def test_storage_values_must_be_json(client: httpx.Client) -> None:
    result = call(client, "kv2", "bad_value")
    assert result["error"] is not None and result["message"]


def test_storage_list_options(client: httpx.Client) -> None:
    entries = {k: i for i, k in enumerate(["a", "b", "c", "d", "pa", "pb", "pc", "q"])}
    call(client, "listing", "put", entries=entries)

    def keys(**opts: Any) -> list[str]:
        return [k for k, _ in call(client, "listing", "list", **opts)["items"]]

    assert keys() == ["a", "b", "c", "d", "pa", "pb", "pc", "q"]
    assert keys(prefix="p") == ["pa", "pb", "pc"]
    assert keys(start="b", end="d") == ["b", "c"]  # start inclusive, end exclusive
    assert keys(start="pb") == ["pb", "pc", "q"]
    assert keys(end="b") == ["a"]
    assert keys(limit=3) == ["a", "b", "c"]
    assert keys(reverse=True) == ["q", "pc", "pb", "pa", "d", "c", "b", "a"]
    assert keys(reverse=True, limit=2) == ["q", "pc"]
    assert keys(prefix="p", reverse=True, limit=2) == ["pc", "pb"]
    items = call(client, "listing", "list", prefix="p")["items"]
    assert items == [["pa", 4], ["pb", 5], ["pc", 6]]


def test_storage_delete(client: httpx.Client) -> None:
    call(client, "del", "put", entries={"x": 1, "y": 2, "z": 3})
    call(client, "del", "delete", key="x")
    assert call(client, "del", "get", key="x") == {"value": None}
    call(client, "del", "delete", key=["y", "z"])
    assert call(client, "del", "list")["items"] == []
    call(client, "del", "put", entries={"x": 1})
    call(client, "del", "delete_all")
    assert call(client, "del", "list")["items"] == []


def test_transactions(client: httpx.Client) -> None:
    assert call(client, "txn", "txn_ok") == {"seen": 1}
    assert call(client, "txn", "get", key="t2") == {"value": 2}
    call(client, "txn", "txn_fail")
    assert call(client, "txn", "get", key="f1") == {"value": None}
    assert call(client, "txn", "get", key="t1") == {"value": 1}  # the delete rolled back
    call(client, "txn", "txn_rollback")
    assert call(client, "txn", "get", key="r1") == {"value": None}


def test_alarm_fires(client: httpx.Client) -> None:
    assert call(client, "alarm-a", "alarm", delay=0.3) == {"alarm": True}
    deadline = time.monotonic() + 10
    count = None
    while time.monotonic() < deadline:
        count = call(client, "alarm-a", "get", key="alarm_count")["value"]
        if count:
            break
        time.sleep(0.1)
    assert count == 1


def test_alarm_with_aware_datetime(client: httpx.Client) -> None:
    assert call(client, "alarm-b", "alarm", delay=0.3, aware=True) == {"alarm": True}
    deadline = time.monotonic() + 10
    count = None
    while time.monotonic() < deadline:
        count = call(client, "alarm-b", "get", key="alarm_count")["value"]
        if count:
            break
        time.sleep(0.1)
    assert count == 1


def test_delete_alarm(client: httpx.Client) -> None:
    call(client, "alarm-c", "alarm", delay=60)
    assert call(client, "alarm-c", "alarm_delete") == {"alarm": None}


# -- restarts -----------------------------------------------------------------------


@pytest.fixture
def fresh_site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site", FILES)


def test_storage_survives_restart_and_kill_9(fresh_site: Path) -> None:
    srv = Server(fresh_site)
    try:
        srv.start()
        call(srv.url, "durable", "put", key="k", value="graceful")
        assert srv.stop(signal.SIGTERM) == 0
        srv.start()
        assert call(srv.url, "durable", "get", key="k") == {"value": "graceful"}
        call(srv.url, "durable", "put", key="k2", value="acknowledged")
        call(srv.url, "durable", "put_unawaited", key="k3", value="unawaited")
        srv.stop(signal.SIGKILL)
        srv.start()
        # block_concurrency_while() in the constructor ran before the first event
        assert call(srv.url, "durable", "loaded") == {"loaded": "graceful"}
        assert call(srv.url, "durable", "get", key="k") == {"value": "graceful"}
        assert call(srv.url, "durable", "get", key="k2") == {"value": "acknowledged"}
        # an un-awaited put acknowledged by a response is durable too (output gate)
        assert call(srv.url, "durable", "get", key="k3") == {"value": "unawaited"}
    finally:
        srv.kill()
    assert (fresh_site / ".kitpy").is_dir()


def test_alarm_fires_after_restart_without_a_request(fresh_site: Path) -> None:
    mark = fresh_site / "alarm-fired.txt"
    srv = Server(fresh_site)
    try:
        srv.start()
        call(srv.url, "later", "alarm", delay=1.5)
        assert srv.stop(signal.SIGTERM) == 0
        assert not mark.exists()
        srv.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not mark.exists():
            time.sleep(0.1)
        assert mark.exists(), "the alarm did not fire after the restart"
    finally:
        srv.kill()


def test_sigterm_closes_object_sockets_with_1001(fresh_site: Path) -> None:
    srv = Server(fresh_site)
    try:
        srv.start()
        with room(srv, "bye") as a, room(srv, "bye") as b:
            a.send("x")
            assert a.recv(timeout=5) == "x" and b.recv(timeout=5) == "x"
            assert srv.stop(signal.SIGTERM) == 0
            for ws in (a, b):
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=5)
                assert ws.close_code == 1001
    finally:
        srv.kill()
