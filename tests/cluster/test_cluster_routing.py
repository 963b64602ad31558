"""Routing across real ``kitpy serve`` nodes on real PostgreSQL and NATS, real clients.

Every object reports the node it runs on (``KITPY_NODE``), so a test can tell where
an event ran. A raw NATS client watches the site's subjects to count what crosses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import nats
import pytest
from engines import NatsEngine, Node, Nodes
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from kitpy.cluster.transport import decode_frame, site_prefix

pytestmark = pytest.mark.slow

ROOM = """
import asyncio
import hashlib
import os
import time

from kitpy import DurableObject, Response, WebSocketPair, json

NODE = os.environ["KITPY_NODE"]
CLOSED = []  # the response streams of this node whose generator has finished


async def stream(name, first, then_wait):
    try:
        yield b"x" * first
        while True:
            await asyncio.sleep(3600 if then_wait else 0)
            yield b"y" * 65536
    finally:
        CLOSED.append(name)


class Room(DurableObject):
    async def fetch(self, request):
        parts = request.url.path.strip("/").split("/")
        if request.headers.get("upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            self.state.accept_websocket(server, tags=[parts[1]])
            server.serialize_attachment({"who": parts[2]})
            offered = request.headers.get("sec-websocket-protocol", "").split(",")
            offered = [name.strip() for name in offered if name.strip()]
            headers = {"sec-websocket-protocol": offered[-1]} if offered else None
            return Response(status=101, websocket=client, headers=headers)
        if parts[0] == "where":
            return json({"node": NODE})
        if parts[0] in ("stream", "slow"):  # endless; "slow" waits after its first bytes
            return Response(stream(parts[1], 200_000, parts[0] == "slow"))
        if parts[0] == "closed":
            return json(CLOSED)
        if parts[0] == "echo":
            body = await request.body()
            size = int(request.headers.get("x-reply-size", "0"))

            def chunks():
                for i in range(0, size, 10_000):
                    yield bytes([i % 251]) * min(10_000, size - i)

            headers = {"x-got": str(len(body)), "x-sha": hashlib.sha256(body).hexdigest()}
            return Response(chunks(), headers=headers)
        if parts[0] == "alarm":
            await self.state.storage.set_alarm(time.time() + float(parts[1]))
            return json({"set": True})
        if parts[0] == "fired":
            return json(await self.state.storage.get("fired") or [])
        return Response("no such path", status=404)

    async def alarm(self):
        fired = await self.state.storage.get("fired") or []
        await self.state.storage.put("fired", [*fired, NODE])

    async def add(self, n):
        value = (await self.state.storage.get("n") or 0) + n
        await self.state.storage.put("n", value)
        return {"n": value, "owner": NODE}

    async def websocket_message(self, ws, message):
        if message == "who":
            await ws.send(f"{ws.deserialize_attachment()['who']}@{NODE}")
        elif message == "tags":
            await ws.send(",".join(self.state.get_tags(ws)))
        elif message == "auto":
            self.state.set_websocket_auto_response("ping", "pong")
            await ws.send("auto on")
        elif message == "bye":
            await ws.close(4001, "asked to")
        elif message.startswith("all:"):
            for peer in self.state.get_websockets():
                await peer.send(message[4:])
        elif message == "count":
            await ws.send(str(len(self.state.get_websockets())))
        elif message == "protocol?":
            await ws.send(repr(ws.protocol))
        elif message == "hold":  # what the client sends meanwhile queues for this socket
            await asyncio.sleep(10)
        else:
            await ws.send("echo:" + message)
"""

FORWARD = """
from kitpy import json

NODE = __import__("os").environ["KITPY_NODE"]


async def _forward(event):
    rooms = event.platform.env.rooms
    stub = rooms.get_by_name(event.params["name"])
    return await stub.fetch("/" + event.params["rest"], event.request)

get = post = put = _forward
"""

RPC = """
from kitpy import json

NODE = __import__("os").environ["KITPY_NODE"]


async def post(event):
    stub = event.platform.env.rooms.get_by_name(event.params["name"])
    result = await stub.add(int(event.url.query.get("n", "1")))
    return json({**result, "front": NODE})
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    files = {
        "kitpy.toml": """
            [server]
            max_body_bytes = 4194304
            ws_max_queue_bytes = 65536

            [objects]
            rooms = "objects.room:Room"
        """,
        "objects/__init__.py": "",
        "objects/room.py": ROOM,
        "routes/o/[name]/[...rest].py": FORWARD,
        "routes/rpc/[name].py": RPC,
    }
    for name, source in files.items():
        path = tmp_path / "site" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
    return tmp_path / "site"


def where(node: Node, name: str) -> str:
    response = httpx.get(f"{node.url}/o/{name}/where", timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["node"])


def two_nodes(
    nodes: Nodes, site: Path, prefix: str, lease_ttl: float | None = None
) -> tuple[Node, Node]:
    """Nodes ``<prefix>1`` and ``<prefix>2``; the first owns object ``r``."""
    first = nodes.start(site, f"{prefix}1", lease_ttl=lease_ttl)
    second = nodes.start(site, f"{prefix}2", lease_ttl=lease_ttl)
    assert where(first, "r") == first.name
    return first, second


def socket(stack: ExitStack, node: Node, name: str, tag: str, who: str) -> ClientConnection:
    """A client socket to object ``name`` through ``node``, closed with ``stack``."""
    url = f"{node.ws_url}/o/{name}/ws/{tag}/{who}"
    return stack.enter_context(connect(url, open_timeout=10))


def close_code(ws: ClientConnection, timeout: float = 10) -> int | None:
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    except TimeoutError:
        pytest.fail("the socket was not closed")


class Watch:
    """A raw NATS subscriber on every node inbox of the site, counting frames by kind."""

    def __init__(self, url: str, prefix: str) -> None:
        self.frames: Counter[tuple[str, str]] = Counter()  # (subject's node, kind)
        self._url, self._prefix = url, prefix
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        self._nc = await nats.connect(self._url)

        async def seen(msg: nats.aio.msg.Msg) -> None:
            node = msg.subject.split(".")[3]
            try:
                kind = decode_frame(msg.data).kind.name
            except ValueError:
                kind = "garbage"
            self.frames[(node, kind)] += 1

        await self._nc.subscribe(self._prefix + ".n.*", cb=seen)
        await self._nc.flush()

    def publish(self, subject: str, data: bytes) -> None:
        async def send() -> None:
            await self._nc.publish(subject, data)
            await self._nc.flush()

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def sync(self) -> None:
        asyncio.run_coroutine_threadsafe(self._nc.flush(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def watch(cluster_db: str, nats_server: NatsEngine) -> Iterator[Watch]:
    observer = Watch(nats_server.url, site_prefix(cluster_db))
    yield observer
    observer.close()


def eventually(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not callable(check) or not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)


def test_fetch_rpc_and_alarms_run_on_the_owner_from_any_node(
    site: Path, cluster_nodes: Nodes, watch: Watch, cluster_db: str
) -> None:
    n1 = cluster_nodes.start(site, "n1")
    n2 = cluster_nodes.start(site, "n2")
    assert where(n1, "a") == "n1"  # the first event claims it where it arrives
    assert where(n2, "a") == "n1"

    # bodies larger than a NATS chunk, both ways, through the front node
    sent = bytes(range(256)) * 1500  # 384000 bytes
    response = httpx.post(
        f"{n2.url}/o/a/echo", content=sent, headers={"x-reply-size": "300000"}, timeout=20
    )
    assert response.status_code == 200
    assert response.headers["x-got"] == str(len(sent))
    assert response.headers["x-sha"] == hashlib.sha256(sent).hexdigest()
    expected = b"".join(
        bytes([i % 251]) * min(10_000, 300_000 - i) for i in range(0, 300_000, 10_000)
    )
    assert response.content == expected
    assert httpx.get(f"{n2.url}/o/a/nothing", timeout=10).status_code == 404

    # RPC
    first = httpx.post(f"{n2.url}/rpc/a?n=2", timeout=10).json()
    assert first == {"n": 2, "owner": "n1", "front": "n2"}
    assert httpx.post(f"{n1.url}/rpc/a?n=3", timeout=10).json()["n"] == 5
    calls_to_n1 = watch.frames[("n1", "CALL")]
    assert calls_to_n1 == 1  # only the call from n2 crossed

    # an alarm set through n2 fires once, on the owner
    assert httpx.get(f"{n2.url}/o/a/alarm/0.2", timeout=10).json() == {"set": True}
    eventually(lambda: httpx.get(f"{n2.url}/o/a/fired", timeout=10).json() == ["n1"])
    time.sleep(1.0)
    assert httpx.get(f"{n1.url}/o/a/fired", timeout=10).json() == ["n1"]

    # garbage on n1's subject: one log line each, dropped; n1 keeps serving
    inbox = site_prefix(cluster_db) + ".n.n1"
    for junk in (b"", b"not a frame", b"kp\x01" + b"\x00" * 20):
        watch.publish(inbox, junk)
    eventually(lambda: n1.text.count("dropped a malformed NATS message") >= 3)
    assert httpx.post(f"{n2.url}/rpc/a", timeout=10).json()["n"] == 6


def test_websockets_of_a_remote_object_and_a_broadcast_over_three_nodes(
    site: Path, cluster_nodes: Nodes, watch: Watch
) -> None:
    nodes = [cluster_nodes.start(site, name) for name in ("w1", "w2", "w3")]
    assert where(nodes[0], "room") == "w1"
    with ExitStack() as stack:
        clients = [
            socket(stack, node, "room", f"t{i}", f"{node.name}-{j}")
            for i, node in enumerate(nodes)
            for j in range(2)
        ]
        for ws, (node, j) in zip(clients, [(n, j) for n in nodes for j in range(2)], strict=True):
            ws.send("who")
            assert ws.recv(timeout=10) == f"{node.name}-{j}@w1"
        clients[2].send("tags")
        assert clients[2].recv(timeout=10) == "t1"
        clients[4].send("count")
        assert clients[4].recv(timeout=10) == "6"
        clients[3].send("auto")
        assert clients[3].recv(timeout=10) == "auto on"
        clients[5].send("ping")
        assert clients[5].recv(timeout=10) == "pong"

        watch.sync()
        before = dict(watch.frames)
        clients[0].send("all:hello everyone")  # from a socket on the owner itself
        for ws in clients:
            assert ws.recv(timeout=10) == "hello everyone"
        watch.sync()
        time.sleep(0.2)
        sockets_to = {
            name: watch.frames[(name, "SOCKETS")] - before.get((name, "SOCKETS"), 0)
            for name in ("w2", "w3")
        }
        assert sockets_to == {"w2": 1, "w3": 1}

        # the object closes a remote socket with its code; a client closes another
        clients[2].send("bye")
        assert close_code(clients[2]) == 4001
        clients[5].close(1000)
        clients[4].send("count")
        eventually(lambda: _count(clients[4]) == "4")


def _count(ws: ClientConnection) -> str:
    answer = str(ws.recv(timeout=10))
    ws.send("count")
    return answer


def test_sigkill_of_the_owner_closes_sockets_held_elsewhere_with_1012(
    site: Path, cluster_nodes: Nodes
) -> None:
    n1, n2 = two_nodes(cluster_nodes, site, "k", lease_ttl=1.0)
    with ExitStack() as stack:
        ws = socket(stack, n2, "r", "t", "x")
        ws.send("who")
        assert ws.recv(timeout=10) == "x@k1"
        n1.kill()
        assert close_code(ws, timeout=10) == 1012
        eventually(lambda: where(n2, "r") == "k2", timeout=10)
        again = socket(stack, n2, "r", "t", "y")
        again.send("who")
        assert again.recv(timeout=10) == "y@k2"


def test_sigterm_closes_own_clients_1001_and_other_nodes_sockets_1012(
    site: Path, cluster_nodes: Nodes
) -> None:
    n1, n2 = two_nodes(cluster_nodes, site, "s")
    with ExitStack() as stack:
        own, other = socket(stack, n1, "r", "t", "own"), socket(stack, n2, "r", "t", "other")
        for ws in (own, other):
            ws.send("who")
            ws.recv(timeout=10)
        n1.process.terminate()
        assert close_code(own) == 1001
        assert close_code(other) == 1012
    assert n1.process.wait(15) == 0
    assert where(n2, "r") == "s2"  # handed over: the leases were given up
    assert json.loads(httpx.post(f"{n2.url}/rpc/r", timeout=10).text)["owner"] == "s2"


def test_sockets_of_a_killed_front_node_leave_the_owners_object(
    site: Path, cluster_nodes: Nodes
) -> None:
    n1, n2 = two_nodes(cluster_nodes, site, "f", lease_ttl=1.0)
    with ExitStack() as stack:
        here = socket(stack, n1, "r", "t", "here")
        socket(stack, n2, "r", "t", "there").send("who")
        here.send("count")
        assert here.recv(timeout=10) == "2"
        n2.kill()
        here.send("count")
        eventually(lambda: _count(here) == "1")


def test_a_bridged_socket_has_the_subprotocol_and_queue_bound_of_a_local_one(
    site: Path, cluster_nodes: Nodes
) -> None:
    n1, n2 = two_nodes(cluster_nodes, site, "q")
    offered = [Subprotocol("chat.v1"), Subprotocol("chat.v2")]
    for node in (n1, n2):  # the object's own node, then another one
        with connect(f"{node.ws_url}/o/r/ws/t/p", subprotocols=offered, open_timeout=10) as ws:
            assert ws.subprotocol == "chat.v2"
            ws.send("protocol?")
            assert ws.recv(timeout=10) == "'chat.v2'"
        with connect(f"{node.ws_url}/o/r/ws/t/p", open_timeout=10) as ws:
            ws.send("protocol?")
            assert ws.recv(timeout=10) == "None"
        # ws_max_queue_bytes = 64 KiB: a client that sends 200 KB to an object busy with
        # an earlier message of its socket is closed with 1008, also across nodes
        with connect(f"{node.ws_url}/o/r/ws/t/q", open_timeout=10) as ws:
            ws.send("hold")
            try:
                for _ in range(20):
                    ws.send("z" * 10_000)
            except ConnectionClosed:
                pass  # the close may come before the last of them left
            assert close_code(ws) == 1008


def test_an_abandoned_streamed_response_stops_its_sender_on_the_owner(
    site: Path, cluster_nodes: Nodes
) -> None:
    n1, n2 = two_nodes(cluster_nodes, site, "a")
    # a client that goes away while the owner's stream waits for its next bytes
    with httpx.stream("GET", f"{n2.url}/o/r/slow/gone", timeout=10) as response:
        assert response.status_code == 200
        assert len(next(response.iter_raw())) > 0
    # a HEAD: the front node drops the streamed body unread
    head = httpx.head(f"{n2.url}/o/r/stream/head", timeout=10)
    assert head.status_code == 200 and head.content == b""
    closed = httpx.get(f"{n1.url}/o/r/closed", timeout=10).json()
    deadline = time.monotonic() + 20  # well below the 60 s a stalled stream may wait
    while sorted(closed) != ["gone", "head"] and time.monotonic() < deadline:
        time.sleep(0.1)
        closed = httpx.get(f"{n1.url}/o/r/closed", timeout=10).json()
    assert sorted(closed) == ["gone", "head"]
    # the front node is fine: a whole body still streams through it
    response = httpx.post(f"{n2.url}/o/r/echo", headers={"x-reply-size": "300000"}, timeout=20)
    assert len(response.content) == 300_000
