"""Server frames for outgoing messages, and the cache that frames a broadcast once.

Without an extension a server frame is a pure function of the message (RFC 6455
section 5.2: unmasked, one frame with FIN set), so the same message object sent to
many sockets -- a broadcast -- needs framing only once. :class:`FrameCache` remembers
the last message it framed; the server keeps one for all its sockets and hands it to
each :class:`~kitpy.protocol.websocket.WebSocketProtocol`.
"""

from __future__ import annotations

import struct

__all__ = ("FrameCache", "control_frame", "frame")

_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def frame(message: str | bytes) -> bytes:
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


def control_frame(opcode: int, payload: bytes) -> bytes:
    """A server ping (0x9) or pong (0xA) frame: FIN set, unmasked, at most 125 bytes."""
    return bytes((0x80 | opcode, len(payload))) + payload


class FrameCache:
    """:func:`frame` that remembers the last message framed (by identity)."""

    __slots__ = ("_frame", "_message")

    def __init__(self) -> None:
        self._message: object = None
        self._frame = b""

    def frame(self, message: str | bytes) -> bytes:
        """The frame of ``message``; the same bytes again for the same object."""
        if self._message is message:
            return self._frame
        data = frame(message)
        self._message = message
        self._frame = data
        return data
