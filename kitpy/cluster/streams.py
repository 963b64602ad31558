"""Bounded, flow-controlled streams of body chunks between two nodes.

An HTTP body larger than one frame travels as CHUNK frames. The receiver grants
*credit*: the sender may have at most ``WINDOW`` chunks sent and not yet taken by the
receiving code, so neither side ever holds more than ``WINDOW * CHUNK_SIZE`` bytes of
one body, whatever its size. A side that stops (a client went away, an error) sends
CANCEL and the other side's stream ends with :class:`StreamBroken`. A sender kept
waiting for credit probes the receiver every :data:`PROBE_INTERVAL` seconds (an empty
CHUNK); a receiver that no longer has the stream answers CANCEL.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

import anyio

from kitpy.cluster.transport import CHUNK_SIZE

__all__ = ("WINDOW", "Inbound", "Outbound", "StreamBroken", "peek", "rechunk")

#: Chunks one stream may have in flight (sent, not yet taken by the receiver).
WINDOW = 8
#: Seconds a sender waits for credit, or a receiver for a chunk, before giving up.
STALL_TIMEOUT = 60.0
#: Seconds a sender waits for credit before it asks the receiver whether it still
#: reads (a probe), and between probes: a receiver that forgot the stream answers with
#: CANCEL, so even a lost CANCEL holds a sender this long only.
PROBE_INTERVAL = 5.0


class StreamBroken(Exception):
    """The other side of a stream cancelled it, died, or stalled."""


class Inbound:
    """Chunks arriving for one body; iterate with :meth:`chunks`.

    ``grant(n)`` is called to hand credit back to the sender as chunks are taken.
    """

    __slots__ = ("_broken", "_done", "_grant", "_queue", "_taken", "_waiter")

    def __init__(self, grant: Callable[[int], None]) -> None:
        self._grant = grant
        self._queue: deque[bytes] = deque()
        self._done = False
        self._broken: str | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._taken = 0

    @property
    def finished(self) -> bool:
        return self._done and not self._queue

    def push(self, chunk: bytes, end: bool) -> None:
        if self._done:
            return
        if chunk:
            self._queue.append(chunk)
        self._done = end
        self._wake()

    def break_(self, reason: str) -> None:
        if not self._done:
            self._broken = reason
            self._done = True
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            while not self._queue:
                if self._done:
                    if self._broken is not None:
                        raise StreamBroken(self._broken)
                    return
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await asyncio.wait_for(self._waiter, STALL_TIMEOUT)
                except TimeoutError:
                    raise StreamBroken("no chunk for 60 s") from None
                finally:
                    self._waiter = None
            chunk = self._queue.popleft()
            self._taken += 1
            if self._taken >= WINDOW // 2:  # hand credit back in batches
                self._grant(self._taken)
                self._taken = 0
            yield chunk


class Outbound:
    """The sending side's credit for one body.

    :meth:`break_` (the receiver's CANCEL, its node gone) stops :meth:`send_all`
    wherever it waits: for credit, for NATS, or for the next chunk of the body's
    source (a stream that produces slowly is not waited for). While it waits for
    credit, ``probe()`` is called every :data:`PROBE_INTERVAL` seconds.
    """

    __slots__ = ("_broken", "_credit", "_probe", "_scope", "_waiter")

    def __init__(self, credit: int = 0, probe: Callable[[], None] | None = None) -> None:
        self._probe = probe
        self._credit = credit
        self._broken: str | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._scope: anyio.CancelScope | None = None

    def grant(self, n: int) -> None:
        self._credit += n
        self._wake()

    def break_(self, reason: str) -> None:
        if self._broken is None:
            self._broken = reason
        self._wake()
        if self._scope is not None:
            self._scope.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send_all(
        self, chunks: AsyncIterator[bytes], send: Callable[[bytes, bool], Awaitable[None]]
    ) -> None:
        """Send every chunk with ``send(chunk, end)`` as credit allows; the last has end.

        Raises:
            StreamBroken: the stream was broken (or stalled) before its end was sent.
        """
        if self._broken is not None:
            raise StreamBroken(self._broken)
        scope = self._scope = anyio.CancelScope()
        try:
            with scope:
                await self._send_each(chunks, send)
        finally:
            self._scope = None
        if scope.cancelled_caught:
            raise StreamBroken(self._broken or "stopped")

    async def _send_each(
        self, chunks: AsyncIterator[bytes], send: Callable[[bytes, bool], Awaitable[None]]
    ) -> None:
        pending = await anext(chunks, None)
        while pending is not None:
            following = await anext(chunks, None)
            if self._credit <= 0:
                await self._wait_for_credit()
            if self._broken is not None:
                raise StreamBroken(self._broken)
            self._credit -= 1
            await send(pending, following is None)
            pending = following

    async def _wait_for_credit(self) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + STALL_TIMEOUT
        while self._credit <= 0:
            if self._broken is not None:
                raise StreamBroken(self._broken)
            left = give_up - loop.time()
            if left <= 0:
                raise StreamBroken(f"no credit for {STALL_TIMEOUT:g} s")
            self._waiter = loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, min(PROBE_INTERVAL, left))
            except TimeoutError:
                if self._probe is not None and self._broken is None:
                    self._probe()
            finally:
                self._waiter = None


async def rechunk(source: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    """The bytes of ``source`` in chunks of at most ``CHUNK_SIZE`` (small pieces joined).

    A large piece is cut in place (memoryview slices), never copied whole.
    """
    buffer = bytearray()
    if isinstance(source, AsyncIterable):
        async for piece in source:
            for chunk in _cut(buffer, piece):
                yield chunk
    else:
        for piece in source:
            for chunk in _cut(buffer, piece):
                yield chunk
    if buffer:
        yield bytes(buffer)


def _cut(buffer: bytearray, piece: bytes) -> Iterable[bytes]:
    view = memoryview(piece)
    if buffer:
        take = CHUNK_SIZE - len(buffer)
        buffer += view[:take]
        view = view[take:]
        if len(buffer) < CHUNK_SIZE:
            return
        yield bytes(buffer)
        buffer.clear()
    while len(view) >= CHUNK_SIZE:
        yield bytes(view[:CHUNK_SIZE])
        view = view[CHUNK_SIZE:]
    buffer += view


async def peek(chunks: AsyncIterator[bytes]) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """The first chunk, and an iterator of the rest if there is a rest (None if not)."""
    first = await anext(chunks, b"")
    second = await anext(chunks, None)
    if second is None:
        return first, None

    async def rest() -> AsyncIterator[bytes]:
        yield second
        async for chunk in chunks:
            yield chunk

    return first, rest()
