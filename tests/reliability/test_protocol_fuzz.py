"""Issue #7, part 1 (sans-IO half): fuzz kitpy.protocol with hypothesis.

HTTP/1.1 (``HTTP11Protocol``), for any bytes:
- the only exception is ``ProtocolError`` with status 400, 413 or 431;
- the events do not depend on how the bytes were cut into reads;
- an accepted head is clean (token method, no CTL in target, names or values) and a
  body never passes ``max_body_bytes``.

WebSocket (``WebSocketProtocol``), for any client frames: messages and the close
code agree with a model of RFC 6455 (as wsproto enforces it): 1002 protocol error,
1007 invalid UTF-8, 1009 too big, and the result does not depend on the reads either.

CI runs a few hundred examples per property (seconds); ``KITPY_SOAK=1`` runs many more.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kitpy.protocol.events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    CloseReceived,
    ConnectionClosed,
    Message,
    PongReceived,
    ProtocolError,
    RequestHead,
)
from kitpy.protocol.http11 import HTTP11Protocol
from kitpy.protocol.limits import Limits
from kitpy.protocol.websocket import WebSocketProtocol

from .helpers import close_code_of, parse_frames
from .strategies import (
    SOAK,
    FrameSpec,
    examples,
    frame_specs,
    http_inputs,
    model,
    splits,
)

LIMITS = Limits(
    max_header_bytes=4096, max_body_bytes=65536, max_ws_message_bytes=4096, ws_ping_interval=0
)
HTTP_STATUSES = {400, 413, 431}
WS_CODES = {1002, 1007, 1009}
MAX_STEPS = 10_000
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

FUZZ = settings(
    max_examples=examples(400, 5_000),
    # CI: the same examples every run (a failure is a regression, not bad luck);
    # the soak run explores new ones.
    derandomize=not SOAK,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No Phase.explain: it writes .hypothesis/patches/ into the working tree.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)


# The soak run is bounded by pytest-timeout too, just a longer one.
pytestmark = pytest.mark.timeout(900 if SOAK else 60)


class Clock:
    """A clock that never moves: timeouts are the server's business, not these tests'."""

    def __call__(self) -> float:
        return 1000.0


def drive_http(pieces: list[bytes], limits: Limits = LIMITS) -> list[object]:
    """Feed ``pieces`` one read at a time, then EOF; a normalised list of what happened."""
    conn = HTTP11Protocol(limits, Clock(), wall_clock=lambda: 0.0)
    out: list[object] = []
    queue = list(pieces) + [b""]
    body = bytearray()
    body_total = 0
    for _ in range(MAX_STEPS):
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            assert exc.status in HTTP_STATUSES, exc
            if body:
                out.append(("body", bytes(body)))
            out.append(("error", exc.status))
            return out
        if event is NEED_DATA:
            if not queue:
                out.append(("need-data-after-eof",))
                return out
            conn.receive_data(queue.pop(0))
            continue
        if isinstance(event, RequestHead):
            check_head(event)
            out.append(
                (
                    "head",
                    event.method,
                    event.target,
                    event.http_version,
                    tuple(event.headers),
                    event.content_length,
                    event.chunked,
                )
            )
            body_total = 0
            if conn.body_done:
                out.append(("end",))
                if not respond(conn):
                    return out
            continue
        if isinstance(event, BodyData):
            body += event.data
            body_total += len(event.data)
            assert body_total <= limits.max_body_bytes
            continue
        if isinstance(event, BodyEnd):
            if body:
                out.append(("body", bytes(body)))
                body.clear()
            out.append(("end",))
            if not respond(conn):
                return out
            continue
        assert isinstance(event, ConnectionClosed), event
        out.append(("closed",))
        return out
    raise AssertionError("the HTTP parser did not finish within MAX_STEPS events")


def respond(conn: HTTP11Protocol) -> bool:
    data, _ = conn.encode_response(200, [("content-type", "text/plain")], b"ok")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    if not conn.keep_alive:
        return False
    conn.start_next_cycle()
    return True


def check_head(head: RequestHead) -> None:
    assert TOKEN.fullmatch(head.method.encode("latin-1")), head.method
    assert head.target and not re.search(r"[\x00-\x20\x7f]", head.target), head.target
    for name, value in head.headers:
        assert TOKEN.fullmatch(name) and name == name.lower(), name
        assert not re.search(rb"[\x00\r\n]", value), value
        assert value == value.strip(b" \t"), value
    if head.content_length is not None:
        assert head.content_length <= LIMITS.max_body_bytes


@FUZZ
@given(http_inputs())
def test_http_parser_never_crashes(data: bytes) -> None:
    drive_http([data])


def refusals_alike(events: list[object]) -> list[object]:
    """400 and 431 as one: a head both too large and malformed may get either,
    depending on whether the size or the syntax is noticed first (both close)."""
    return [("error", "400/431") if e in (("error", 400), ("error", 431)) else e for e in events]


@FUZZ
@given(st.data())
def test_http_parse_independent_of_reads(data: st.DataObject) -> None:
    raw = data.draw(http_inputs())
    whole = refusals_alike(drive_http([raw]))
    pieces = data.draw(splits(raw))
    assert refusals_alike(drive_http(pieces)) == whole, pieces
    bytewise = [bytes([b]) for b in raw[:600]] + [raw[600:]]
    assert refusals_alike(drive_http(bytewise)) == whole


@pytest.mark.parametrize("size", [4000, 4090, 4096, 4097, 4100, 5000])
def test_header_limit_independent_of_reads(size: int) -> None:
    """431 exactly when the head passes max_header_bytes, whether it came whole or not."""
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: "
    tail = b"\r\n\r\n"
    raw = head + b"a" * (size - len(head) - len(tail)) + tail
    assert len(raw) == size
    whole = drive_http([raw])
    assert drive_http([bytes([b]) for b in raw]) == whole
    assert drive_http([raw[: size // 2], raw[size // 2 :]]) == whole
    if size > LIMITS.max_header_bytes + 64:
        assert whole == [("error", 431)]


# -- WebSocket -----------------------------------------------------------------------------


def drive_ws(
    pieces: list[bytes], limits: Limits = LIMITS
) -> tuple[list[object], int | None, int | None]:
    """(messages, error close code, peer close code) after feeding ``pieces`` then EOF."""
    conn = WebSocketProtocol(limits, Clock())
    messages: list[object] = []
    queue = list(pieces) + [b""]
    for _ in range(MAX_STEPS):
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            assert exc.close_code in WS_CODES, exc
            sent, _ = parse_frames(conn.close(exc.close_code, exc.message[:100]))
            assert close_code_of(sent) == exc.close_code, sent  # a close frame goes out
            return messages, exc.close_code, None
        if event is NEED_DATA:
            if not queue:
                return messages, None, None
            conn.receive_data(queue.pop(0))
            continue
        if isinstance(event, Message):
            messages.append(event.data)
        elif isinstance(event, CloseReceived):
            sent, _ = parse_frames(conn.data_to_send())
            assert close_code_of(sent) is not None, "a close frame must be answered with one"
            return messages, None, event.code
        elif isinstance(event, ConnectionClosed):
            return messages, None, None
        else:
            assert isinstance(event, PongReceived), event
        conn.data_to_send()  # pongs to our... the peer's pings
    raise AssertionError("the WebSocket parser did not finish within MAX_STEPS events")


@FUZZ
@given(st.lists(frame_specs(), min_size=1, max_size=12))
def test_ws_frames_follow_the_model(frames: list[FrameSpec]) -> None:
    expected = model(frames, LIMITS.max_ws_message_bytes)
    messages, error, close = drive_ws([b"".join(f.encode() for f in frames)])
    assert messages == expected.messages
    assert error == expected.error, (error, expected)
    assert close == expected.close, (close, expected)


@FUZZ
@given(st.data())
def test_ws_parse_independent_of_reads(data: st.DataObject) -> None:
    frames = data.draw(st.lists(frame_specs(), min_size=1, max_size=8))
    raw = b"".join(f.encode() for f in frames)
    whole = drive_ws([raw])
    assert drive_ws(data.draw(splits(raw))) == whole


@FUZZ
@given(st.binary(max_size=300))
def test_ws_random_bytes_never_crash(raw: bytes) -> None:
    drive_ws([raw])


@pytest.mark.parametrize("total", [4096, 4097, 100_000])
def test_ws_fragmented_message_limit(total: int) -> None:
    """The limit counts a whole message, not one frame: many small fragments add up."""
    piece = 1000
    frames = []
    sent = 0
    while sent < total:
        size = min(piece, total - sent)
        opcode = 0x2 if sent == 0 else 0x0
        frames.append(FrameSpec(opcode, bytes(size), fin=sent + size >= total))
        sent += size
    messages, error, _ = drive_ws([b"".join(f.encode() for f in frames)])
    if total <= LIMITS.max_ws_message_bytes:
        assert (messages, error) == ([bytes(total)], None)
    else:
        assert (messages, error) == ([], 1009)
