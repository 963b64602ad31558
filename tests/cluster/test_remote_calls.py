"""Routing between nodes over a real NATS server, nodes in one process, a fake placement.

Each node is :func:`kitpy.cluster.node.run_node` with its own NATS connection; a
shared ownership table stands in for PostgreSQL (fake_cluster.py; the real placement
is tested with real ``kitpy serve`` processes in test_cluster_routing.py).
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import fake_cluster
import nats
import pytest
from engines import NatsEngine
from fake_cluster import NodeParts, Table

from kitpy import DurableObject, Request, Response, WebSocketPair
from kitpy.cluster import streams
from kitpy.cluster.remote import OwnerGone
from kitpy.cluster.streams import WINDOW, Inbound
from kitpy.cluster.transport import CHUNK_SIZE, Transport
from kitpy.errors import HTTPError
from kitpy.http.websocket import WebSocket, WebSocketClosed
from kitpy.storage import MemoryBackend

pytestmark = pytest.mark.anyio


class Counter(DurableObject):
    async def increment(self, by: int = 1) -> int:
        value = (await self.state.storage.get("n") or 0) + by
        await self.state.storage.put("n", value)
        return int(value)

    async def echo_bytes(self, data: bytes) -> bytes:
        return data[::-1]

    async def heartbeat(self) -> None:
        self.state.set_websocket_auto_response("ping", "pong")

    async def answered(self) -> int:
        stamps = map(self.state.get_websocket_auto_response_timestamp, self.state.get_websockets())
        return sum(stamp is not None for stamp in stamps)

    async def missing(self, key: str) -> None:
        raise KeyError(key)

    async def fetch(self, request: Request) -> Response:
        if request.url.path == "/bytes":
            return Response(bytes(range(256)) * 8000, headers={"content-type": "x/y"})
        if request.url.path == "/404":
            raise HTTPError(404, "no such thing")
        if request.url.path == "/ws":
            client, server = WebSocketPair()
            self.state.accept_websocket(server, tags=[request.headers.get("x-tag", "all")])
            server.serialize_attachment({"who": request.headers.get("x-who")})
            if request.headers.get("x-tag") == "hello":
                await server.send("welcome")  # queued before the 101 leaves
            return Response(status=101, websocket=client)
        if request.url.path == "/broadcast":
            text = await request.text()
            for ws in self.state.get_websockets():
                await ws.send(text)
            return Response(str(len(self.state.get_websockets())))
        body = await request.body()
        size = int(request.headers.get("x-reply-size", "0"))

        def chunks() -> Any:
            for i in range(0, size, 10_000):
                yield bytes([i % 251]) * min(10_000, size - i)

        headers = {"x-got": str(len(body)), "x-sha": hashlib.sha256(body).hexdigest()}
        return Response(chunks(), headers=headers)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        if message == "who":
            await ws.send(str(ws.deserialize_attachment()["who"]))
        elif message == "tags":
            await ws.send(",".join(self.state.get_tags(ws)))
        elif message == "bye":
            await ws.close(4001, "asked to")
        elif message == "big":
            await ws.send(bytes(range(256)) * 6000)  # 1.5 MB: more than one NATS message
        elif len(message) > 1000:
            await ws.send(f"got {len(message)} {hashlib.sha256(message).hexdigest()}")
        else:
            await ws.send(f"echo:{message!r}")


@asynccontextmanager
async def cluster(url: str, names: list[str]) -> AsyncIterator[tuple[Table, list[NodeParts]]]:
    async with fake_cluster.cluster(url, names, {"counters": Counter}) as parts:
        yield parts


async def test_rpc_runs_on_the_owner_and_returns_its_bytes(nats_server: NatsEngine) -> None:
    async with cluster(nats_server.url, ["a1", "b1"]) as (table, (a, b)):
        stub_b = b.system.namespace("counters").get_by_name("x")
        assert await stub_b.increment() == 1  # b claims it
        stub_a = a.system.namespace("counters").get_by_name("x")
        assert await stub_a.increment(by=2) == 3
        assert await stub_a.increment(by=2) == 5
        assert await stub_a.echo_bytes(b"\x00\xffab") == b"ba\xff\x00"
        big = bytes(range(256)) * 12_000  # 3 MB, 4 MB encoded: more than one NATS message
        assert await stub_a.echo_bytes(big) == big[::-1]
        assert a.system.live_instance(stub_a.id) is None
        assert b.system.live_instance(stub_a.id) is not None
        locates = table.locates
        assert await stub_a.increment() == 6
        assert table.locates == locates  # the owner is remembered
        with pytest.raises(KeyError, match="'k'"):
            await stub_a.missing("k")


async def test_fetch_streams_bodies_larger_than_a_chunk_both_ways(
    nats_server: NatsEngine,
) -> None:
    async with cluster(nats_server.url, ["a2", "b2"]) as (table, (a, b)):
        await b.system.namespace("counters").get_by_name("big").increment()
        stub = a.system.namespace("counters").get_by_name("big")
        sent = bytes(range(256)) * (CHUNK_SIZE * 5 // 256 + 7)

        async def body() -> AsyncIterator[bytes]:
            for i in range(0, len(sent), 5000):
                yield sent[i : i + 5000]

        request = Request("POST", "https://x/up", {"x-reply-size": "700000"}, body())
        response = await stub.fetch(request)
        assert response.status == 200
        assert response.headers["x-got"] == str(len(sent))
        assert response.headers["x-sha"] == hashlib.sha256(sent).hexdigest()
        assert response.stream is not None
        got = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        expected = b"".join(
            bytes([i % 251]) * min(10_000, 700_000 - i) for i in range(0, 700_000, 10_000)
        )
        assert got == expected
        # a reader that gives up stops the owner's stream (it does not wait for credit)
        response = await stub.fetch("/down", headers={"x-reply-size": "5000000"})
        assert response.stream is not None
        chunks = aiter(response.stream)  # type: ignore[arg-type]
        assert len(await anext(chunks)) > 0
        await chunks.aclose()  # type: ignore[attr-defined]
        for _ in range(300):
            if not b.remote._served:
                break
            await _tick()
        assert not b.remote._served

        # a streamed response dropped unread leaves no call behind, and stops the owner
        # also when its whole window came (no later chunk would find the call gone)
        dropped = await stub.fetch("/down", headers={"x-reply-size": "5000000"})
        assert dropped.stream is not None and b.remote._served
        (call,) = a.remote._calls.values()
        await window_filled(call.inbound)  # the owner waits for credit now
        del dropped, call
        gc.collect()
        assert not a.remote._calls
        for _ in range(300):
            if not b.remote._served:
                break
            await _tick()
        assert not b.remote._served

        # a response body of bytes larger than a chunk streams as well
        whole = await stub.fetch("/bytes")
        assert whole.headers["content-type"] == "x/y"
        assert whole.stream is not None and whole.body is None
        assert b"".join([c async for c in whole.stream]) == bytes(range(256)) * 8000  # type: ignore[union-attr]

        # a small body goes in one frame, inline both ways
        small = await stub.fetch("/small", method="PUT", body=b"abc")
        assert small.headers["x-got"] == "3" and small.body == b""
        with pytest.raises(HTTPError) as raised:
            await stub.fetch("/404")
        assert raised.value.status == 404


async def test_a_stalled_sender_probes_and_stops_when_the_reader_forgot_the_stream(
    nats_server: NatsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "PROBE_INTERVAL", 0.2)
    async with cluster(nats_server.url, ["a9", "b9"]) as (table, (a, b)):
        await b.system.namespace("counters").get_by_name("big").increment()
        stub = a.system.namespace("counters").get_by_name("big")
        response = await stub.fetch("/down", headers={"x-reply-size": "5000000"})
        assert response.stream is not None
        (number,) = a.remote._calls
        await window_filled(a.remote._calls[number].inbound)  # the owner waits for credit
        # the reader's node forgets the call and its CANCEL is lost: only a probe tells
        a.remote._calls.pop(number)
        for _ in range(1000):
            if not b.remote._served:
                break
            await _tick()
        assert not b.remote._served
        del response


async def test_not_owner_answers_make_the_caller_locate_again(nats_server: NatsEngine) -> None:
    async with cluster(nats_server.url, ["a3", "b3"]) as (table, (a, b)):
        stub = a.system.namespace("counters").get_by_name("moving")
        key = ("counters", str(stub.id))
        table.owners[key] = "b3"
        assert await stub.increment() == 1
        assert b.system.is_live(*key)
        # b loses it (another node took it over); the table now says a3 owns it
        for callback in b.placement.lost:
            callback(*key)
        table.owners[key] = "a3"
        assert not b.system.is_live(*key)
        assert await stub.increment() == 1  # a3's storage: the fake has no shared store
        assert a.system.is_live(*key)


async def collect(ws: WebSocket, n: int) -> list[str | bytes]:
    return [await ws.receive() for _ in range(n)]


async def test_a_remote_objects_websocket_and_a_broadcast_of_one_message_per_node(
    nats_server: NatsEngine,
) -> None:
    async with cluster(nats_server.url, ["a4", "b4", "c4"]) as (table, (a, b, c)):
        await c.system.namespace("counters").get_by_name("room").increment()
        sockets = []
        for node, who in ((a, "ann"), (a, "al"), (b, "bob"), (b, "bea")):
            stub = node.system.namespace("counters").get_by_name("room")
            response = await stub.fetch("/ws", headers={"x-who": who, "x-tag": "t1"})
            assert response.status == 101 and response.websocket is not None
            sockets.append(response.websocket)
        for ws, who in zip(sockets, ("ann", "al", "bob", "bea"), strict=True):
            await ws.send("who")
            assert await ws.receive() == who
        await sockets[0].send("tags")
        assert await sockets[0].receive() == "t1"
        await sockets[2].send(b"\x01\x02")
        assert await sockets[2].receive() == "echo:b'\\x01\\x02'"

        # what the object sent before its 101 left arrives first
        greeted = (
            await a.system.namespace("counters")
            .get_by_name("room")
            .fetch("/ws", headers={"x-who": "gus", "x-tag": "hello"})
        )
        assert greeted.websocket is not None
        assert await greeted.websocket.receive() == "welcome"
        await greeted.websocket.close()

        # messages larger than one NATS message cross in pieces, both ways
        await sockets[1].send("big")
        assert await sockets[1].receive() == bytes(range(256)) * 6000
        large = bytes(range(7, 256)) * 9000
        await sockets[3].send(large)
        assert await sockets[3].receive() == f"got {len(large)} {hashlib.sha256(large).hexdigest()}"

        # the auto-response answers on the owner without an event
        await c.system.namespace("counters").get_by_name("room").heartbeat()
        await sockets[2].send("ping")
        assert await sockets[2].receive() == "pong"
        assert await a.system.namespace("counters").get_by_name("room").answered() == 1

        before = c.remote.outbox.frames_sent
        stub = c.system.namespace("counters").get_by_name("room")
        answer = await stub.fetch("/broadcast", method="POST", body="hello all")
        assert answer.body == b"4"
        for ws in sockets:
            assert await ws.receive() == "hello all"
        assert c.remote.outbox.frames_sent - before == 2  # one per front node

        # the object closes one; a client closes another; the object sees it
        await sockets[1].send("bye")
        with pytest.raises(WebSocketClosed) as closed:
            await sockets[1].receive()
        assert (closed.value.code, closed.value.reason) == (4001, "asked to")
        await sockets[3].close(1000, "done")
        for _ in range(200):
            if len(_room(c).state.get_websockets()) == 2:
                break
            await _tick()
        assert len(_room(c).state.get_websockets()) == 2

        # the owner's node dies (as the placement reports): its sockets elsewhere get 1012
        for callback in a.placement.dead:
            callback("c4")
        with pytest.raises(WebSocketClosed) as closed:
            await sockets[0].receive()
        assert closed.value.code == 1012


def _room(node: NodeParts) -> Any:
    stub = node.system.namespace("counters").get_by_name("room")
    return node.system.live_instance(stub.id)


async def _tick() -> None:
    await anyio.sleep(0.01)


async def window_filled(inbound: Inbound | None) -> None:
    """Until a whole window of chunks has arrived (the sender must wait for credit)."""
    assert inbound is not None
    for _ in range(300):
        if len(inbound._queue) >= WINDOW:
            break
        await _tick()
    assert len(inbound._queue) == WINDOW


async def test_garbage_on_a_nodes_subject_is_logged_and_dropped(
    nats_server: NatsEngine, caplog: pytest.LogCaptureFixture
) -> None:
    async with cluster(nats_server.url, ["a5", "b5"]) as (table, (a, b)):
        raw = await nats.connect(nats_server.url)
        try:
            with caplog.at_level(logging.WARNING, logger="kitpy.cluster"):
                for junk in (b"", b"hello", b"kp\x01" + b"\x00" * 20, b"kp\xee" + b"\x00" * 13):
                    await raw.publish(a.transport.inbox, junk)
                await raw.flush()
                for _ in range(200):
                    if a.transport.dropped >= 4:
                        break
                    await _tick()
        finally:
            await raw.close()
        assert a.transport.dropped == 4
        lines = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
        assert len(lines) == 4 and all("\n" not in line for line in lines)
        # the node still works
        await b.system.namespace("counters").get_by_name("g").increment()
        assert await a.system.namespace("counters").get_by_name("g").increment() == 2


async def test_an_unreachable_nats_is_one_sentence_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from kitpy.cluster import transport

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(transport, "CONNECT_DEADLINE", 1.0)
    node = Transport(f"nats://127.0.0.1:{port}", "kitpy.none", "lonely")
    with pytest.raises(transport.TransportError) as raised:
        await node.connect(lambda frame, reply: None)
    message = str(raised.value)
    assert message.startswith(f"cannot reach nats://127.0.0.1:{port}: ")
    assert "refused" in message.lower() and "\n" not in message


async def test_a_call_to_an_owner_nobody_listens_for_fails_after_the_retry_window(
    nats_server: NatsEngine,
) -> None:
    async with cluster(nats_server.url, ["a6"]) as (table, (a,)):
        stub = a.system.namespace("counters").get_by_name("orphan")
        table.owners[("counters", str(stub.id))] = "ghost"  # a node that is not connected
        with pytest.raises(OwnerGone, match="no node answered as its owner within 2.5 s"):
            await stub.increment()  # NATS says nobody listens; retried, then given up
        # the owner comes back (here: the table gives it to a6): the next call works
        table.owners[("counters", str(stub.id))] = "a6"
        assert await stub.increment() == 1


def test_node_names_with_dots_become_one_subject_token_each() -> None:
    from kitpy.cluster.transport import subject_token

    assert subject_token("web-1_a") == "web-1_a"
    dotted, underscored = subject_token("web-1.internal"), subject_token("web-1_internal")
    assert dotted.startswith("web-1_internal-") and "." not in dotted
    assert dotted != underscored
    assert Transport("nats://x", "kitpy.p", "a.b").inbox.count(".") == 3


async def test_an_owner_that_loses_its_object_closes_its_sockets_everywhere_with_1012(
    nats_server: NatsEngine,
) -> None:
    async with cluster(nats_server.url, ["a7", "b7"]) as (table, (a, b)):
        await b.system.namespace("counters").get_by_name("lost").increment()  # b owns it
        sockets = []
        for node in (a, b):
            stub = node.system.namespace("counters").get_by_name("lost")
            response = await stub.fetch("/ws", headers={"x-who": node.name})
            assert response.websocket is not None
            sockets.append(response.websocket)
        key = ("counters", str(stub.id))
        for callback in b.placement.lost:  # b's lease ran out: another node may own it
            callback(*key)
        for ws in sockets:
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1012
        assert not b.system.is_live(*key)


async def test_when_nats_drops_a_node_its_bridged_sockets_get_1012() -> None:
    own = NatsEngine.start()  # a NATS server of this test's own, stopped mid-test
    try:
        async with cluster(own.url, ["a8", "b8"]) as (table, (a, b)):
            await b.system.namespace("counters").get_by_name("s").increment()
            response = await a.system.namespace("counters").get_by_name("s").fetch("/ws")
            assert response.websocket is not None
            await response.websocket.send("tags")
            assert await response.websocket.receive() == "all"
            own.stop()
            with pytest.raises(WebSocketClosed) as closed:
                await response.websocket.receive()
            assert closed.value.code == 1012
    finally:
        own.stop()


async def test_a_node_that_restarts_under_its_name_ends_what_others_held_of_it(
    nats_server: NatsEngine,
) -> None:
    from kitpy.cluster.node import run_node

    async with cluster(nats_server.url, ["a9", "b9"]) as (table, (a, b)):
        await b.system.namespace("counters").get_by_name("r").increment()
        response = await a.system.namespace("counters").get_by_name("r").fetch("/ws")
        assert response.websocket is not None
        # b9 "restarts" (a second run under the same name, as after a quick SIGKILL and
        # restart, before its lease ran out): it greets the live nodes
        again = run_node(
            bindings={"counters": Counter},
            env=None,
            backend=MemoryBackend(),
            placement=fake_cluster.FakePlacement(table, "b9"),
            transport=Transport(nats_server.url, a.transport.prefix, "b9"),
            lease_ttl=1.0,
            idle_timeout=30.0,
        )
        async with again:
            with pytest.raises(WebSocketClosed) as closed:
                await response.websocket.receive()
            assert closed.value.code == 1012
