"""Drive an upgraded connection: the wire on one side, the app's WebSocket end on the other.

The application returned ``Response(status=101, websocket=client_end)``; the server
owns ``client_end`` from then on and is its :class:`~kitpy.http.websocket.WebSocketDriver`.
:func:`websocket_driver` picks one of two drivers for the stream:

* :class:`TaskDriver` (Trio, and any plain :class:`anyio.abc.ByteStream`) runs
  three tasks: the reader feeds wire bytes to the
  :class:`~kitpy.protocol.websocket.WebSocketProtocol` and hands each whole message
  to ``client_end.send_nowait`` (it lands in the application's inbox); the writer
  takes what the application sent from ``client_end.receive()`` and frames it onto
  the wire; the keepalive pings every ``ws_ping_interval`` and declares the client
  gone when a pong does not come within ``ws_ping_timeout``.
* :class:`CallbackDriver` (asyncio, :class:`~kitpy.server.stream.FastStream`): the
  connection's own task is the reader and nothing else waits, since writes to an
  asyncio transport never block (they only buffer). A message the application
  sends while nothing is queued and the socket is not backed up is framed and
  written at once by the sending task (the driver's ``take``); otherwise it queues
  in ``client_end`` and is written, batched, by a callback whenever the socket takes
  more (the driver's ``ready`` and the stream's drain callback). The keepalive is a
  deadline on the loop's one shared timer (:mod:`kitpy.server.deadlines`); its
  (small) ping goes straight to the transport. Whole frames handed to the transport
  cannot split one another, so control frames from the reader may go between them.

Both write what is queued in batches of at most :data:`BATCH_BYTES` through one
helper, :func:`take_batch`.

Memory stays bounded: the application's messages queue in ``client_end``'s inbox,
whose ``max_buffered_bytes`` is ``ws_max_queue_bytes``. When the client reads too
slowly the writer waits on the socket, the inbox fills, and the pair closes itself
(1008) instead of growing. The other way round likewise: the client's messages queue
in the application's end, bounded by ``ws_max_queue_bytes`` too, and an application
that does not read them gets the pair closed (1008) once they pass it.

Closing: whoever closes first, the other side learns the code. A close frame from
the client closes the end with the client's code; the application closing its end
sends a close frame with its code and waits (at most ``ws_ping_timeout``) for the
client's answer; a client that vanishes (EOF, reset, no pong) closes the end with
1006. Once the end is closed, by anyone, the driver has ``ws_ping_timeout`` left
to finish the handshake before the connection is dropped.
"""

from __future__ import annotations

import math

import anyio
import anyio.abc

from kitpy.http.websocket import WebSocket, WebSocketClosed, WebSocketDriver, WebSocketState
from kitpy.protocol.events import (
    NEED_DATA,
    CloseReceived,
    ConnectionClosed,
    Message,
    ProtocolError,
)
from kitpy.protocol.limits import Limits
from kitpy.protocol.websocket import WebSocketProtocol
from kitpy.server.deadlines import deadlines
from kitpy.server.stream import FastStream

__all__ = ("BATCH_BYTES", "CallbackDriver", "TaskDriver", "take_batch", "websocket_driver")

_RECEIVE_SIZE = 64 * 1024
#: Messages a driver coalesces into one socket write, at most.
BATCH_BYTES = 64 * 1024
#: After a protocol error, how long the application may take to answer the messages
#: that came before it, before the failing close goes out anyway.
ANSWER_GRACE = 1.0
#: Loop turns with nothing in flight that count as "the application has answered".
_QUIET_TURNS = 3
_STREAM_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


def take_batch(
    end: WebSocket, protocol: WebSocketProtocol, first: bytes | None = None
) -> tuple[bytes, int, WebSocketClosed | None]:
    """Frame what ``end`` has queued, up to :data:`BATCH_BYTES`, into one write.

    ``first`` is a frame already taken. Returns the bytes, how many messages they
    hold (``first`` included) and the close met after them, if any.
    """
    frames = [] if first is None else [first]
    size = 0 if first is None else len(first)
    closed: WebSocketClosed | None = None
    while size < BATCH_BYTES:
        try:
            message = end.receive_nowait()
        except WebSocketClosed as exc:
            closed = exc
            break
        if message is None:
            break
        data = protocol.send(message)
        frames.append(data)
        size += len(data)
    if not frames:
        return b"", 0, closed
    return (frames[0] if len(frames) == 1 else b"".join(frames)), len(frames), closed


class _Driver(WebSocketDriver):
    """What both drivers share: the state, the reader, the close handling."""

    __slots__ = (
        "__weakref__",
        "_end",
        "_limits",
        "_protocol",
        "_scope",
        "_shutdown_code",
        "_stream",
        "broken",
        "linger",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        protocol: WebSocketProtocol,
        end: WebSocket,
        limits: Limits,
        scope: anyio.CancelScope,
        subprotocol: str | None = None,
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._end = end
        self._limits = limits
        #: The connection's scope, around :meth:`run`: cancelled when the socket is done.
        self._scope = scope
        self._shutdown_code: int | None = None
        end.bound_buffers(limits.ws_max_queue_bytes)  # both directions
        end.protocol = subprotocol
        #: True when the connection broke (no clean close handshake).
        self.broken = False
        #: True when the server failed the socket: the connection should linger.
        self.linger = False
        self._setup(stream)

    def _setup(self, stream: anyio.abc.ByteStream) -> None:
        """The driver's own state (each subclass)."""

    def shutdown(self, close_code: int) -> None:
        """Close with ``close_code`` (server shutdown): both the app's end and the wire."""
        self._shutdown_code = close_code
        self._end.close_now(close_code, "server shutting down")

    async def run(self, handshake: bytes) -> None:
        """Send the 101 and serve the socket until it is closed.

        Runs inside the scope given to the constructor, which the driver cancels once
        the socket is done (the cancellation ends there).
        """
        end = self._end
        if end.state is WebSocketState.CONNECTING and not end.closed:
            end.accept()
        sent = await self._write(handshake)
        del handshake  # an idle socket keeps no copy of its 101
        if not sent:
            end.close_now(1006, "connection lost")
            return
        end.attach(self)
        try:
            await self._serve()
        finally:
            end.detach()
            end.close_now(1006, "connection lost")  # no-op when the close was clean

    async def _serve(self) -> None:
        raise NotImplementedError

    # -- the WebSocketDriver protocol (``take`` and ``ready``: see CallbackDriver) ---------

    def closed(self, ws: WebSocket) -> None:
        # The end is closed: leave a bounded time for the close handshake.
        deadline = anyio.current_time() + self._limits.ws_ping_timeout
        if deadline < self._scope.deadline:
            self._scope.deadline = deadline

    # -- plumbing ------------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        """The client is gone: close the end with 1006 and stop everything."""
        self.broken = True
        self._end.close_now(1006, reason)
        self._scope.cancel()

    def _close_frame(self, closed: WebSocketClosed) -> bytes:
        """The close frame answering the end's close (the shutdown code wins)."""
        code = self._shutdown_code if self._shutdown_code is not None else closed.code
        return self._protocol.close(code, closed.reason[:120])

    async def _write(self, data: bytes) -> bool:
        if not data:
            return True
        try:
            await self._stream.send(data)
        except _STREAM_ERRORS:
            self.broken = True
            return False
        return True

    async def _fail(self, exc: ProtocolError) -> None:
        """The client broke the protocol: answer what came before, then fail the socket.

        Every message that arrived whole before the bad frame was handed to the
        application; its replies go out before the close frame (the strict
        behaviour), then the socket closes with the error's code and the connection
        lingers (:attr:`linger`) so the client reads the close instead of a reset.
        """
        code = exc.close_code or 1002
        end = self._end
        with anyio.move_on_after(ANSWER_GRACE):
            quiet = turns = 0
            while quiet < _QUIET_TURNS:
                turns += 1
                await anyio.sleep(0 if turns < 16 else 0.005)  # a few turns, then no spin
                if end.pending:
                    quiet = 0  # messages still on their way, one way or the other
                elif end.peer_receiving:
                    break  # the application took everything and waits for more
                else:
                    quiet += 1
        # The task-based writer holds its lock while a batch it took is written, so
        # this close queues behind it; the callback driver wrote synchronously.
        await self._write(self._protocol.close(code, exc.message[:120]))
        end.close_now(code, exc.message)
        self.linger = True
        self._scope.cancel()

    async def _read_loop(self) -> None:
        protocol = self._protocol
        end = self._end
        while True:
            try:
                event = protocol.next_event()
            except ProtocolError as exc:
                await self._fail(exc)
                return
            if event is NEED_DATA:
                pending = protocol.data_to_send()  # usually nothing: skip the await then
                if pending and not await self._write(pending):
                    self._drop("connection lost")
                    return
                try:
                    data = await self._stream.receive(_RECEIVE_SIZE)
                except _STREAM_ERRORS:
                    data = b""
                protocol.receive_data(data)
            elif isinstance(event, Message):
                if not end.closed:
                    try:
                        end.send_nowait(event.data)
                    except WebSocketClosed:
                        pass
            elif isinstance(event, CloseReceived):
                await self._write(protocol.data_to_send())  # our answer to the client's close
                end.close_now(event.code, event.reason)
                self._scope.cancel()
                return
            elif isinstance(event, ConnectionClosed):
                self._drop("connection lost")
                return
            # PongReceived: the keepalive state is already updated.


class TaskDriver(_Driver):
    """The task-based driver (Trio, any byte stream): reader, writer and keepalive tasks."""

    __slots__ = ("_lock",)

    def _setup(self, stream: anyio.abc.ByteStream) -> None:
        # Two tasks write (the reader its pongs, the writer): whole frames, one at a time.
        self._lock = anyio.Lock(fast_acquire=True)

    async def _serve(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_loop)
            if self._limits.ws_ping_interval > 0:
                tg.start_soon(self._keepalive_loop)
            await self._write_loop()

    async def _write(self, data: bytes) -> bool:
        if not data:
            return True
        async with self._lock:
            return await super()._write(data)

    async def _write_loop(self) -> None:
        protocol = self._protocol
        end = self._end
        while True:
            try:
                message = await end.receive()
            except WebSocketClosed as exc:
                if not await self._write(self._close_frame(exc)):
                    self._drop("connection lost")
                return
            data, _, closed = take_batch(end, protocol, protocol.send(message))
            if not await self._write(data):
                self._drop("connection lost")
                return
            if closed is not None:
                if not await self._write(self._close_frame(closed)):
                    self._drop("connection lost")
                return

    async def _keepalive_loop(self) -> None:
        protocol = self._protocol
        while True:
            deadline = protocol.keepalive_deadline()
            if deadline == math.inf:
                await anyio.sleep_forever()
            await anyio.sleep(max(0.0, deadline - anyio.current_time()))
            if protocol.pong_overdue():
                self._drop("keepalive ping timeout")
                return
            if protocol.ping_due():
                with anyio.move_on_after(self._limits.ws_ping_timeout) as scope:
                    sent = await self._write(protocol.ping())
                if scope.cancelled_caught or not sent:
                    self._drop("keepalive ping could not be sent")
                    return


class CallbackDriver(_Driver):
    """The callback-based driver (asyncio): the connection task reads, callbacks write."""

    __slots__ = ("_fast", "_flushing", "_keepalive_on")

    def _setup(self, stream: anyio.abc.ByteStream) -> None:
        assert isinstance(stream, FastStream)
        self._fast = stream
        self._keepalive_on = False
        self._flushing = False

    async def _serve(self) -> None:
        fast = self._fast
        try:
            fast.set_drain_callback(self._drained)
            if self._limits.ws_ping_interval > 0:
                self._keepalive_on = True
                self._arm_keepalive()
            self._flush()  # what the application sent before
            await self._read_loop()
        finally:
            fast.set_drain_callback(None)
            self._keepalive_on = False

    # -- the WebSocketDriver protocol ------------------------------------------------------

    def take(self, ws: WebSocket, message: str | bytes) -> bool:
        """Write ``message`` at once unless the client is slow (then it queues)."""
        fast = self._fast
        if fast.backed_up:
            return False  # queue it; _flush writes it when the socket drains
        if not fast.write_nowait(self._protocol.send(message)):
            self._drop("connection lost")
        return True

    def ready(self, ws: WebSocket) -> None:
        self._flush()

    # -- writing -------------------------------------------------------------------------

    def _drained(self) -> None:
        self._flush()

    def _flush(self) -> None:
        """Write the end's queue while the socket takes it."""
        if self._flushing:
            return
        fast = self._fast
        protocol = self._protocol
        end = self._end
        self._flushing = True
        try:
            while not fast.backed_up:
                data, taken, closed = take_batch(end, protocol)
                if data and not fast.write_nowait(data):
                    self._drop("connection lost")
                    return
                if closed is not None:
                    close = self._close_frame(closed)  # b"" once sent: it goes once
                    if close and not fast.write_nowait(close):
                        self._drop("connection lost")
                    return
                if not taken:
                    return
        finally:
            self._flushing = False

    # -- keepalive -----------------------------------------------------------------------

    def _arm_keepalive(self) -> None:
        deadline = self._protocol.keepalive_deadline()
        if deadline != math.inf:
            deadlines().add(deadline, self)  # one loop timer for every socket

    def deadline_reached(self) -> None:
        """The keepalive's deadline: ping, or drop a client that did not answer."""
        if not self._keepalive_on:
            return  # the driver is done
        protocol = self._protocol
        fast = self._fast
        if protocol.pong_overdue():
            self._drop("keepalive ping timeout")
            return
        # A whole frame handed to the transport cannot split another one, so the
        # ping may go even while the writer waits for the socket to drain.
        if protocol.ping_due() and not fast.write_nowait(protocol.ping()):
            self._drop("keepalive ping could not be sent")
            return
        self._arm_keepalive()


def websocket_driver(
    stream: anyio.abc.ByteStream,
    protocol: WebSocketProtocol,
    end: WebSocket,
    limits: Limits,
    scope: anyio.CancelScope,
    subprotocol: str | None = None,
) -> TaskDriver | CallbackDriver:
    """The driver for ``stream``: callbacks on a :class:`FastStream`, tasks otherwise.

    ``scope`` is a cancel scope around :meth:`~_Driver.run` (the connection's).
    """
    if isinstance(stream, FastStream):
        return CallbackDriver(stream, protocol, end, limits, scope, subprotocol)
    return TaskDriver(stream, protocol, end, limits, scope, subprotocol)
