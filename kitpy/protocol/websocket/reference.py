"""The wsproto reference path for client frames, and the size watch in front of it.

With an extension (permessage-deflate), or with ``fast=False``, the client's bytes go
to wsproto, which parses and inflates the frames. wsproto has no size limit of its
own and waits for a frame's whole declared length, so :class:`FrameWatch` reads the
frame headers before wsproto sees them: a frame whose declared length takes its
message over ``max_ws_message_bytes`` is refused (1009) when its header arrives,
not after the client has sent (or trickled) that much. :class:`WsprotoReader` joins
the fragments wsproto hands out and counts them. Compressed input is fed to wsproto
in small slices, so a tiny frame that inflates to gigabytes (a "zip bomb") is
caught by the size check after a few megabytes.
"""

from __future__ import annotations

from collections.abc import Generator

from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, Event, TextMessage

from kitpy.protocol.events import Message, ProtocolError

__all__ = ("FrameWatch", "WsprotoReader")

#: Compressed input is handed to wsproto this many bytes at a time.
DEFLATE_SLICE = 4096
_READING = (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING)


class FrameWatch:
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


class WsprotoReader:
    """The client's frames through wsproto: whole messages, and wsproto's other events.

    Args:
        ws: the connection's wsproto state machine (shared with its writer).
        limit: ``max_ws_message_bytes``.
        compressed: an extension was negotiated (input is fed in slices).
        pending: bytes received right after the handshake.
    """

    __slots__ = (
        "_events",
        "_frames",
        "_limit",
        "_oversize",
        "_parts",
        "_pending",
        "_size",
        "_slice",
        "_ws",
    )

    def __init__(self, ws: Connection, limit: int, *, compressed: bool, pending: bytes) -> None:
        self._ws = ws
        self._limit = limit
        self._slice = DEFLATE_SLICE if compressed else 0
        self._pending = bytearray(pending)
        self._events: Generator[Event, None, None] | None = None
        self._parts: list[str | bytes] = []
        self._size = 0
        self._frames = FrameWatch(limit, compressed=compressed)
        self._oversize = False

    def feed(self, data: bytes) -> None:
        """Bytes from the client."""
        self._pending += data

    def next(self) -> Message | Event | None:
        """The next whole message or other wsproto event; None when it needs more bytes.

        Raises:
            ProtocolError: ``close_code`` 1009 for a message over the limit.
        """
        ws = self._ws
        while True:
            if self._events is not None:
                for event in self._events:
                    kind = type(event)
                    if kind is TextMessage or kind is BytesMessage:
                        message = self._join(event)  # type: ignore[arg-type]
                        if message is not None:
                            return message
                        continue
                    return event
                self._events = None
            if self._pending and ws.state in _READING:
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
                ws.receive_data(chunk)
                self._events = ws.events()
                continue
            if self._oversize:
                self._parts.clear()
                raise ProtocolError(f"message larger than {self._limit} bytes", close_code=1009)
            self._pending.clear()
            return None

    def _join(self, event: TextMessage | BytesMessage) -> Message | None:
        """Add a fragment to the message; the message once it is finished."""
        raw = event.data
        data: str | bytes
        if isinstance(raw, str):
            data = raw
            size = len(raw) if raw.isascii() else len(raw.encode("utf-8"))
        else:
            data = bytes(raw)
            size = len(data)
        self._size += size
        limit = self._limit
        if self._size > limit:
            self._parts.clear()
            raise ProtocolError(f"message larger than {limit} bytes", close_code=1009)
        if not event.message_finished:
            self._parts.append(data)
            return None
        if self._parts:
            self._parts.append(data)
            parts, self._parts = self._parts, []
            data = "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]
        self._size = 0
        return Message(data)
