from __future__ import annotations

from collections.abc import Awaitable

import anyio
import pytest

from kitpy import WebSocketClosed, WebSocketPair
from kitpy.http import WebSocket, WebSocketDriver

pytestmark = pytest.mark.anyio


async def test_messages_flow_both_ways_and_close_reaches_the_peer() -> None:
    client, server = WebSocketPair()
    server.accept()
    await client.send("hi")
    await client.send(b"\x00\x01")
    assert await server.receive() == "hi"
    assert await server.receive() == b"\x00\x01"
    await server.send("back")
    assert await client.receive() == "back"
    await server.close(4000, "bye")
    assert client.closed
    with pytest.raises(WebSocketClosed) as info:
        await client.receive()
    assert (info.value.code, info.value.reason) == (4000, "bye")
    assert client.close_code == 4000 and server.close_code == 4000


async def test_iteration_ends_at_close_after_queued_messages() -> None:
    client, server = WebSocketPair()
    server.accept()
    for i in range(3):
        await client.send(str(i))
    await client.close()
    assert [m async for m in server] == ["0", "1", "2"]
    assert server.close_code == 1000


async def test_receive_waits_for_a_message() -> None:
    client, server = WebSocketPair()
    server.accept()
    got: list[str | bytes] = []

    async def reader() -> None:
        got.append(await server.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.sleep(0.01)
        await client.send("late")
    assert got == ["late"]


async def test_slow_reader_is_closed_with_1008_instead_of_growing() -> None:
    client, server = WebSocketPair()
    server.accept()
    client.max_buffered_bytes = 1000
    for _ in range(10):
        await server.send("x" * 100)
    assert not server.closed
    await server.send("y")
    assert server.closed and server.close_code == 1008
    with pytest.raises(WebSocketClosed):
        await client.receive()


async def test_receive_before_accept_and_bad_close_code_are_refused() -> None:
    _client, server = WebSocketPair()
    with pytest.raises(RuntimeError, match="accept"):
        await server.receive()
    with pytest.raises(ValueError, match="close code"):
        await server.close(1005)


class Recorder(WebSocketDriver):
    """A driver that records what it is told and takes what ``taking`` says."""

    def __init__(self, taking: bool = False) -> None:
        self.taking = taking
        self.seen: list[object] = []

    def take(self, ws: WebSocket, message: str | bytes) -> bool:
        if self.taking:
            self.seen.append(("take", message))
        return self.taking

    def ready(self, ws: WebSocket) -> None:
        self.seen.append("ready")

    def closed(self, ws: WebSocket) -> None:
        self.seen.append(("closed", ws.close_code))


async def test_the_driver_hears_of_the_close_at_once_and_once() -> None:
    client, server = WebSocketPair()
    server.accept()
    driver = Recorder()
    server.attach(driver)
    client.close_now(1006)
    assert server.closed and driver.seen == ["ready", ("closed", None)]
    with pytest.raises(WebSocketClosed):
        await server.receive()
    await server.close()  # already closed by the peer: no second notice
    assert driver.seen == ["ready", ("closed", None)]
    late = Recorder()
    client.detach()
    client.attach(late)  # an end attached after its close hears of it at once
    assert late.seen == [("closed", 1006)]
    with pytest.raises(RuntimeError, match="driver"):
        client.attach(Recorder())


async def test_a_driver_takes_messages_only_while_nothing_is_queued() -> None:
    client, server = WebSocketPair()
    server.accept()
    driver = Recorder(taking=True)
    client.attach(driver)
    await server.send("a")
    assert driver.seen == [("take", "a")] and client.receive_nowait() is None
    driver.taking = False
    await server.send("b")  # queued: the driver is told it is ready
    driver.taking = True
    await server.send("c")  # "b" is queued, so "c" may not overtake it
    assert driver.seen == [("take", "a"), "ready", "ready"]
    assert client.receive_nowait() == "b" and client.receive_nowait() == "c"


async def test_send_awaits_the_drivers_output_gate() -> None:
    client, server = WebSocketPair()
    server.accept()
    flushed: list[str] = []

    class Gated(WebSocketDriver):
        def before_send(self, ws: WebSocket) -> Awaitable[None] | None:
            return flush() if not flushed else None

    async def flush() -> None:
        flushed.append("flush")

    server.attach(Gated())
    await server.send("one")
    await server.send("two")
    assert flushed == ["flush"]
    assert client.receive_nowait() == "one" and client.receive_nowait() == "two"


async def test_attachments_round_trip() -> None:
    client, server = WebSocketPair()
    server.accept()
    server.serialize_attachment({"name": "ann"})
    assert server.deserialize_attachment() == {"name": "ann"}
    with pytest.raises(TypeError):
        server.serialize_attachment(object())
    with pytest.raises(TypeError, match="JSON"):
        server.serialize_attachment({"x": float("nan")})
    assert server.deserialize_attachment() == {"name": "ann"}


async def test_send_after_the_peer_closed_raises_the_code_exchanged() -> None:
    """Before the close is read from the inbox, send() already names its code."""
    client, server = WebSocketPair()
    server.accept()
    client.close_now(1002, "protocol error")
    assert server.closed and server.close_code is None  # not read yet
    with pytest.raises(WebSocketClosed) as info:
        await server.send("late")
    assert (info.value.code, info.value.reason) == (1002, "protocol error")


async def test_a_backlog_is_bounded_but_one_large_message_is_not() -> None:
    client, server = WebSocketPair()
    server.accept()
    client.bound_buffers(1000)
    await server.send("x" * 5000)  # nothing queued: accepted whole
    assert not client.closed
    await server.send("y")  # queued behind 5000 bytes: past the bound
    assert client.closed and client.close_code is None
    assert server.close_code == 1008
