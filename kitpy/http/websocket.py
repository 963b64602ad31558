"""In-memory WebSocket ends: ``client, server = WebSocketPair()``.

Theory of operation
-------------------
A pair is two :class:`WebSocket` ends, each with an inbox. ``a.send(m)`` puts ``m`` in
``b``'s inbox and never blocks, so a broadcast to many peers cannot be stalled by one
slow peer. Instead every inbox is bounded (``max_buffered_bytes``): when a peer falls
that far behind, the pair is closed with 1008 and the backlog dropped, so a slow reader
cannot grow memory without bound. The bound is on a backlog, not on one message: a
message larger than it is still accepted into an empty inbox (the size of one message
is ``max_ws_message_bytes``'s business, or the application's).

The application keeps the *server* end: it must ``accept()`` it before receiving, and
it receives with ``await receive()`` or ``async for message in ws``. The *client* end
is returned in ``Response(status=101, websocket=client)``; the server (or TestClient)
attaches it to the real connection and shuttles messages between the wire and it.

``close(code, reason)`` on either end delivers a close to the other, after the messages
already queued; both ends then report ``close_code``. An end whose peer has closed is
``closed`` at once, even before it drains its inbox, so holders such as durable objects
can drop it from their lists immediately.

These objects belong to one event loop; use them from async code on that loop.

Whatever carries an end to its other side -- the server's connection to a real
socket, a durable object delivering messages as events, one day a link to a socket
held by another node -- *drives* it, and talks to it through one protocol,
:class:`WebSocketDriver`, attached with :meth:`WebSocket.attach`. The driver hears of
everything that happens to the end; it uses only the end's public methods to act.
"""

from __future__ import annotations

import json as _json
from asyncio import Future, get_running_loop
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterator
from enum import Enum, auto
from typing import Any, Protocol

import anyio

__all__ = ("WebSocket", "WebSocketClosed", "WebSocketDriver", "WebSocketPair", "WebSocketState")

#: Default bound on the bytes queued for one reader before it counts as too slow.
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
#: Close codes an application may send (RFC 6455 section 7.4).
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class WebSocketState(Enum):
    """Where an end stands: CONNECTING until ``accept()``, OPEN, then CLOSED."""

    CONNECTING = auto()
    OPEN = auto()
    CLOSED = auto()


class WebSocketClosed(Exception):
    """Raised by ``receive()`` once the socket is closed."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))


class WebSocketDriver(Protocol):
    """What drives a :class:`WebSocket` end: the one seam between an end and its carrier.

    An end has at most one driver (:meth:`WebSocket.attach`). kitpy has three kinds:
    the server's two (``kitpy.server.websocket``: task-based on Trio, callback-based
    on asyncio) drive the *client* end of a pair over a real connection; a durable
    object's host drives the *server* end it accepted, turning messages into events.
    A socket whose connection lives on another node is a driver of the same kind as
    the server's: on the node of the object it drives the client end, publishing what
    :meth:`ready` announces and delivering what comes back, and the object uses its
    end exactly as a local one.

    The driver is told things; it acts through the end's public surface only:

    - ``receive_nowait()`` takes what the other end sent (a message, None, or
      :class:`WebSocketClosed` once the other end closed: its code and reason);
    - ``send_nowait(message)`` delivers what the wire brought to the other end;
    - ``close_now(code, reason)`` closes both ends when the wire says so (the peer's
      close frame, or 1006 when the peer vanished);
    - ``bound_buffers(max_bytes)`` bounds both inboxes (slow readers get 1008);
    - ``pending`` and ``peer_receiving`` tell whether messages are still on their way
      (a server failing a socket lets the application answer what came first).

    Every method is called on the end's event loop, synchronously, and must not
    block; none may raise. Subclass this protocol to inherit the do-nothing defaults.
    """

    __slots__ = ()

    def take(self, ws: WebSocket, message: str | bytes) -> bool:
        """A message sent to ``ws`` while nothing is queued there; True if the driver took it.

        True means the driver handled it (the server wrote it to an idle socket) and
        it is not queued; False queues it as usual. Never offered out of order.
        """
        return False

    def ready(self, ws: WebSocket) -> None:
        """``ws`` has something new to receive: a message, or the other end's close."""
        return None

    def closed(self, ws: WebSocket) -> None:
        """``ws`` was closed, by either end (called once, or at once on attach if so)."""
        return None

    def before_send(self, ws: WebSocket) -> Awaitable[None] | None:
        """Something for ``await ws.send()`` to await first (an output gate), or None.

        A durable object returns its storage flush while writes are pending, so a
        message acknowledging a write does not leave before the write is durable;
        ``send_nowait`` is never gated.
        """
        return None


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


_EMPTY: deque[str | bytes | _Close] = deque(maxlen=0)


class WebSocket:
    """One end of a :class:`WebSocketPair`."""

    # Slots: a server holds one pair per connected client, often idle.
    __slots__ = (
        "__weakref__",
        "_attachment",
        "_driver",
        "_inbox",
        "_inbox_bytes",
        "_peer",
        "_peer_closed",
        "_protocol",
        "_server_end",
        "_waiter",
        "close_code",
        "close_reason",
        "max_buffered_bytes",
        "state",
    )

    def __init__(self) -> None:
        self.max_buffered_bytes: int = MAX_BUFFERED_BYTES
        self._server_end = False
        self._peer: WebSocket | None = None
        # Shared empty (maxlen=0) deque until the first message: idle ends stay small.
        self._inbox: deque[str | bytes | _Close] = _EMPTY
        self._inbox_bytes = 0
        self._waiter: Future[None] | anyio.Event | None = None
        self._driver: WebSocketDriver | None = None
        self._peer_closed = False
        self.state = WebSocketState.CONNECTING
        self.close_code: int | None = None
        self.close_reason = ""
        self._protocol: str | None = None
        self._attachment: str | None = None

    @property
    def protocol(self) -> str | None:
        """The subprotocol chosen in the handshake (its ``Sec-WebSocket-Protocol``), once known.

        One value for the pair: whoever completes the handshake sets it on either end,
        and both ends report it.
        """
        return self._protocol

    @protocol.setter
    def protocol(self, value: str | None) -> None:
        self._protocol = value
        if self._peer is not None:
            self._peer._protocol = value

    # -- lifecycle ---------------------------------------------------------------------

    def accept(self) -> None:
        """Start using this end; messages that arrived before are kept."""
        if self.state is WebSocketState.CLOSED:
            raise RuntimeError("cannot accept a WebSocket that is already closed")
        self.state = WebSocketState.OPEN

    @property
    def closed(self) -> bool:
        """True once either end has closed (even with messages still queued)."""
        return self.state is WebSocketState.CLOSED or self._peer_closed

    def attach(self, driver: WebSocketDriver) -> None:
        """Let ``driver`` drive this end (see :class:`WebSocketDriver`).

        An end already closed tells the driver at once.

        Raises:
            RuntimeError: another driver is attached.
        """
        if self._driver is not None and self._driver is not driver:
            raise RuntimeError("this WebSocket already has a driver")
        self._driver = driver
        if self.closed:
            driver.closed(self)

    def detach(self) -> None:
        """Forget the driver: the end is a plain in-memory end again."""
        self._driver = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close both ends with ``code`` (1000, 1001-1014 or 3000-4999)."""
        if code not in _SENDABLE and not 3000 <= code <= 4999:
            raise ValueError(f"invalid WebSocket close code {code}")
        if len(reason.encode()) > 123:
            raise ValueError("a close reason is at most 123 bytes of UTF-8")
        self.close_now(code, reason)

    def close_now(self, code: int, reason: str = "") -> None:
        """Close at once without validating the code (the server uses 1006, 1009...)."""
        if self.state is WebSocketState.CLOSED:
            return
        notify = not self._peer_closed  # else the driver heard when the peer closed
        self.state = WebSocketState.CLOSED
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._inbox.clear()
        self._inbox_bytes = 0
        self._wake()
        if notify and self._driver is not None:
            self._driver.closed(self)
        peer = self._peer
        if peer is not None and peer.state is not WebSocketState.CLOSED and not peer._peer_closed:
            peer._peer_closed = True
            peer._append(_Close(code, reason))
            peer._wake()
            if peer._driver is not None:
                peer._driver.closed(peer)

    @property
    def pending(self) -> bool:
        """True while a message is queued in either end of the pair (not yet received)."""
        peer = self._peer
        return bool(self._inbox) or (peer is not None and bool(peer._inbox))

    @property
    def peer_receiving(self) -> bool:
        """True while the other end waits in ``receive()`` for a message."""
        peer = self._peer
        return peer is not None and peer._waiter is not None

    def bound_buffers(self, max_bytes: int) -> None:
        """Set ``max_buffered_bytes`` of both inboxes of the pair, this end's and its peer's.

        The server bounds both directions of a connection with ``ws_max_queue_bytes``:
        what the application sends and the client has not read yet, and what the
        client sent and the application has not read yet.
        """
        self.max_buffered_bytes = max_bytes
        if self._peer is not None:
            self._peer.max_buffered_bytes = max_bytes

    # -- sending -----------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Queue ``message`` for the other end; never waits for it to be read.

        It waits only for the driver's output gate (:meth:`WebSocketDriver.before_send`).
        """
        driver = self._driver
        if driver is not None:
            gate = driver.before_send(self)
            if gate is not None:
                await gate
                if self.closed:
                    return  # it closed while we waited: it could not be delivered anyway
        self.send_nowait(message)

    def send_nowait(self, message: str | bytes) -> None:
        """``send`` for code that cannot await."""
        if not isinstance(message, str | bytes):
            if isinstance(message, bytearray | memoryview):
                message = bytes(message)
            else:
                raise TypeError(
                    f"WebSocket messages are str or bytes, not {type(message).__name__}"
                )
        if self.closed:
            code, reason = self._close_exchanged()
            raise WebSocketClosed(code, reason or "send() on a closed WebSocket")
        peer = self._peer
        assert peer is not None
        inbox = peer._inbox
        driver = peer._driver
        if driver is not None and not inbox and driver.take(peer, message):
            return
        size = len(message)
        if inbox and peer._inbox_bytes + size > peer.max_buffered_bytes:
            # The reader is too slow: drop its backlog rather than grow without bound.
            peer._inbox.clear()
            peer._inbox_bytes = 0
            self.close_now(1008, "send queue full: reader too slow")
            return
        peer._append(message)
        peer._inbox_bytes += size
        peer._wake()

    def _close_exchanged(self) -> tuple[int, str]:
        """The code and reason of this closed end's close, also before its inbox got there.

        An end whose peer closed is closed at once, but learns the code only when it
        reads the close; what ``send`` raises must carry the code exchanged all the same.
        """
        if self.close_code is not None:
            return self.close_code, self.close_reason
        peer = self._peer
        if peer is not None and peer.close_code is not None:
            return peer.close_code, peer.close_reason
        return 1006, ""

    def _append(self, item: str | bytes | _Close) -> None:
        if self._inbox is _EMPTY:
            self._inbox = deque()
        self._inbox.append(item)

    # -- receiving ---------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message; raises :class:`WebSocketClosed` once closed."""
        if self.state is WebSocketState.CONNECTING and self._peer is not None and self._server_end:
            raise RuntimeError("accept() the WebSocket before receiving from it")
        while not self._inbox:
            if self.state is WebSocketState.CLOSED:
                raise WebSocketClosed(self.close_code or 1006, self.close_reason)
            try:
                loop = get_running_loop()
            except RuntimeError:  # not asyncio (Trio)
                loop = None
            if loop is not None:
                # asyncio: a bare future costs a fraction of an anyio.Event.
                future: Future[None] = loop.create_future()
                self._waiter = future
                try:
                    await future
                finally:
                    self._waiter = None
            else:
                event = self._waiter = anyio.Event()
                try:
                    await event.wait()
                finally:
                    self._waiter = None
        item = self._inbox.popleft()
        if isinstance(item, _Close):
            self.state = WebSocketState.CLOSED
            if self.close_code is None:
                self.close_code, self.close_reason = item.code, item.reason
            self._inbox.clear()
            self._inbox_bytes = 0
            raise WebSocketClosed(item.code, item.reason)
        self._inbox_bytes -= len(item)
        return item

    def receive_nowait(self) -> str | bytes | None:
        """The next queued message, or None when none is queued (raises once closed)."""
        if not self._inbox:
            if self.state is WebSocketState.CLOSED:
                raise WebSocketClosed(self.close_code or 1006, self.close_reason)
            return None
        head = self._inbox[0]
        if isinstance(head, _Close):
            self._inbox.popleft()
            self.state = WebSocketState.CLOSED
            if self.close_code is None:
                self.close_code, self.close_reason = head.code, head.reason
            raise WebSocketClosed(head.code, head.reason)
        self._inbox.popleft()
        self._inbox_bytes -= len(head)
        return head

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.receive()
            except WebSocketClosed:
                return

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            if isinstance(waiter, Future):
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiter.set()
        if self._driver is not None:
            self._driver.ready(self)

    # -- attachments (Cloudflare's serializeAttachment) ------------------------------------

    def serialize_attachment(self, value: Any) -> None:
        """Keep a JSON-compatible value with this socket (a copy is stored)."""
        try:
            self._attachment = _json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"attachment must be JSON-compatible: {exc}") from None

    def deserialize_attachment(self) -> Any:
        """The value last given to ``serialize_attachment`` (None if never)."""
        return None if self._attachment is None else _json.loads(self._attachment)

    def __repr__(self) -> str:
        return f"<WebSocket {self.state.name.lower()} close_code={self.close_code}>"


class WebSocketPair:
    """Two connected ends: ``client, server = WebSocketPair()``."""

    __slots__ = ("client", "server")

    def __init__(self) -> None:
        self.client = WebSocket()
        self.server = WebSocket()
        self.server._server_end = True
        self.client._peer = self.server
        self.server._peer = self.client

    def __iter__(self) -> Iterator[WebSocket]:
        yield self.client
        yield self.server

    def __getitem__(self, index: int) -> WebSocket:
        return (self.client, self.server)[index]
