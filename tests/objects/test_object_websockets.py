"""The article's room: accepted WebSockets, tags, broadcast, close, attachments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import RunObjects, Until

from kitpy import DurableObject, Request, Response, WebSocket, WebSocketClosed, WebSocketPair
from kitpy.objects import ObjectSystem
from kitpy.storage import SqliteBackend

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Room(DurableObject):
    async def fetch(self, request: Request) -> Response:
        name = request.url.query["name"]
        client, server = WebSocketPair()
        self.state.accept_websocket(server, tags=["chat", f"user:{name}"])
        server.serialize_attachment({"name": name})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        name = ws.deserialize_attachment()["name"]
        if message == "boom":
            raise RuntimeError(f"{name} broke it")
        if message == "count":
            await ws.send(str(len(self.state.get_websockets())))
            return
        for peer in self.state.get_websockets("chat"):
            await peer.send(f"{name}: {message!s}")

    async def websocket_close(self, ws: WebSocket, code: int, reason: str) -> None:
        name = ws.deserialize_attachment()["name"]
        self.closes.append((name, code, reason))
        for peer in self.state.get_websockets("chat"):
            await peer.send(f"{name} left")

    async def websocket_error(self, ws: WebSocket, error: Exception) -> None:
        self.errors.append(str(error))
        await ws.send("sorry")

    def __init__(self, state: Any, env: Any) -> None:
        super().__init__(state, env)
        self.closes: list[tuple[str, int, str]] = []
        self.errors: list[str] = []


async def join(system: ObjectSystem, name: str, room: str = "lobby") -> WebSocket:
    rooms = system.namespace("rooms")
    response = await rooms.get(rooms.id_from_name(room)).fetch(f"/websocket?name={name}")
    assert response.status == 101 and response.websocket is not None
    return response.websocket


def room_of(system: ObjectSystem, room: str = "lobby") -> Room:
    instance = system.live_instance(system.namespace("rooms").id_from_name(room))
    assert isinstance(instance, Room)
    return instance


async def test_messages_are_broadcast_to_every_tagged_socket(run_objects: RunObjects) -> None:
    async with run_objects({"rooms": Room}) as system:
        alice, bob = await join(system, "alice"), await join(system, "bob")
        with anyio.fail_after(5):
            await alice.send("hi")
            assert await alice.receive() == "alice: hi"
            assert await bob.receive() == "alice: hi"
            await bob.send(b"bytes")
            assert await alice.receive() == "bob: b'bytes'"
        state = room_of(system).state
        assert [ws.deserialize_attachment()["name"] for ws in state.get_websockets()] == [
            "alice",
            "bob",
        ]
        (only_bob,) = state.get_websockets("user:bob")
        assert state.get_tags(only_bob) == ["chat", "user:bob"]
        assert state.get_websockets("nobody") == []


@pytest.mark.one_process
async def test_a_closed_socket_leaves_at_once_and_websocket_close_runs(
    run_objects: RunObjects, until: Until
) -> None:
    async with run_objects({"rooms": Room}) as system:
        alice, bob = await join(system, "alice"), await join(system, "bob")
        state = room_of(system).state
        await bob.close(4001, "gone")
        # No await between: the close is seen by get_websockets immediately.
        assert len(state.get_websockets()) == 1
        with anyio.fail_after(5):
            assert await alice.receive() == "bob left"
        await until(lambda: room_of(system).closes == [("bob", 4001, "gone")])


async def test_queued_messages_are_delivered_before_the_close(run_objects: RunObjects) -> None:
    async with run_objects({"rooms": Room}) as system:
        alice, bob = await join(system, "alice"), await join(system, "bob")
        await bob.send("one")
        await bob.send("two")
        await bob.close()
        with anyio.fail_after(5):
            assert [await alice.receive() for _ in range(3)] == [
                "bob: one",
                "bob: two",
                "bob left",
            ]


async def test_a_raising_handler_does_not_kill_the_socket_or_its_siblings(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"rooms": Room}) as system:
        alice, bob = await join(system, "alice"), await join(system, "bob")
        with anyio.fail_after(5):
            await alice.send("boom")
            assert await alice.receive() == "sorry"
            await alice.send("still here")
            assert await alice.receive() == "alice: still here"
            assert await bob.receive() == "alice: still here"
        assert room_of(system).errors == ["alice broke it"]
        assert not alice.closed and not bob.closed


async def test_default_websocket_error_logs_and_keeps_going(
    run_objects: RunObjects, caplog: pytest.LogCaptureFixture
) -> None:
    class Plain(DurableObject):
        async def fetch(self, request: Request) -> Response:
            client, server = WebSocketPair()
            self.state.accept_websocket(server)
            return Response(status=101, websocket=client)

        async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
            if message == "boom":
                raise ValueError("bad message")
            await ws.send(message)

    async with run_objects({"rooms": Plain}) as system:
        ws = await join(system, "x")
        with anyio.fail_after(5):
            await ws.send("boom")
            await ws.send("echo")
            assert await ws.receive() == "echo"
        assert "a WebSocket handler raised" in caplog.text
        assert "bad message" in caplog.text


async def test_a_slow_reader_is_dropped_without_stalling_the_broadcast(
    run_objects: RunObjects, until: Until
) -> None:
    async with run_objects({"rooms": Room}) as system:
        slow = await join(system, "slow")
        slow.max_buffered_bytes = 200  # it never reads: its inbox fills up
        fast = await join(system, "fast")
        got: list[str | bytes] = []
        with anyio.fail_after(5):
            for i in range(50):
                await fast.send(f"message {i:02}")
            while len(got) < 51:
                got.append(await fast.receive())
        assert [m for m in got if m != "slow left"] == [f"fast: message {i:02}" for i in range(50)]
        assert slow.closed
        await until(
            lambda: ("slow", 1008, "send queue full: reader too slow") in room_of(system).closes
        )
        assert [
            ws.deserialize_attachment()["name"] for ws in room_of(system).state.get_websockets()
        ] == ["fast"]


async def test_accept_websocket_checks_its_arguments(run_objects: RunObjects) -> None:
    async with run_objects({"rooms": Room}) as system:
        await join(system, "x")
        state = room_of(system).state
        _, server = WebSocketPair()
        with pytest.raises(TypeError, match=r"use tags=\['chat'\]"):
            state.accept_websocket(server, tags="chat")
        with pytest.raises(ValueError, match="at most 10 tags"):
            state.accept_websocket(server, tags=[str(i) for i in range(11)])
        state.accept_websocket(server)
        with pytest.raises(ValueError, match="already accepted"):
            state.accept_websocket(server)
        _, closed = WebSocketPair()
        closed.close_now(1000)
        with pytest.raises(RuntimeError, match="already closed"):
            state.accept_websocket(closed)


async def test_a_message_leaves_only_after_the_write_it_acknowledges_is_durable(
    run_objects: RunObjects, tmp_path: Path
) -> None:
    class Log(DurableObject):
        async def fetch(self, request: Request) -> Response:
            client, server = WebSocketPair()
            self.state.accept_websocket(server)
            return Response(status=101, websocket=client)

        async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
            self.state.storage.put("last", message)  # not awaited
            await ws.send("saved")

    path = tmp_path / "db.sqlite3"
    async with run_objects({"rooms": Log}, backend=SqliteBackend(path)) as system:
        ws = await join(system, "x")
        with anyio.fail_after(5):
            await ws.send("hello")
            assert await ws.receive() == "saved"
        other = SqliteBackend(path)
        try:
            object_id = str(system.namespace("rooms").id_from_name("lobby"))
            assert await other.storage("rooms", object_id).get("last") == "hello"
        finally:
            await other.aclose()


async def test_shutdown_closes_accepted_sockets_with_1001(run_objects: RunObjects) -> None:
    async with run_objects({"rooms": Room}) as system:
        ws = await join(system, "x")
    assert ws.closed
    with pytest.raises(WebSocketClosed) as info:
        await ws.receive()
    assert info.value.code == 1001
