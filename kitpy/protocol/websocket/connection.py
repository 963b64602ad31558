"""An open WebSocket (RFC 6455), server side, without I/O: bytes in, messages out.

:class:`WebSocketProtocol` turns the client's bytes into whole messages and the
application's messages into frames. Fragments are joined and counted: a message over
``max_ws_message_bytes`` raises :class:`ProtocolError` with close code 1009, when the
frame header declaring it arrives. Other violations surface the same way (1002
protocol error, 1007 invalid UTF-8); the server answers with :meth:`close` and the
code, and drops the connection.

Two strategies read the client's frames. Without an extension and with ``fast=True``
(the default) the :mod:`~kitpy.protocol.websocket.decoder` reads them; with
permessage-deflate, or ``fast=False``, wsproto does
(:mod:`~kitpy.protocol.websocket.reference`). Either way wsproto keeps the close
handshake's state (:attr:`~WebSocketProtocol.close_state`) and encodes the close
frames: a valid close frame read by the decoder is handed to it, so its state moves
as on the reference path. On the fast path the wsproto connection is made only when
a close begins (an open idle socket holds none), and pings and pongs are framed by
the :mod:`~kitpy.protocol.websocket.encoder` (the same bytes wsproto writes).

Keepalive: a ping every ``ws_ping_interval`` seconds; when its pong has not come
within ``ws_ping_timeout`` the peer counts as gone. Time is read from the clock
given to the constructor; :meth:`~WebSocketProtocol.keepalive_deadline` tells the
server when to look again.
"""

from __future__ import annotations

import math
from enum import Enum, auto

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.extensions import Extension

from kitpy.protocol.events import (
    NEED_DATA,
    CloseReceived,
    ConnectionClosed,
    Message,
    NeedData,
    PongReceived,
    ProtocolError,
)
from kitpy.protocol.limits import Limits
from kitpy.protocol.websocket.decoder import FrameDecoder
from kitpy.protocol.websocket.encoder import FrameCache, control_frame, frame
from kitpy.protocol.websocket.reference import WsprotoReader
from kitpy.types import Clock

__all__ = ("CloseState", "WebSocketProtocol")

#: Close codes that never go on the wire (RFC 6455 section 7.4.1).
_LOCAL_ONLY = frozenset({1005, 1006, 1015})
_PONG = PongReceived()


class CloseState(Enum):
    """Where the close handshake stands."""

    OPEN = auto()
    #: We sent a close frame and wait for the peer's.
    LOCAL_CLOSING = auto()
    #: The peer sent a close frame; our answer is queued in ``data_to_send()``.
    REMOTE_CLOSING = auto()
    CLOSED = auto()


_STATES = {
    ConnectionState.OPEN: CloseState.OPEN,
    ConnectionState.LOCAL_CLOSING: CloseState.LOCAL_CLOSING,
    ConnectionState.REMOTE_CLOSING: CloseState.REMOTE_CLOSING,
    ConnectionState.CLOSED: CloseState.CLOSED,
}


class WebSocketProtocol:
    """Server side of an open WebSocket: bytes in, messages out, and back.

    Args:
        limits: ``max_ws_message_bytes``, ``ws_ping_interval``, ``ws_ping_timeout``.
        clock: monotonic seconds, for the keepalive.
        extensions: negotiated wsproto extensions (permessage-deflate).
        trailing_data: bytes received right after the handshake.
        fast: decode the client's frames without wsproto when no extension was
            negotiated (False: always wsproto, the reference of the differential
            tests).
        frames: a cache of framed messages shared by the server's sockets, so a
            broadcast is framed once (None: frame each message anew).
    """

    __slots__ = (
        "_clock",
        "_decoder",
        "_eof",
        "_frames",
        "_limits",
        "_next_ping",
        "_out",
        "_ping_count",
        "_ping_payload",
        "_plain",
        "_pong_deadline",
        "_reader",
        "_ws",
    )

    def __init__(
        self,
        limits: Limits,
        clock: Clock,
        *,
        extensions: list[Extension] | None = None,
        trailing_data: bytes = b"",
        fast: bool = True,
        frames: FrameCache | None = None,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._eof = False
        self._out = b""
        limit = limits.max_ws_message_bytes
        #: Exactly one of the two reads the client's frames.
        self._decoder: FrameDecoder | None = None
        self._reader: WsprotoReader | None = None
        #: wsproto's connection; the fast path makes it when a close begins (None: open).
        self._ws: Connection | None = None
        if fast and not extensions:
            self._decoder = FrameDecoder(limit)
            if trailing_data:
                self._decoder.feed(trailing_data)
        else:
            self._ws = Connection(ConnectionType.SERVER, extensions or [])
            self._reader = WsprotoReader(
                self._ws, limit, compressed=bool(extensions), pending=trailing_data
            )
        # Server frames are a pure function of the message only without extensions.
        self._plain = not extensions
        self._frames = frames
        self._ping_payload: bytes | None = None
        self._ping_count = 0
        self._pong_deadline = math.inf
        interval = limits.ws_ping_interval
        self._next_ping = clock() + interval if interval > 0 else math.inf

    @property
    def close_state(self) -> CloseState:
        """Where the close handshake stands."""
        return _STATES[self._state]

    @property
    def _state(self) -> ConnectionState:
        ws = self._ws
        return ConnectionState.OPEN if ws is None else ws.state

    def _wsproto(self) -> Connection:
        """wsproto's connection, made now on the fast path (a close begins)."""
        ws = self._ws
        if ws is None:
            ws = self._ws = Connection(ConnectionType.SERVER, [])
        return ws

    @property
    def decodes_fast(self) -> bool:
        """True when the client's frames are read by the fast decoder, not wsproto."""
        return self._decoder is not None

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes | None) -> None:
        """Feed bytes from the peer; ``None`` or ``b""`` means the connection ended."""
        if not data:
            self._eof = True
        elif not self._eof:
            if self._decoder is not None:
                self._decoder.feed(data)
            else:
                assert self._reader is not None
                self._reader.feed(data)

    def next_event(
        self,
    ) -> Message | CloseReceived | PongReceived | ConnectionClosed | NeedData:
        """The next whole message, close or pong; ``NEED_DATA`` when more bytes are needed.

        Pings are answered by queueing a pong in :meth:`data_to_send`; so is the
        reply to the peer's close frame. ``ConnectionClosed`` means the byte stream
        ended (without a close frame when none was seen: close code 1006).

        Raises:
            ProtocolError: ``close_code`` 1002, 1007 or 1009; answer it with
                :meth:`close` and drop the connection.
        """
        decoder = self._decoder
        if decoder is not None:
            return self._next_decoded(decoder)
        reader = self._reader
        assert reader is not None
        while True:
            event = reader.next()
            if event is None:
                return ConnectionClosed() if self._eof else NEED_DATA
            if isinstance(event, Message):
                return event
            result = self._control(event)
            if result is not None:
                return result

    def _next_decoded(
        self, decoder: FrameDecoder
    ) -> Message | CloseReceived | PongReceived | ConnectionClosed | NeedData:
        """:meth:`next_event` when the frames are read by the fast decoder."""
        while True:
            event = decoder.next()
            if event is None:
                return ConnectionClosed() if self._eof else NEED_DATA
            if isinstance(event, Message):
                return event
            opcode, payload = event
            if opcode == 0x9:  # a ping: answered with a pong while open
                if self._state is ConnectionState.OPEN:
                    self._out += control_frame(0xA, payload)
                continue
            if opcode == 0xA:
                return self._pong(payload)
            # A valid close frame: wsproto takes it (masked with a zero key) to move
            # its state, which ``send`` and ``close`` follow.
            ws = self._wsproto()
            ws.receive_data(bytes((0x88, 0x80 | len(payload))) + bytes(4) + payload)
            for wsproto_event in ws.events():
                result = self._control(wsproto_event)
                if result is not None:
                    return result
            raise ProtocolError("close frame not taken", close_code=1002)  # pragma: no cover

    def _control(self, event: Event) -> CloseReceived | PongReceived | None:
        """A ping (answered), a pong or a close, as wsproto reports them."""
        kind = type(event)
        ws = self._wsproto()
        if kind is Ping:
            if ws.state is ConnectionState.OPEN:
                self._out += ws.send(event.response())  # type: ignore[attr-defined]
            return None
        if kind is Pong:
            return self._pong(event.payload)  # type: ignore[attr-defined]
        if kind is CloseConnection:
            assert isinstance(event, CloseConnection)
            state = ws.state
            if state is ConnectionState.OPEN or state is ConnectionState.LOCAL_CLOSING:
                # wsproto reports a frame it could not parse as a CloseConnection
                # without changing state; a real close frame changes it.
                raise ProtocolError(event.reason or "protocol error", close_code=int(event.code))
            if state is ConnectionState.REMOTE_CLOSING:
                self._out += ws.send(event.response())
            return CloseReceived(int(event.code), event.reason or "")
        return None  # pragma: no cover

    def _pong(self, payload: bytes) -> PongReceived:
        if self._ping_payload is not None and payload == self._ping_payload:
            self._ping_payload = None
            self._pong_deadline = math.inf
        return _PONG

    def data_to_send(self) -> bytes:
        """Bytes the protocol wants sent on its own (pongs, the reply to a close)."""
        data = self._out
        if data:
            self._out = b""
        return data

    # -- sending -------------------------------------------------------------------------

    def send(self, message: str | bytes) -> bytes:
        """Frame a message (text for ``str``); ``b""`` once closing."""
        if self._state is not ConnectionState.OPEN:
            return b""
        if self._plain:
            frames = self._frames
            return frame(message) if frames is None else frames.frame(message)
        ws = self._wsproto()
        if isinstance(message, str):
            return ws.send(TextMessage(data=message))
        return ws.send(BytesMessage(data=message))

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start (or answer) the close handshake; ``b""`` if a close was already sent.

        Codes that must not go on the wire (1005, 1006, 1015) are sent as 1000.
        """
        if self._state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        if code in _LOCAL_ONLY:
            code = 1000
        return self.data_to_send() + self._wsproto().send(CloseConnection(code=code, reason=reason))

    # -- keepalive -----------------------------------------------------------------------

    def keepalive_deadline(self) -> float:
        """When :meth:`ping_due` or :meth:`pong_overdue` may next turn true (clock time)."""
        if self._state is not ConnectionState.OPEN:
            return math.inf
        return self._pong_deadline if self._ping_payload is not None else self._next_ping

    def ping_due(self) -> bool:
        """True when it is time to send a keepalive ping."""
        return (
            self._ping_payload is None
            and self._state is ConnectionState.OPEN
            and self._clock() >= self._next_ping
        )

    def pong_overdue(self) -> bool:
        """True when the last ping went unanswered for ``ws_ping_timeout``: the peer is gone."""
        return self._ping_payload is not None and self._clock() >= self._pong_deadline

    def ping(self) -> bytes:
        """A keepalive ping frame; its pong is awaited."""
        if self._state is not ConnectionState.OPEN:
            return b""
        now = self._clock()
        self._ping_count += 1
        self._ping_payload = self._ping_count.to_bytes(4, "big")
        self._pong_deadline = now + self._limits.ws_ping_timeout
        interval = self._limits.ws_ping_interval
        self._next_ping = now + interval if interval > 0 else math.inf
        if self._ws is None:
            return control_frame(0x9, self._ping_payload)
        return self._ws.send(Ping(payload=self._ping_payload))
