"""The fast decoder of client frames (no extension) against wsproto's verdicts.

The reference is the same :class:`WebSocketProtocol` built with ``fast=False``:
wsproto parses the frames and ``FrameWatch`` reads their headers for the size limit.
Both must give the same messages, pongs, close handshake and error code for any frame
sequence, valid or not, cut anywhere.
"""

from __future__ import annotations

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from kitpy.protocol import (
    NEED_DATA,
    CloseReceived,
    ConnectionClosed,
    Limits,
    Message,
    ProtocolError,
)
from kitpy.protocol.websocket import WebSocketProtocol
from kitpy.protocol.websocket.decoder import unmask

LIMIT = 300


def clock() -> float:
    return 0.0


def frame(
    opcode: int, payload: bytes, *, fin: bool, rsv: int, mask: bool, width: int, declared: int
) -> bytes:
    """A client frame; ``width`` 0/2/8 picks the length encoding (maybe non-minimal)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if mask else 0
    if width == 0 and declared < 126:
        head = bytes((first, bit | declared))
    elif width == 2 or (width == 0 and declared < 65536):
        head = struct.pack("!BBH", first, bit | 126, declared & 0xFFFF)
    else:
        head = struct.pack("!BBQ", first, bit | 127, declared)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


CLOSE_CODES = [1000, 1001, 1003, 1004, 1005, 1006, 1011, 1012, 1013, 1014, 1015, 999]
CLOSE_CODES += [2999, 3000, 4999, 5000]


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([0, 0, 1, 1, 1, 2, 2, 2, 8, 9, 9, 10, 3, 0xB]))
    if opcode == 1 or opcode == 0:
        if draw(st.integers(0, 3)):
            text = draw(st.text(max_size=30)).encode("utf-8", "surrogatepass")
            cut = draw(st.integers(0, len(text)))  # maybe mid-character: fragments join
            payload = text[:cut] if draw(st.booleans()) else text
        else:
            payload = draw(st.binary(max_size=20))
    elif opcode == 8:
        choice = draw(st.integers(0, 4))
        if choice == 0:
            payload = b""
        elif choice == 1:
            payload = b"\x03"
        else:
            code = draw(st.sampled_from(CLOSE_CODES))
            reason = draw(st.sampled_from([b"", b"bye", b"\xff", "\u00e9".encode(), b"\xc3"]))
            payload = struct.pack("!H", code) + reason
    else:
        payload = bytes(draw(st.sampled_from([0, 1, 5, 125, 126, 200])))
    fin = draw(st.integers(0, 3)) > 0 if opcode else draw(st.booleans())
    rsv = 0 if draw(st.integers(0, 30)) else draw(st.integers(1, 7))
    mask = draw(st.integers(0, 30)) > 0
    width = draw(st.sampled_from([0] * 24 + [2, 8]))
    declared = len(payload)
    if opcode <= 2 and not draw(st.integers(0, 15)):  # claims more than it brings
        declared = draw(st.sampled_from([LIMIT, LIMIT + 1, 70_000, 2**63 + 5]))
        if declared >= 2**63:
            width = 8
    return frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, width=width, declared=declared)


def drive(pieces: list[bytes], *, fast: bool) -> tuple[list[object], bytes]:
    """Events (messages, pongs, the close or error code) and bytes sent, to EOF."""
    conn = WebSocketProtocol(Limits(max_ws_message_bytes=LIMIT), clock, fast=fast)
    assert conn.decodes_fast is fast
    queue = [*pieces, b""]
    seen: list[object] = []
    sent = b""
    for _ in range(1000):
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            seen.append(("error", exc.close_code))
            sent += conn.close(exc.close_code or 1002)
            break
        sent += conn.data_to_send()
        if event is NEED_DATA:
            conn.receive_data(queue.pop(0))
            continue
        if isinstance(event, Message):
            seen.append(event.data)
        elif isinstance(event, CloseReceived):
            seen.append(("close", event.code, event.reason, conn.close_state))
            break
        elif isinstance(event, ConnectionClosed):
            seen.append("eof")
            break
        else:
            seen.append("pong")
    return seen, sent


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(raw) + 1) for p in points} | {0, len(raw)})
    return [raw[a:b] for a, b in zip(marks, marks[1:], strict=False) if b > a]


@settings(max_examples=600, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=10), st.lists(st.integers(0, 10**6), max_size=8))
def test_the_decoder_agrees_with_wsproto(sequence: list[bytes], points: list[int]) -> None:
    raw = b"".join(sequence)
    pieces = cut(raw, points)
    expected = drive(pieces, fast=False)
    assert drive(pieces, fast=True) == expected
    assert drive([raw[i : i + 1] for i in range(len(raw))], fast=True) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 10**6), max_size=4))
def test_random_bytes_get_the_same_verdict(raw: bytes, points: list[int]) -> None:
    pieces = cut(raw, points)
    assert drive(pieces, fast=True) == drive(pieces, fast=False)


@given(st.binary(max_size=1100), st.binary(min_size=4, max_size=4))
def test_unmask_is_xor_with_the_repeated_key(data: bytes, key: bytes) -> None:
    assert unmask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


def test_unmask_odd_lengths() -> None:
    key = b"\x01\x80\xff\x7e"
    for size in [*range(0, 20), 125, 126, 127, 65535, 65537]:
        data = os.urandom(size)
        assert unmask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))
