"""The plain-request fast path of kitpy.protocol.http11 agrees with its h11 path.

The fast parser takes a strict subset of what h11 takes and hands everything else to
h11 untouched, so on any input the events (or the error status) must be the same as
when every request goes through h11.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kitpy.protocol import HTTP11Protocol, Limits, ProtocolError, RequestHead

PIECES = [
    b"GET / HTTP/1.1\r\n",
    b"POST /p?q=1 HTTP/1.1\r\n",
    b"GET /a HTTP/1.0\r\n",
    b"get / HTTP/1.1\r\n",
    b"GET  / HTTP/1.1\r\n",
    b"GET / HTTP/2.0\r\n",
    b"Host: a\r\n",
    b"Host: b:8000\r\n",
    b"Content-Length: 3\r\n",
    b"content-length: 3,3\r\n",
    b"Content-Length: 000000000000000000003\r\n",
    b"Content-Length: +3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n",
    b"Expect: 100-continue\r\n",
    b"X: y \r\n",
    b"X:\r\n",
    b"X :y\r\n",
    b" folded\r\n",
    b"X: a\nY: b\r\n",
    b"X: \x80\xff\r\n",
    b"X: a\x00b\r\n",
    b"X: a\tb\r\n",
    b"\r\n",
]
TAILS = [b"", b"abc", b"abcGET / HTTP/1.1\r\nHost: a\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"]


def events(data: bytes, cut: int, *, fast: bool) -> list[object]:
    """Events (and the error status) for ``data`` cut once; ``fast=False``: all h11."""
    conn = HTTP11Protocol(Limits(), lambda: 0.0, wall_clock=lambda: 0.0, fast=fast)
    for piece in (data[:cut], data[cut:]):
        if piece:  # b"" would mean the end of the stream
            conn.receive_data(piece)
    conn.receive_data(b"")
    seen: list[object] = []
    for _ in range(12):
        if conn.body_done:
            if not conn.keep_alive:
                break
            conn.start_next_cycle()
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            seen.append(("error", exc.status))
            break
        if isinstance(event, RequestHead):
            seen.append((event, conn.body_done, conn.keep_alive))
        else:
            seen.append(event)
        if type(event).__name__ == "ConnectionClosed":
            break
    return seen


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.sampled_from(PIECES), min_size=1, max_size=6),
    tail=st.sampled_from(TAILS),
    cut=st.integers(min_value=0, max_value=400),
)
def test_fast_path_matches_h11(lines: list[bytes], tail: bytes, cut: int) -> None:
    data = b"".join(lines) + b"\r\n" + tail
    cut = min(cut, len(data))
    assert events(data, cut, fast=True) == events(data, len(data), fast=False)


def test_plain_request_skips_h11() -> None:
    conn = HTTP11Protocol(Limits(), lambda: 0.0)
    conn.receive_data(b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
    head = conn.next_event()
    assert isinstance(head, RequestHead) and head.content_length == 2
    assert not conn.uses_h11


def test_fast_false_sends_every_request_to_h11() -> None:
    conn = HTTP11Protocol(Limits(), lambda: 0.0, fast=False)
    conn.receive_data(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.uses_h11
