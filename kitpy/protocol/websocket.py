"""WebSocket (RFC 6455) over wsproto, without I/O.

Theory of operation
-------------------
An upgrade goes through three decisions, all made here:

1. :func:`origin_allowed`, *before* the application is called: a browser sends
   ``Origin`` on every WebSocket handshake, and a page on another site must not be
   able to open a socket with the user's cookies (cross-site WebSocket hijacking).
   By default a missing Origin (not a browser) and an Origin whose host and port
   equal the Host header pass; ``["*"]`` lets everything through; other entries
   name further allowed origins (``"https://app.example.com"``).
2. :func:`upgrade_problem` once the application answered 101: is this request a
   valid RFC 6455 opening handshake (section 4.2.1)? If not, the 101 is a bug of
   the application and the server answers 500.
3. :func:`accept_upgrade` builds the ``101 Switching Protocols`` head: the accept
   token, the subprotocol the application chose (its ``Sec-WebSocket-Protocol``
   header, which must be one the client offered), permessage-deflate when offered,
   and the application's other headers (cookies...). It returns the
   :class:`WebSocketConnection` for the frames that follow.

:class:`WebSocketConnection` turns bytes into whole messages and the other way.
Fragments are joined here, and counted: a message over ``max_ws_message_bytes``
raises :class:`ProtocolError` with close code 1009. wsproto has no size limit of its
own and waits for a frame's whole declared length, so :class:`_FrameWatch` reads the
frame headers before wsproto sees them: a frame whose declared length takes its
message over the limit is refused (1009) when its header arrives, not after the
client has sent (or trickled) that much. Other violations surface the
same way with wsproto's code (1002 protocol error, 1007 invalid UTF-8). The server
sends :meth:`~WebSocketConnection.close` with that code and drops the connection.

Without an extension (no permessage-deflate) the client's frames do not go through
wsproto at all: :class:`_IncomingFrames` decodes them (header, unmasking, UTF-8,
fragments, control frames) with the same verdicts as wsproto and :class:`_FrameWatch`
together, at the same byte, for a fraction of the CPU. A valid close frame is then
handed to wsproto so that its state (which :meth:`~WebSocketConnection.send` and
:meth:`~WebSocketConnection.close` follow) moves as before.

Compressed input is fed to wsproto in small slices, so a tiny frame that inflates
to gigabytes (a "zip bomb") is caught by the size check after a few megabytes.

Keepalive: a ping every ``ws_ping_interval`` seconds; when its pong has not come
within ``ws_ping_timeout`` the peer counts as gone. Time is read from the clock
given to the constructor; :meth:`~WebSocketConnection.keepalive_deadline` tells the
server when to look again.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import math
import struct
from collections.abc import Generator, Iterable, Sequence
from enum import Enum, auto

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from kitpy.protocol.events import (
    NEED_DATA,
    CloseReceived,
    ConnectionClosed,
    Message,
    NeedData,
    PongReceived,
    ProtocolError,
    RequestHead,
)
from kitpy.protocol.http11 import SERVER_HEADER, date_header
from kitpy.protocol.limits import Limits
from kitpy.types import Clock

__all__ = (
    "WebSocketConnection",
    "WebSocketState",
    "accept_upgrade",
    "origin_allowed",
    "upgrade_problem",
)

#: Close codes that never go on the wire (RFC 6455 section 7.4.1).
_LOCAL_ONLY = frozenset({1005, 1006, 1015})
#: Compressed input is handed to wsproto this many bytes at a time.
_DEFLATE_SLICE = 4096
#: Headers of the 101 the server writes itself; the application's copies are dropped.
_HANDSHAKE_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _tokens(value: str | None) -> list[str]:
    if not value:
        return []
    return [token.strip() for token in value.split(",") if token.strip()]


def _header(head: RequestHead, name: bytes) -> str | None:
    for key, value in head.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _offers(head: RequestHead, name: bytes) -> list[str]:
    """Every comma-separated token of every ``name`` header."""
    return [
        token
        for key, value in head.headers
        if key == name
        for token in _tokens(value.decode("latin-1"))
    ]


def _split_host_port(value: str, default_port: int | None) -> tuple[str, int | None]:
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end != -1 else (value, "")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.partition(":")
    if port.isdigit():
        return host, int(port)
    return host, default_port


def origin_allowed(origin: str | None, host: str, allowed_origins: Sequence[str] | None) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` may reach the application.

    Args:
        origin: the request's ``Origin`` header (``None`` when absent).
        host: the request's ``Host`` header.
        allowed_origins: ``None`` for the default (same host only), ``["*"]`` for
            any, or origins such as ``"https://app.example.com"`` allowed besides.

    A missing Origin always passes (browsers always send one; other clients can
    forge anything anyway), and so does one naming the server's own host and port.
    """
    if origin is None:
        return True
    origin = origin.strip()
    if allowed_origins is not None:
        if "*" in allowed_origins:
            return True
        wanted = origin.lower().rstrip("/")
        if any(wanted == entry.strip().lower().rstrip("/") for entry in allowed_origins):
            return True
    scheme, sep, rest = origin.partition("://")
    if not sep or not rest or "/" in rest:
        return False  # "null" (sandboxed frames, file: pages) or malformed
    default = _DEFAULT_PORTS.get(scheme.lower())
    return _split_host_port(rest, default) == _split_host_port(host, default)


def upgrade_problem(head: RequestHead) -> str | None:
    """Why ``head`` is not a valid WebSocket opening handshake, or None if it is.

    RFC 6455 section 4.2.1: GET, HTTP/1.1 or later, ``Upgrade: websocket``,
    ``Connection: Upgrade``, ``Sec-WebSocket-Version: 13`` and a
    ``Sec-WebSocket-Key`` of 16 base64-encoded bytes.
    """
    if head.method != "GET":
        return f"a WebSocket handshake must be a GET, not {head.method}"
    if head.http_version != "1.1":
        return f"a WebSocket handshake needs HTTP/1.1, not HTTP/{head.http_version}"
    if head.upgrade is None or "websocket" not in _tokens(head.upgrade):
        return "the request has no 'Upgrade: websocket' (with 'Connection: Upgrade')"
    version = _header(head, b"sec-websocket-version")
    if version is None or version.strip() != "13":
        return f"Sec-WebSocket-Version must be 13, got {version!r}"
    key = _header(head, b"sec-websocket-key")
    try:
        valid_key = key is not None and len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return f"Sec-WebSocket-Key must be 16 bytes in base64, got {key!r}"
    return None


def accept_upgrade(
    head: RequestHead,
    headers: Iterable[tuple[str, str]],
    limits: Limits,
    clock: Clock,
    *,
    trailing_data: bytes = b"",
    now: float | None = None,
) -> tuple[bytes, WebSocketConnection, str | None]:
    """Accept a valid handshake (check :func:`upgrade_problem` first).

    Args:
        head: the upgrade request.
        headers: the application's 101 headers; its ``sec-websocket-protocol`` is
            the chosen subprotocol, the rest (cookies...) are sent along.
        limits: message size and keepalive settings for the connection.
        clock: monotonic clock for the keepalive.
        trailing_data: bytes that came after the request head (first frames).
        now: wall time for the ``Date`` header (default: the present).

    Returns:
        The ``101 Switching Protocols`` bytes, the connection, the subprotocol.

    Raises:
        ValueError: the application chose a subprotocol the client did not offer.
    """
    key = _header(head, b"sec-websocket-key")
    if key is None:
        raise ValueError("not a WebSocket handshake: no Sec-WebSocket-Key")
    lines = [
        "upgrade: websocket\r\nconnection: Upgrade\r\n",
        f"sec-websocket-accept: {generate_accept_token(key.strip().encode('ascii')).decode()}\r\n",
    ]
    subprotocol: str | None = None
    extra: list[str] = []
    has_date = has_server = False
    for name, value in headers:
        if name == "sec-websocket-protocol":
            subprotocol = value.strip()
        if name in _HANDSHAKE_HEADERS:
            continue
        if name == "date":
            has_date = True
        elif name == "server":
            has_server = True
        extra.append(f"{name}: {value}\r\n")
    if subprotocol is not None:
        offered = _offers(head, b"sec-websocket-protocol")
        if subprotocol not in offered:
            raise ValueError(
                f"the application chose WebSocket subprotocol {subprotocol!r}, "
                f"but the client offered {offered or 'none'}"
            )
        lines.append(f"sec-websocket-protocol: {subprotocol}\r\n")
    offers = _offers(head, b"sec-websocket-extensions")
    extensions: list[Extension] = []
    if offers:
        deflate = PerMessageDeflate()
        accepted = server_extensions_handshake(offers, [deflate])
        if accepted is not None:
            extensions.append(deflate)
            lines.append(f"sec-websocket-extensions: {accepted.decode('ascii')}\r\n")
    if not has_server:
        extra.append(f"server: {SERVER_HEADER}\r\n")
    if not has_date:
        extra.append(date_header(now))
    data = (
        "HTTP/1.1 101 Switching Protocols\r\n" + "".join(lines) + "".join(extra) + "\r\n"
    ).encode("latin-1")
    connection = WebSocketConnection(
        limits, clock, extensions=extensions, trailing_data=trailing_data
    )
    return data, connection, subprotocol


def _frame(message: str | bytes) -> bytes:
    """One unfragmented, unmasked data frame (FIN set) carrying ``message``."""
    if isinstance(message, str):
        payload, first = message.encode("utf-8"), 0x81  # FIN + text
    else:
        payload, first = bytes(message), 0x82  # FIN + binary
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _HEADER_16.pack(first, 126, size) + payload
    return _HEADER_64.pack(first, 127, size) + payload


def _unmask(data: bytes, key: bytes) -> bytes:
    """``data`` XOR the 4-byte masking ``key`` repeated (RFC 6455 section 5.3)."""
    size = len(data)
    if not size:
        return b""
    mask = (key * ((size >> 2) + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        size, "little"
    )


#: Close codes a peer may send (what wsproto accepts): the defined ones less the
#: local-only ones, and 3000-4999 (registered and private).
_PEER_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1014)})


def _peer_close_problem(payload: bytes) -> ProtocolError | None:
    """Why a close frame's payload is refused (1002 or 1007), or None."""
    if not payload:
        return None
    if len(payload) == 1:
        return ProtocolError("CLOSE with 1 byte payload", close_code=1002)
    code = (payload[0] << 8) | payload[1]
    if code not in _PEER_CLOSE_CODES and not 3000 <= code <= 4999:
        return ProtocolError(f"CLOSE with invalid code {code}", close_code=1002)
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError as exc:
        return ProtocolError(f"Error decoding CLOSE reason: {exc}", close_code=1007)
    return None


class _IncomingFrames:
    """The client's frames, decoded without wsproto, when no extension was negotiated.

    Makes the decisions wsproto and :class:`_FrameWatch` make together, in the same
    order and at the same byte: a header is refused (1002) for a reserved opcode, a
    fragmented or over-long control frame, a non-minimal or 64-bit length with its top
    bit set, an RSV bit, no mask; a valid header whose declared length takes its
    message over ``limit`` is 1009 at once (the declared lengths add up per message as
    :class:`_FrameWatch` counts them); the continuation rules (1002) are applied when
    the frame's first payload byte is there (at once for an empty frame). Payload is
    unmasked and, for text, decoded as it arrives (invalid UTF-8: 1007 as soon as it
    is certain); control frames wait for their whole payload.

    :meth:`next` returns a whole :class:`Message`, ``(opcode, payload)`` for a ping,
    pong or valid close frame, or None when it needs more bytes. After a close frame
    or an error it reads nothing more.
    """

    __slots__ = (
        "_buf",
        "_declared",
        "_done",
        "_fin",
        "_key",
        "_limit",
        "_message",
        "_opcode",
        "_parts",
        "_pos",
        "_remaining",
        "_started",
        "_utf8",
    )

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buf = b""
        self._pos = 0
        self._declared = 0  # declared payload bytes of the current data message
        self._message = 0  # opcode of the data message in progress (0: none)
        self._parts: list[str | bytes] = []
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._opcode = -1  # opcode of the frame whose payload comes next; -1: a header
        self._fin = False
        self._remaining = 0  # payload bytes of that frame still to come
        self._key = b""  # its masking key, turned to the next payload byte
        self._started = False  # part of that frame's payload was handled
        self._done = False

    def feed(self, data: bytes) -> None:
        """Bytes from the client."""
        if self._done:
            return
        if self._pos >= len(self._buf):
            self._buf = bytes(data)
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def _fail(self, message: str, code: int = 1002) -> ProtocolError:
        self._done = True
        self._buf = b""
        self._pos = 0
        self._parts.clear()
        return ProtocolError(message, close_code=code)

    def next(self) -> Message | tuple[int, bytes] | None:
        """The next message or control frame; None when more bytes are needed.

        Raises:
            ProtocolError: ``close_code`` 1002, 1007 or 1009.
        """
        if self._done:
            return None
        buf = self._buf
        pos = self._pos
        end = len(buf)
        while True:
            opcode = self._opcode
            if opcode < 0:  # a frame header (RFC 6455 section 5.2)
                if end - pos < 2:
                    break
                first = buf[pos]
                second = buf[pos + 1]
                opcode = first & 0x0F
                length = second & 0x7F
                if opcode > 2:
                    if opcode < 8 or opcode > 10:
                        raise self._fail(f"Invalid opcode {opcode:#x}")
                    if not first & 0x80:
                        raise self._fail("Invalid attempt to fragment control frame")
                    if length > 125:
                        raise self._fail("Control frame with payload len > 125")
                head = pos + 2
                if length == 126:
                    if end - head < 2:
                        break
                    length = (buf[head] << 8) | buf[head + 1]
                    head += 2
                    if length <= 125:
                        raise self._fail("Payload length used 2 bytes when 1 would have sufficed")
                elif length == 127:
                    if end - head < 8:
                        break
                    length = int.from_bytes(buf[head : head + 8], "big")
                    head += 8
                    if length <= 65535:
                        raise self._fail("Payload length used 8 bytes when 2 would have sufficed")
                    if length >> 63:
                        raise self._fail("8-byte payload length with non-zero MSB")
                if first & 0x70:
                    raise self._fail("Reserved bit set unexpectedly")
                if not second & 0x80:
                    raise self._fail("server received unexpected unmasked frame")
                if end - head < 4:
                    break
                if opcode <= 2:  # a data frame: its message's declared size
                    if opcode:
                        self._declared = 0
                    self._declared += length
                    if self._declared > self._limit:
                        raise self._fail(f"message larger than {self._limit} bytes", 1009)
                self._key = buf[head : head + 4]
                pos = head + 4
                self._opcode = opcode
                self._fin = bool(first & 0x80)
                self._remaining = length
                self._started = False
            remaining = self._remaining
            available = end - pos
            if opcode >= 8:  # a control frame comes whole
                if available < remaining:
                    break
                payload = _unmask(buf[pos : pos + remaining], self._key)
                pos += remaining
                self._opcode = -1
                if opcode == 0x8:
                    problem = _peer_close_problem(payload)
                    if problem is not None:
                        raise self._fail(problem.message, problem.close_code or 1002)
                    self._done = True
                    self._buf = b""
                    self._pos = 0
                    return (opcode, payload)
                self._pos = pos
                self._buf = buf
                return (opcode, payload)
            if remaining and not available:
                break
            take = remaining if available >= remaining else available
            key = self._key
            piece = _unmask(buf[pos : pos + take], key)
            pos += take
            remaining -= take
            self._remaining = remaining
            if remaining:
                turn = take & 3
                self._key = key[turn:] + key[:turn]
            else:
                self._opcode = -1
            if not self._started:  # the message rules, at the frame's first payload byte
                self._started = True
                if not self._message:
                    if not opcode:
                        raise self._fail("unexpected CONTINUATION")
                    self._message = opcode
                    if opcode == 1:
                        self._utf8.reset()
                        if not remaining and self._fin:  # a whole text message at once
                            try:
                                text = piece.decode("utf-8")
                            except UnicodeDecodeError as exc:
                                raise self._fail(str(exc), 1007) from None
                            self._message = 0
                            self._pos = pos
                            self._buf = buf
                            return Message(text)
                    elif not remaining and self._fin:  # a whole binary message at once
                        self._message = 0
                        self._pos = pos
                        self._buf = buf
                        return Message(piece)
                elif opcode:
                    raise self._fail(f"expected CONTINUATION, got {opcode:#x}")
            finished = not remaining and self._fin
            data: str | bytes = piece
            if self._message == 1:
                try:
                    data = self._utf8.decode(piece, finished)
                except UnicodeDecodeError as exc:
                    raise self._fail(str(exc), 1007) from None
            if not finished:
                self._parts.append(data)
                continue
            self._message = 0
            parts = self._parts
            if parts:
                parts.append(data)
                self._parts = []
                data = "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]
            self._pos = pos
            self._buf = buf
            return Message(data)
        self._pos = pos
        self._buf = buf
        return None


_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
#: The last message framed without extensions and its frame (see ``send``).
_last_framed: tuple[object, bytes] = (None, b"")


class _FrameWatch:
    """Reads the client's frame headers ahead of wsproto, to refuse a message too large.

    Follows the byte stream frame by frame (RFC 6455 section 5.2: two bytes, an
    extended length of 2 or 8 bytes, a masking key of 4) and skips the payloads. The
    declared lengths of a data message's frames add up; the header that takes them
    over ``limit`` is reported. A compressed message (RSV1 on its first frame) may
    take a little more than ``limit`` on the wire: deflate can grow incompressible
    data by about one byte in a thousand (zlib's ``deflateBound``), and the real size
    is checked after inflating anyway. Validity (opcodes, minimal lengths, control
    frames of at most 125 bytes, masking) stays wsproto's judgement.
    """

    __slots__ = ("_compressed", "_header", "_limit", "_message", "_skip", "_wire_limit")

    def __init__(self, limit: int, *, compressed: bool = False) -> None:
        self._limit = limit
        self._wire_limit = limit + (limit >> 10) + 64 if compressed else limit
        self._header = bytearray()
        self._skip = 0  # payload bytes of the current frame still to come
        self._message = 0  # declared payload bytes of the current data message
        self._compressed = False

    def scan(self, data: bytes) -> int:
        """Follow ``data``; the offset just past the first header over the limit, or -1."""
        header = self._header
        pos = 0
        end = len(data)
        while pos < end:
            skip = self._skip
            if skip:
                step = min(skip, end - pos)
                self._skip = skip - step
                pos += step
                continue
            if len(header) < 2:
                take = min(2 - len(header), end - pos)
                header += data[pos : pos + take]
                pos += take
                if len(header) < 2:
                    return -1
            second = header[1]
            short = second & 0x7F
            size = (
                2 + (2 if short == 126 else 8 if short == 127 else 0) + (4 if second & 0x80 else 0)
            )
            take = min(size - len(header), end - pos)
            if take:
                header += data[pos : pos + take]
                pos += take
            if len(header) < size:
                return -1
            first = header[0]
            length = (
                short
                if short < 126
                else int.from_bytes(header[2:4] if short == 126 else header[2:10], "big")
            )
            header.clear()
            self._skip = length
            opcode = first & 0x0F
            if opcode <= 2:  # a data frame: continuation (0), text (1), binary (2)
                if opcode:
                    self._message = 0
                    self._compressed = bool(first & 0x40)
                self._message += length
                if self._message > (self._wire_limit if self._compressed else self._limit):
                    return pos
        return -1


class WebSocketState(Enum):
    """Where the close handshake stands."""

    OPEN = auto()
    #: We sent a close frame and wait for the peer's.
    LOCAL_CLOSING = auto()
    #: The peer sent a close frame; our answer is queued in ``data_to_send()``.
    REMOTE_CLOSING = auto()
    CLOSED = auto()


_STATES = {
    ConnectionState.OPEN: WebSocketState.OPEN,
    ConnectionState.LOCAL_CLOSING: WebSocketState.LOCAL_CLOSING,
    ConnectionState.REMOTE_CLOSING: WebSocketState.REMOTE_CLOSING,
    ConnectionState.CLOSED: WebSocketState.CLOSED,
}


class WebSocketConnection:
    """Server side of an open WebSocket: bytes in, messages out, and back.

    Args:
        limits: ``max_ws_message_bytes``, ``ws_ping_interval``, ``ws_ping_timeout``.
        clock: monotonic seconds, for the keepalive.
        extensions: negotiated wsproto extensions (permessage-deflate).
        trailing_data: bytes received right after the handshake.
    """

    def __init__(
        self,
        limits: Limits,
        clock: Clock,
        *,
        extensions: list[Extension] | None = None,
        trailing_data: bytes = b"",
    ) -> None:
        self._ws = Connection(ConnectionType.SERVER, extensions or [])
        self._limits = limits
        self._clock = clock
        self._slice = _DEFLATE_SLICE if extensions else 0
        self._pending = bytearray(trailing_data)
        self._eof = False
        self._events: Generator[Event, None, None] | None = None
        self._out = bytearray()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._frames = _FrameWatch(limits.max_ws_message_bytes, compressed=bool(extensions))
        #: Without extensions the client's frames skip wsproto (and ``_frames``).
        self._incoming = None if extensions else _IncomingFrames(limits.max_ws_message_bytes)
        if self._incoming is not None and self._pending:
            self._incoming.feed(bytes(self._pending))
            self._pending.clear()
        self._oversize = False
        self._ping_payload: bytes | None = None
        self._ping_count = 0
        self._pong_deadline = math.inf
        interval = limits.ws_ping_interval
        self._next_ping = clock() + interval if interval > 0 else math.inf

    @property
    def state(self) -> WebSocketState:
        """Where the close handshake stands."""
        return _STATES[self._ws.state]

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes | None) -> None:
        """Feed bytes from the peer; ``None`` or ``b""`` means the connection ended."""
        if not data:
            self._eof = True
        elif not self._eof:
            if self._incoming is not None:
                self._incoming.feed(data)
            else:
                self._pending += data

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
        incoming = self._incoming
        if incoming is not None:
            return self._next_incoming(incoming)
        while True:
            if self._events is not None:
                for event in self._events:
                    result = self._handle(event)
                    if result is not None:
                        return result
                self._events = None
            if self._pending and self._ws.state in (
                ConnectionState.OPEN,
                ConnectionState.LOCAL_CLOSING,
            ):
                if self._slice and len(self._pending) > self._slice:
                    chunk = bytes(self._pending[: self._slice])
                    del self._pending[: self._slice]
                else:
                    chunk = bytes(self._pending)
                    self._pending.clear()
                cut = self._frames.scan(chunk)
                if cut != -1:
                    # wsproto gets the frames before the oversized one and its header
                    # (a header it finds invalid is its 1002), none of its payload.
                    chunk = chunk[:cut]
                    self._pending.clear()
                    self._oversize = True
                self._ws.receive_data(chunk)
                self._events = self._ws.events()
                continue
            if self._oversize:
                self._parts.clear()
                limit = self._limits.max_ws_message_bytes
                raise ProtocolError(f"message larger than {limit} bytes", close_code=1009)
            self._pending.clear()
            if self._eof:
                return ConnectionClosed()
            return NEED_DATA

    def _next_incoming(
        self, incoming: _IncomingFrames
    ) -> Message | CloseReceived | PongReceived | ConnectionClosed | NeedData:
        """:meth:`next_event` when the frames are decoded by ``_IncomingFrames``."""
        while True:
            event = incoming.next()
            if event is None:
                return ConnectionClosed() if self._eof else NEED_DATA
            if isinstance(event, Message):
                return event
            opcode, payload = event
            if opcode != 0x8:  # a ping (answered) or a pong
                result = self._handle(
                    Ping(payload=payload) if opcode == 0x9 else Pong(payload=payload)
                )
                if result is not None:
                    return result
                continue
            # A valid close frame: wsproto takes it (masked with a zero key) to move
            # its state, which ``send`` and ``close`` follow.
            self._ws.receive_data(bytes((0x88, 0x80 | len(payload))) + bytes(4) + payload)
            for wsproto_event in self._ws.events():
                result = self._handle(wsproto_event)
                if result is not None:
                    return result
            raise ProtocolError("close frame not taken", close_code=1002)  # pragma: no cover

    def _handle(self, event: Event) -> Message | CloseReceived | PongReceived | None:
        kind = type(event)
        if kind is TextMessage or kind is BytesMessage:
            data: str | bytes = event.data  # type: ignore[attr-defined]
            if isinstance(data, str):
                size = len(data) if data.isascii() else len(data.encode("utf-8"))
            else:
                data = bytes(data)
                size = len(data)
            self._size += size
            limit = self._limits.max_ws_message_bytes
            if self._size > limit:
                self._parts.clear()
                raise ProtocolError(f"message larger than {limit} bytes", close_code=1009)
            if not event.message_finished:  # type: ignore[attr-defined]
                self._parts.append(data)
                return None
            if self._parts:
                self._parts.append(data)
                parts, self._parts = self._parts, []
                data = "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]
            self._size = 0
            return Message(data)
        if kind is Ping:
            if self._ws.state is ConnectionState.OPEN:
                self._out += self._ws.send(event.response())  # type: ignore[attr-defined]
            return None
        if kind is Pong:
            if self._ping_payload is not None and event.payload == self._ping_payload:  # type: ignore[attr-defined]
                self._ping_payload = None
                self._pong_deadline = math.inf
            return PongReceived()
        if kind is CloseConnection:
            assert isinstance(event, CloseConnection)
            state = self._ws.state
            if state is ConnectionState.OPEN or state is ConnectionState.LOCAL_CLOSING:
                # wsproto reports a frame it could not parse as a CloseConnection
                # without changing state; a real close frame changes it.
                raise ProtocolError(event.reason or "protocol error", close_code=int(event.code))
            if state is ConnectionState.REMOTE_CLOSING:
                self._out += self._ws.send(event.response())
            return CloseReceived(int(event.code), event.reason or "")
        return None  # pragma: no cover

    def data_to_send(self) -> bytes:
        """Bytes the protocol wants sent on its own (pongs, the reply to a close)."""
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data

    # -- sending -------------------------------------------------------------------------

    def send(self, message: str | bytes) -> bytes:
        """Frame a message (text for ``str``); ``b""`` once closing."""
        if self._ws.state is not ConnectionState.OPEN:
            return b""
        if not self._slice:
            # No extension: a server frame is a pure function of the message (RFC 6455
            # section 5.2, unmasked), so the same message object sent to many sockets
            # -- a broadcast -- is framed once.
            global _last_framed
            last = _last_framed
            if last[0] is message:
                return last[1]
            frame = _frame(message)
            _last_framed = (message, frame)
            return frame
        if isinstance(message, str):
            return self._ws.send(TextMessage(data=message))
        return self._ws.send(BytesMessage(data=message))

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start (or answer) the close handshake; ``b""`` if a close was already sent.

        Codes that must not go on the wire (1005, 1006, 1015) are sent as 1000.
        """
        if self._ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        if code in _LOCAL_ONLY:
            code = 1000
        return self.data_to_send() + self._ws.send(CloseConnection(code=code, reason=reason))

    # -- keepalive -----------------------------------------------------------------------

    def keepalive_deadline(self) -> float:
        """When :meth:`ping_due` or :meth:`pong_overdue` may next turn true (clock time)."""
        if self._ws.state is not ConnectionState.OPEN:
            return math.inf
        return self._pong_deadline if self._ping_payload is not None else self._next_ping

    def ping_due(self) -> bool:
        """True when it is time to send a keepalive ping."""
        return (
            self._ping_payload is None
            and self._ws.state is ConnectionState.OPEN
            and self._clock() >= self._next_ping
        )

    def pong_overdue(self) -> bool:
        """True when the last ping went unanswered for ``ws_ping_timeout``: the peer is gone."""
        return self._ping_payload is not None and self._clock() >= self._pong_deadline

    def ping(self) -> bytes:
        """A keepalive ping frame; its pong is awaited."""
        if self._ws.state is not ConnectionState.OPEN:
            return b""
        now = self._clock()
        self._ping_count += 1
        self._ping_payload = self._ping_count.to_bytes(4, "big")
        self._pong_deadline = now + self._limits.ws_ping_timeout
        interval = self._limits.ws_ping_interval
        self._next_ping = now + interval if interval > 0 else math.inf
        return self._ws.send(Ping(payload=self._ping_payload))
