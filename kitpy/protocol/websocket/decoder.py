"""The fast decoder of client frames, used when no extension was negotiated.

:class:`FrameDecoder` reads the client's frames without wsproto -- header, unmasking,
UTF-8, fragments, control frames -- with the same verdicts as the wsproto reference
path (:mod:`kitpy.protocol.websocket.reference`), at the same byte, for a fraction
of the CPU. ``tests/protocol/test_websocket_incoming.py`` holds the two to the same
messages, pongs, close handshake and error codes for any frame sequence, cut anywhere.
"""

from __future__ import annotations

import codecs

from kitpy.protocol.events import Message, ProtocolError

__all__ = ("FrameDecoder", "peer_close_problem", "unmask")


def unmask(data: bytes, key: bytes) -> bytes:
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


def peer_close_problem(payload: bytes) -> ProtocolError | None:
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


_UTF8 = codecs.getincrementaldecoder("utf-8")


class FrameDecoder:
    """The client's frames, decoded without wsproto, when no extension was negotiated.

    Makes the decisions wsproto and ``FrameWatch`` make together, in the same
    order and at the same byte: a header is refused (1002) for a reserved opcode, a
    fragmented or over-long control frame, a non-minimal or 64-bit length with its top
    bit set, an RSV bit, no mask; a valid header whose declared length takes its
    message over ``limit`` is 1009 at once (the declared lengths add up per message as
    ``FrameWatch`` counts them); the continuation rules (1002) are applied when
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
        #: The UTF-8 decoder of a text message that comes in pieces (None between them).
        self._utf8: codecs.IncrementalDecoder | None = None
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
                payload = unmask(buf[pos : pos + remaining], self._key)
                pos += remaining
                self._opcode = -1
                if opcode == 0x8:
                    problem = peer_close_problem(payload)
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
            piece = unmask(buf[pos : pos + take], key)
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
                        if not remaining and self._fin:  # a whole text message at once
                            try:
                                text = piece.decode("utf-8")
                            except UnicodeDecodeError as exc:
                                raise self._fail(str(exc), 1007) from None
                            self._message = 0
                            self._pos = pos
                            self._buf = buf
                            return Message(text)
                        self._utf8 = _UTF8()
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
                utf8 = self._utf8
                assert utf8 is not None
                try:
                    data = utf8.decode(piece, finished)
                except UnicodeDecodeError as exc:
                    raise self._fail(str(exc), 1007) from None
            if not finished:
                self._parts.append(data)
                continue
            self._message = 0
            self._utf8 = None
            parts = self._parts
            if parts:
                parts.append(data)
                self._parts = []
                data = "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]
            self._pos = pos
            self._buf = buf
            return Message(data)
        if pos >= end:  # all read: an idle socket keeps no buffer
            buf = b""
            pos = 0
        self._pos = pos
        self._buf = buf
        return None
