"""Drive an upgraded connection: the wire on one side, the app's WebSocket end on the other.

The application returned ``Response(status=101, websocket=client_end)``; the server
owns ``client_end`` from then on. Three tasks share the connection:

* the reader feeds wire bytes to :class:`WebSocketConnection` and hands each whole
  message to ``client_end.send_nowait`` (it lands in the application's inbox);
* the writer takes what the application sent from ``client_end.receive()`` and
  frames it onto the wire;
* the keepalive pings every ``ws_ping_interval`` and declares the client gone when
  a pong does not come within ``ws_ping_timeout``.

Memory stays bounded: the application's messages queue in ``client_end``'s inbox,
whose ``max_buffered_bytes`` is ``ws_max_queue_bytes``. When the client reads too
slowly the writer blocks on the socket, the inbox fills, and the pair closes itself
(1008) instead of growing. The other way round likewise: the client's messages queue
in the application's end, bounded by ``ws_max_queue_bytes`` too, and an application
that does not read them gets the pair closed (1008) once they pass it.

Closing: whoever closes first, the other side learns the code. A close frame from
the client closes the end with the client's code; the application closing its end
sends a close frame with its code and waits (at most ``ws_ping_timeout``) for the
client's answer; a client that vanishes (EOF, reset, no pong) closes the end with
1006. Once the end is closed, by anyone, the session has ``ws_ping_timeout`` left
to finish the handshake before the connection is dropped.

On asyncio (:class:`~kitpy.server.stream.FastStream`) the connection's own task is
the reader and nothing else waits: writes to an asyncio transport never block (they
only buffer), so

* a message the application sends while nothing is queued and the socket is not
  backed up is framed and written at once by the sending task (``end.set_sink``);
* otherwise it queues in ``client_end`` as above, and is written by a callback: the
  end's listener (``end.set_listener``) and the stream's drain callback write the
  queue, batched, whenever the socket takes more -- a slow client still fills the
  queue and gets 1008;
* the keepalive is a deadline on the loop's one shared timer
  (:mod:`kitpy.server.deadlines`), re-added at the protocol's next deadline; its
  (small) ping goes straight to the transport, and an unanswered ping still ends
  the connection after ``ws_ping_timeout``.

Whole frames handed to the transport cannot split one another, so control frames
from the reader may go between them. Trio keeps the three tasks.
"""

from __future__ import annotations

import math

import anyio
import anyio.abc

from kitpy.http.websocket import WebSocket, WebSocketClosed, WebSocketState
from kitpy.protocol.events import (
    NEED_DATA,
    CloseReceived,
    ConnectionClosed,
    Message,
    ProtocolError,
)
from kitpy.protocol.limits import Limits
from kitpy.protocol.websocket import WebSocketConnection
from kitpy.server.deadlines import deadlines
from kitpy.server.stream import FastStream

__all__ = ("WebSocketSession",)

_RECEIVE_SIZE = 64 * 1024
#: Messages the writer coalesces into one socket write, at most.
_BATCH_BYTES = 64 * 1024
_STREAM_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


class WebSocketSession:
    """One upgraded connection joined to the application's WebSocket end."""

    __slots__ = (
        "__weakref__",
        "_end",
        "_fast",
        "_flushing",
        "_keepalive_on",
        "_limits",
        "_lock",
        "_proto",
        "_scope",
        "_shutdown_code",
        "_stream",
        "broken",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        connection: WebSocketConnection,
        end: WebSocket,
        limits: Limits,
        subprotocol: str | None = None,
    ) -> None:
        self._stream = stream
        self._proto = connection
        self._end = end
        self._limits = limits
        self._scope = anyio.CancelScope()
        self._shutdown_code: int | None = None
        self._fast = stream if isinstance(stream, FastStream) else None
        # Only the trio path has two tasks writing; on asyncio the reader is the only one.
        self._lock = anyio.Lock(fast_acquire=True) if self._fast is None else None
        self._keepalive_on = False
        self._flushing = False
        end.bound_buffers(limits.ws_max_queue_bytes)  # both directions
        end.protocol = subprotocol
        #: True when the connection broke (no clean close handshake).
        self.broken = False

    def shutdown(self, close_code: int) -> None:
        """Close with ``close_code`` (server shutdown): both the app's end and the wire."""
        self._shutdown_code = close_code
        self._end.close_now(close_code, "server shutting down")

    async def run(self, handshake: bytes) -> None:
        """Send the 101 and serve the socket until it is closed."""
        end = self._end
        if end.state is WebSocketState.CONNECTING and not end.closed:
            end.accept()
        if not await self._write(handshake):
            end.close_now(1006, "connection lost")
            return
        fast = self._fast
        with self._scope:
            end.on_close(self._on_end_closed)
            if fast is None:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._read_loop)
                    if self._limits.ws_ping_interval > 0:
                        tg.start_soon(self._keepalive_loop)
                    await self._write_loop()
            else:
                try:
                    end.set_sink(self._write_now)
                    end.set_listener(self._flush)
                    fast.set_drain_callback(self._drained)
                    if self._limits.ws_ping_interval > 0:
                        self._keepalive_on = True
                        self._arm_keepalive()
                    self._flush(end)  # what the application sent before
                    await self._read_loop()
                finally:
                    end.set_sink(None)
                    end.set_listener(None)
                    fast.set_drain_callback(None)
                    self._keepalive_on = False
        end.close_now(1006, "connection lost")  # no-op when the close was clean

    # -- plumbing ------------------------------------------------------------------------

    def _on_end_closed(self, _end: WebSocket) -> None:
        # The end is closed: leave a bounded time for the close handshake.
        deadline = anyio.current_time() + self._limits.ws_ping_timeout
        if deadline < self._scope.deadline:
            self._scope.deadline = deadline

    def _drop(self, reason: str) -> None:
        """The client is gone: close the end with 1006 and stop everything."""
        self.broken = True
        self._end.close_now(1006, reason)
        self._scope.cancel()

    async def _write(self, data: bytes) -> bool:
        if not data:
            return True
        try:
            if self._lock is None:
                await self._stream.send(data)
            else:
                async with self._lock:
                    await self._stream.send(data)
        except _STREAM_ERRORS:
            self.broken = True
            return False
        return True

    async def _read_loop(self) -> None:
        proto = self._proto
        end = self._end
        while True:
            try:
                event = proto.next_event()
            except ProtocolError as exc:
                code = exc.close_code or 1002
                await self._write(proto.close(code, exc.message[:120]))
                end.close_now(code, exc.message)
                self._scope.cancel()
                return
            if event is NEED_DATA:
                pending = proto.data_to_send()  # usually nothing: skip the await then
                if pending and not await self._write(pending):
                    self._drop("connection lost")
                    return
                try:
                    data = await self._stream.receive(_RECEIVE_SIZE)
                except _STREAM_ERRORS:
                    data = b""
                proto.receive_data(data)
            elif isinstance(event, Message):
                if not end.closed:
                    try:
                        end.send_nowait(event.data)
                    except WebSocketClosed:
                        pass
            elif isinstance(event, CloseReceived):
                await self._write(proto.data_to_send())  # our answer to the client's close
                end.close_now(event.code, event.reason)
                self._scope.cancel()
                return
            elif isinstance(event, ConnectionClosed):
                self._drop("connection lost")
                return
            # PongReceived: the keepalive state is already updated.

    async def _write_loop(self) -> None:
        proto = self._proto
        end = self._end
        while True:
            try:
                message = await end.receive()
            except WebSocketClosed as exc:
                code = self._shutdown_code if self._shutdown_code is not None else exc.code
                if not await self._write(proto.close(code, exc.reason[:120])):
                    self._drop("connection lost")
                return
            batch = [proto.send(message)]
            size = len(batch[0])
            closed: WebSocketClosed | None = None
            while size < _BATCH_BYTES:
                try:
                    more = end.receive_nowait()
                except WebSocketClosed as exc:
                    closed = exc
                    break
                if more is None:
                    break
                frame = proto.send(more)
                batch.append(frame)
                size += len(frame)
            if not await self._write(b"".join(batch) if len(batch) > 1 else batch[0]):
                self._drop("connection lost")
                return
            if closed is not None:
                code = self._shutdown_code if self._shutdown_code is not None else closed.code
                if not await self._write(proto.close(code, closed.reason[:120])):
                    self._drop("connection lost")
                return

    def _write_now(self, message: str | bytes) -> bool:
        """The end's sink (asyncio): write ``message`` at once unless the client is slow."""
        fast = self._fast
        assert fast is not None
        if fast.backed_up:
            return False  # queue it; _flush writes it when the socket drains
        if not fast.write_nowait(self._proto.send(message)):
            self._drop("connection lost")
        return True

    def _drained(self) -> None:
        self._flush(self._end)

    def _flush(self, end: WebSocket) -> None:
        """The end's listener (asyncio): write its queue while the socket takes it."""
        fast = self._fast
        assert fast is not None
        if self._flushing:
            return
        proto = self._proto
        self._flushing = True
        try:
            while not fast.backed_up:
                batch: list[bytes] = []
                size = 0
                closed: WebSocketClosed | None = None
                while size < _BATCH_BYTES:
                    try:
                        message = end.receive_nowait()
                    except WebSocketClosed as exc:
                        closed = exc
                        break
                    if message is None:
                        break
                    frame = proto.send(message)
                    batch.append(frame)
                    size += len(frame)
                if batch and not fast.write_nowait(b"".join(batch)):
                    self._drop("connection lost")
                    return
                if closed is not None:
                    end.set_listener(None)  # the close frame goes once
                    code = self._shutdown_code if self._shutdown_code is not None else closed.code
                    data = proto.close(code, closed.reason[:120])
                    if data and not fast.write_nowait(data):
                        self._drop("connection lost")
                    return
                if not batch:
                    return
        finally:
            self._flushing = False

    def _arm_keepalive(self) -> None:
        deadline = self._proto.keepalive_deadline()
        if deadline != math.inf:
            deadlines().add(deadline, self)  # one loop timer for every socket

    def deadline_reached(self) -> None:
        """The keepalive's deadline (asyncio): ping, or drop a client that did not answer."""
        if not self._keepalive_on:
            return  # the session is over
        proto = self._proto
        fast = self._fast
        assert fast is not None
        if proto.pong_overdue():
            self._drop("keepalive ping timeout")
            return
        # A whole frame handed to the transport cannot split another one, so the
        # ping may go even while the writer waits for the socket to drain.
        if proto.ping_due() and not fast.write_nowait(proto.ping()):
            self._drop("keepalive ping could not be sent")
            return
        self._arm_keepalive()

    async def _keepalive_loop(self) -> None:
        proto = self._proto
        while True:
            deadline = proto.keepalive_deadline()
            if deadline == math.inf:
                await anyio.sleep_forever()
            await anyio.sleep(max(0.0, deadline - anyio.current_time()))
            if proto.pong_overdue():
                self._drop("keepalive ping timeout")
                return
            if proto.ping_due():
                with anyio.move_on_after(self._limits.ws_ping_timeout) as scope:
                    sent = await self._write(proto.ping())
                if scope.cancelled_caught or not sent:
                    self._drop("keepalive ping could not be sent")
                    return
