"""handle_connection over an in-memory ByteStream: no sockets, h11/wsproto clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import h11
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, TextMessage
from wsproto.events import Request as WSRequest

from kitpy.http import Request, Response, WebSocketPair
from kitpy.protocol import Limits
from kitpy.server import handle_connection
from kitpy.server.shutdown import ConnectionTracker


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-memory byte pipe."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._receive.receive()

    async def send(self, item: bytes) -> None:
        await self._send.send(item)

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def byte_pipe() -> tuple[MemoryByteStream, MemoryByteStream]:
    a_send, b_receive = anyio.create_memory_object_stream[bytes](100)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](100)
    return MemoryByteStream(a_send, a_receive), MemoryByteStream(b_send, b_receive)


class EchoApp:
    def __init__(self) -> None:
        self.tg: anyio.abc.TaskGroup | None = None

    async def __call__(self, request: Request) -> Response:
        if request.url.path == "/ws":
            client, server = WebSocketPair()
            server.accept()

            async def echo() -> None:
                message = await server.receive()
                await server.send(f"echo {message!s}")
                await server.close(1000, "done")

            assert self.tg is not None
            self.tg.start_soon(echo)
            return Response(status=101, websocket=client)
        body = await request.body()
        return Response(f"{request.method} {request.url.path} {body.decode()} {request.client}")

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            yield
            tg.cancel_scope.cancel()


async def h11_exchange(
    stream: MemoryByteStream, client: h11.Connection, *events: h11.Event
) -> list[h11.Event]:
    for outgoing in events:
        data = client.send(outgoing)
        if data:
            await stream.send(data)
    received: list[h11.Event] = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(await stream.receive())
            continue
        assert not isinstance(event, type)
        received.append(event)
        if isinstance(event, h11.EndOfMessage):
            return received


@pytest.mark.anyio
async def test_requests_over_a_memory_stream() -> None:
    app = EchoApp()
    ours, theirs = byte_pipe()
    async with app.lifespan(), anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: handle_connection(app, theirs, client=("10.0.0.1", 1234), limits=Limits())
        )
        client = h11.Connection(h11.CLIENT)
        for n in range(2):
            body = f"n={n}".encode()
            response, data, _ = await h11_exchange(
                ours,
                client,
                h11.Request(
                    method="POST",
                    target=f"/x{n}",
                    headers=[("Host", "a"), ("Content-Length", str(len(body)))],
                ),
                h11.Data(data=body),
                h11.EndOfMessage(),
            )
            assert isinstance(response, h11.Response) and response.status_code == 200
            assert isinstance(data, h11.Data)
            assert data.data == f"POST /x{n} n={n} ('10.0.0.1', 1234)".encode()
            client.start_next_cycle()
        await ours.send_eof()  # the client goes away: handle_connection returns
    await ours.aclose()


@pytest.mark.anyio
async def test_websocket_over_a_memory_stream() -> None:
    app = EchoApp()
    ours, theirs = byte_pipe()
    async with app.lifespan(), anyio.create_task_group() as tg:
        tg.start_soon(lambda: handle_connection(app, theirs, client=None))
        ws = WSConnection(ConnectionType.CLIENT)
        await ours.send(ws.send(WSRequest(host="a", target="/ws")))
        events: list[object] = []
        sent_message = False
        while not any(isinstance(e, CloseConnection) for e in events):
            ws.receive_data(await ours.receive())
            for event in ws.events():
                events.append(event)
                if isinstance(event, AcceptConnection) and not sent_message:
                    await ours.send(ws.send(TextMessage(data="hi")))
                    sent_message = True
                elif isinstance(event, CloseConnection):
                    await ours.send(ws.send(event.response()))
        assert isinstance(events[0], AcceptConnection)
        assert any(isinstance(e, TextMessage) and e.data == "echo hi" for e in events)
        close = events[-1]
        assert isinstance(close, CloseConnection) and close.code == 1000
    await ours.aclose()


@pytest.mark.anyio
async def test_slowloris_in_memory_is_cut_at_the_header_deadline() -> None:
    app = EchoApp()
    ours, theirs = byte_pipe()
    limits = Limits(header_timeout=0.3, keepalive_timeout=5)
    async with app.lifespan():
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: handle_connection(app, theirs, client=None, limits=limits))
                try:
                    for byte in b"GET / HTTP/1.1\r\nHost: a\r\n" * 20:
                        await ours.send(bytes([byte]))
                        await anyio.sleep(0.01)
                except anyio.BrokenResourceError:
                    pass  # the server closed its side: the trickle was cut off
                else:
                    raise AssertionError("the trickle was never cut off")
    await ours.aclose()


async def _read_response(stream: MemoryByteStream) -> bytes:
    data = b""
    with anyio.fail_after(10):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return data


@pytest.mark.anyio
async def test_a_fresh_connection_is_answered_through_a_shutdown() -> None:
    """Accepted just before the shutdown, its request still on the way: it is answered."""
    app = EchoApp()
    tracker = ConnectionTracker()
    ours, theirs = byte_pipe()
    async with app.lifespan(), anyio.create_task_group() as tg:
        tg.start_soon(lambda: handle_connection(app, theirs, client=None, tracker=tracker))
        while not len(tracker):
            await anyio.sleep(0)
        tracker.begin_shutdown()
        await ours.send(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = await _read_response(ours)
    await ours.aclose()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in answer.lower()
    assert answer.endswith(b"GET /late  None")


@pytest.mark.anyio
async def test_an_idle_keepalive_connection_closes_at_once_on_shutdown() -> None:
    app = EchoApp()
    tracker = ConnectionTracker()
    ours, theirs = byte_pipe()
    async with app.lifespan(), anyio.create_task_group() as tg:
        tg.start_soon(lambda: handle_connection(app, theirs, client=None, tracker=tracker))
        await ours.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        with anyio.fail_after(10):
            first = await ours.receive()
        assert first.startswith(b"HTTP/1.1 200 ")
        tracker.begin_shutdown()
        assert await _read_response(ours) == b""  # closed, no grace: it was served before
    await ours.aclose()
