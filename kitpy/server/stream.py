"""A socket stream for asyncio without anyio's per-call overhead.

anyio's asyncio ``SocketStream`` pauses reading after every ``receive`` and resumes it
before the next one (an ``epoll_ctl`` pair per request), and ends every ``send`` with
a checkpoint: a cancel scope entered and left and one more event-loop turn per write,
200 turns to broadcast one message to 200 sockets. :class:`FastStream` keeps reading
on (pausing only when unread data piles up) and returns from ``send`` at once when
the kernel took every byte. Backpressure is as exact as anyio's: when a write leaves
bytes unsent, ``send`` waits until they are gone.

The connection loop is still written against :class:`anyio.abc.ByteStream`; this is
one implementation of it, used by :mod:`kitpy.server.serve` on asyncio (and uvloop).
Trio keeps anyio's own streams. Cancellation works as for any asyncio await: anyio's
cancel scopes cancel the task while it waits here. Calls that do not need to wait
are no checkpoint; :data:`YIELD_EVERY` of them in a row yield once, so one busy
connection cannot starve the others.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, cast

import anyio
import anyio.abc

__all__ = ("YIELD_EVERY", "FastStream", "accept_fast", "running_asyncio")

#: Unread bytes at which reading pauses (and resumes once below half of it).
READ_HIGH_WATER = 256 * 1024
#: Calls to ``receive``/``send`` in a row that did not wait, before one yields.
YIELD_EVERY = 64


#: What ``_Protocol.chunks`` is while nothing is unread (maxlen=0): an idle connection
#: (a WebSocket, mostly) holds no deque of its own.
_NO_CHUNKS: deque[bytes] = deque(maxlen=0)


class _Protocol(asyncio.Protocol):
    __slots__ = (
        "chunks",
        "eof",
        "exception",
        "lost",
        "on_drained",
        "read_paused",
        "reader",
        "size",
        "transport",
        "write_paused",
        "writer",
    )

    def __init__(self) -> None:
        self.chunks: deque[bytes] = _NO_CHUNKS
        self.size = 0
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.eof = False
        self.lost = False
        self.exception: BaseException | None = None
        self.read_paused = False
        self.write_paused = False
        self.on_drained: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        # Wait in send() whenever the kernel did not take everything (as anyio does).
        self.transport.set_write_buffer_limits(0)

    def data_received(self, data: bytes) -> None:
        chunks = self.chunks
        if chunks is _NO_CHUNKS:
            self.chunks = chunks = deque()
        chunks.append(data if type(data) is bytes else bytes(data))
        self.size += len(data)
        if self.size > READ_HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        reader = self.reader  # _wake(self.reader), inline: once per request
        if reader is not None and not reader.done():
            reader.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.reader)
        return True  # keep the transport open: we may still write (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.exception = exc
        _wake(self.reader)
        _wake(self.writer)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self.writer)
        if self.on_drained is not None:
            self.on_drained()


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class FastStream(anyio.abc.SocketStream):
    """A connected TCP socket as an :class:`anyio.abc.SocketStream` (asyncio only)."""

    __slots__ = ("_closed", "_loop", "_protocol", "_run", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._run = 0

    @property
    def _raw_socket(self) -> socket.socket:
        sock: socket.socket = self._transport.get_extra_info("socket")
        return sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        protocol = self._protocol
        if not protocol.chunks:
            if protocol.reader is not None:
                raise anyio.BusyResourceError("reading from")
            while not protocol.chunks:
                if self._closed:
                    raise anyio.ClosedResourceError
                if protocol.lost or protocol.eof:
                    if protocol.exception is not None:
                        raise anyio.BrokenResourceError from protocol.exception
                    raise anyio.EndOfStream
                waiter: asyncio.Future[None] = self._loop.create_future()
                protocol.reader = waiter
                try:
                    await waiter
                finally:
                    protocol.reader = None
            self._run = 0
        else:
            self._run += 1
            if self._run >= YIELD_EVERY:
                self._run = 0
                await asyncio.sleep(0)
        chunk = protocol.chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            protocol.chunks.appendleft(rest)
        elif not protocol.chunks:
            protocol.chunks = _NO_CHUNKS
        protocol.size -= len(chunk)
        if protocol.read_paused and protocol.size <= READ_HIGH_WATER // 2:
            protocol.read_paused = False
            if not protocol.lost:
                self._transport.resume_reading()
        return chunk

    async def _drain(self) -> None:
        protocol = self._protocol
        if protocol.writer is not None:
            raise anyio.BusyResourceError("writing to")
        while protocol.write_paused and not protocol.lost:
            waiter: asyncio.Future[None] = self._loop.create_future()
            protocol.writer = waiter
            try:
                await waiter
            finally:
                protocol.writer = None
        self._run = 0

    def _check_writable(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        protocol = self._protocol
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from protocol.exception

    async def send(self, item: bytes) -> None:
        protocol = self._protocol
        if self._closed or protocol.lost or self._transport.is_closing():
            self._check_writable()  # raises the right error
        if protocol.write_paused:
            await self._drain()
            self._check_writable()
        try:
            self._transport.write(item)
        except RuntimeError as exc:
            raise anyio.BrokenResourceError from exc
        if protocol.write_paused:
            await self._drained()
        else:
            self._run += 1
            if self._run >= YIELD_EVERY:
                self._run = 0
                await asyncio.sleep(0)

    def start_send(self, item: bytes) -> Coroutine[Any, Any, None] | None:
        """:meth:`send` without a coroutine when it would not wait: None once done.

        Otherwise the coroutine to await for the rest (the whole send, or the wait for
        the kernel to take what this write left over): awaiting it completes exactly
        what ``await send(item)`` does. Raises what :meth:`send` raises.
        """
        protocol = self._protocol
        if (
            self._closed
            or protocol.lost
            or protocol.write_paused
            or self._run >= YIELD_EVERY - 1
            or self._transport.is_closing()
        ):
            return self.send(item)
        try:
            self._transport.write(item)
        except RuntimeError as exc:
            raise anyio.BrokenResourceError from exc
        self._run += 1
        if protocol.write_paused:
            return self._drained()
        return None

    async def _drained(self) -> None:
        """What :meth:`send` does after a write that left bytes unsent."""
        await self._drain()
        self._check_writable()

    @property
    def backed_up(self) -> bool:
        """True while the kernel has not taken every byte written so far."""
        return self._protocol.write_paused

    def set_drain_callback(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback()`` each time the kernel has taken every byte after a backlog."""
        self._protocol.on_drained = callback

    def write_nowait(self, data: bytes) -> bool:
        """Hand ``data`` to the transport at once; False (nothing written) once broken.

        Never waits, so it does not apply backpressure itself: callers check
        :attr:`backed_up` first, or write only small frames (a keepalive ping).
        """
        protocol = self._protocol
        if self._closed or protocol.lost or self._transport.is_closing():
            return False
        try:
            self._transport.write(data)
        except RuntimeError:
            return False
        return True

    async def send_eof(self) -> None:
        try:
            self._transport.write_eof()
        except (OSError, RuntimeError):
            pass

    async def aclose(self) -> None:
        self._closed = True
        self._transport.abort()
        _wake(self._protocol.reader)
        _wake(self._protocol.writer)

    @property
    def extra_attributes(self) -> Any:
        attributes: dict[Any, Any] = dict(super().extra_attributes)
        peer = self._transport.get_extra_info("peername")
        if peer is not None:
            # Known even after the peer went away, unlike getpeername().
            attributes[anyio.abc.SocketAttribute.remote_address] = lambda: peer
        return attributes


def running_asyncio() -> bool:
    """True inside a running asyncio event loop (False under Trio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def accept_fast(listener: anyio.abc.SocketListener, limit: int = 1) -> list[FastStream]:
    """Accept connections from ``listener``'s socket as :class:`FastStream` objects.

    Waits for one, then takes up to ``limit - 1`` more that are already waiting, as
    asyncio's own servers do: accepting one per event-loop turn while the accepted
    connections keep the loop busy leaves new clients waiting in the backlog for a
    turn each (hundreds of milliseconds for the last of 64 under load).

    Raises:
        anyio.ClosedResourceError: the listener was closed.
        OSError: ``accept()`` failed (EMFILE...).
    """
    sock = listener.extra(anyio.abc.SocketAttribute.raw_socket)
    loop = asyncio.get_running_loop()
    # accept() itself never awaits, so a cancellation (the server stopping) can only
    # land while nothing is accepted yet: a cancelled loop.sock_accept() may already
    # have taken a connection from the kernel and would drop it (a reset client).
    while True:
        if sock.fileno() == -1:
            raise anyio.ClosedResourceError
        try:
            client, _ = sock.accept()
        except BlockingIOError:
            await anyio.wait_readable(sock)
            continue
        except OSError:
            if sock.fileno() == -1:
                raise anyio.ClosedResourceError from None
            raise
        break
    clients = [client]
    while len(clients) < limit:
        try:
            more, _ = sock.accept()
        except OSError:  # BlockingIOError: none waiting; EMFILE...: next time
            break
        clients.append(more)
    # Accepted connections are handed over whole, even when the server is stopping.
    with anyio.CancelScope(shield=True):
        streams = await _wrap_accepted(loop, clients)
    return streams


async def _wrap_accepted(
    loop: asyncio.AbstractEventLoop, clients: list[socket.socket]
) -> list[FastStream]:
    """The accepted sockets as streams (any that was reset meanwhile is left out)."""
    streams: list[FastStream] = []
    try:
        while clients:
            client = clients.pop(0)
            try:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                transport, protocol = await loop.connect_accepted_socket(_Protocol, client)
            except OSError:  # reset before we got to it
                client.close()
                continue
            streams.append(FastStream(transport, protocol))
    except BaseException:
        for client in clients:
            client.close()
        for stream in streams:
            stream._transport.abort()
        raise
    return streams
