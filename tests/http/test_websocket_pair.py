from __future__ import annotations

import anyio
import pytest

from kitpy import WebSocketClosed, WebSocketPair

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


async def test_on_close_fires_at_once_and_attachments_round_trip() -> None:
    client, server = WebSocketPair()
    server.accept()
    seen: list[int | None] = []
    server.on_close(lambda ws: seen.append(ws.close_code))
    server.serialize_attachment({"name": "ann"})
    assert server.deserialize_attachment() == {"name": "ann"}
    with pytest.raises(TypeError):
        server.serialize_attachment(object())
    with pytest.raises(TypeError, match="JSON"):
        server.serialize_attachment({"x": float("nan")})
    client.close_now(1006)
    assert server.closed and seen == [None]
