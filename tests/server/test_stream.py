"""kitpy.server.stream.FastStream: the asyncio socket stream behaves as anyio's does."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from kitpy.server.stream import YIELD_EVERY, FastStream, accept_fast


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[FastStream, socket.socket]]:
    """A FastStream accepted from a loopback listener, and the client's socket."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    [inner] = listener.listeners
    assert isinstance(inner, anyio.abc.SocketListener)
    port = inner.extra(anyio.abc.SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    client.setblocking(False)
    try:
        [stream] = await accept_fast(inner)
        try:
            yield stream, client
        finally:
            await stream.aclose()
    finally:
        client.close()
        await inner.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_receive_send_eof_and_close(anyio_backend: str) -> None:
    async with connected() as (stream, client):
        assert stream.extra(anyio.abc.SocketAttribute.remote_address) == client.getsockname()
        client.send(b"hello")
        assert await stream.receive(3) == b"hel"
        assert await stream.receive() == b"lo"
        await stream.send(b"world")
        await anyio.wait_readable(client)
        assert client.recv(100) == b"world"
        client.shutdown(socket.SHUT_WR)
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.send_eof()
        await anyio.wait_readable(client)
        assert client.recv(100) == b""
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_send_waits_for_a_slow_reader_and_cancels(anyio_backend: str) -> None:
    async with connected() as (stream, client):
        chunk = b"x" * 65536
        with anyio.move_on_after(0.5) as scope:
            while True:  # the client never reads: the kernel buffers fill, send waits
                await stream.send(chunk)
        assert scope.cancelled_caught


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_busy_sender_yields_to_other_tasks(anyio_backend: str) -> None:
    ticks = 0

    async def other() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0)

    async with connected() as (stream, client):
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            await anyio.sleep(0)
            for _ in range(YIELD_EVERY * 4):
                await stream.send(b"x")
            tg.cancel_scope.cancel()
        assert ticks >= 4


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_accepts_waiting_connections_in_one_batch(anyio_backend: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    [inner] = listener.listeners
    assert isinstance(inner, anyio.abc.SocketListener)
    port = inner.extra(anyio.abc.SocketAttribute.local_port)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    streams: list[FastStream] = []
    try:
        await anyio.sleep(0.05)
        streams = await accept_fast(inner, 3)
        assert len(streams) == 3
        streams += await accept_fast(inner, 10)
        assert len(streams) == 5
    finally:
        for client in clients:
            client.close()
        for stream in streams:
            await stream.aclose()
        await listener.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_start_send_writes_at_once_or_hands_back_the_wait(anyio_backend: str) -> None:
    async with connected() as (stream, client):
        assert stream.start_send(b"hello") is None  # the kernel took it: nothing to await
        await anyio.wait_readable(client)
        assert client.recv(100) == b"hello"
        chunk = b"x" * 65536
        rest = None
        for _ in range(1000):  # the client does not read: soon a write is left over
            rest = stream.start_send(chunk)
            if rest is not None:
                break
        assert rest is not None
        with anyio.move_on_after(0.3) as scope:
            await rest  # waits for the kernel to take the rest, as send() would
        assert scope.cancelled_caught
        assert stream.backed_up
        pending = stream.start_send(b"more")  # backed up: the whole send() is handed back
        assert pending is not None
        pending.close()
        client.close()
        with pytest.raises(anyio.BrokenResourceError):
            for _ in range(100):
                rest = stream.start_send(chunk)
                if rest is not None:
                    await rest
                await anyio.sleep(0.01)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_start_send_yields_as_often_as_send(anyio_backend: str) -> None:
    async with connected() as (stream, client):
        handed_back = 0
        for _ in range(YIELD_EVERY * 3):
            rest = stream.start_send(b"x")
            if rest is not None:
                handed_back += 1
                await rest  # the yield send() makes every YIELD_EVERY calls
        assert handed_back == 3
