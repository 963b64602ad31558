"""The plain-request fast paths of kitpy.protocol.http11 agree with its h11 path.

Each fast reader (the pure-Python one, ``fast=True``, and the httptools one,
``fast="httptools"``) takes a strict subset of what h11 takes and hands everything
else to h11 untouched, so on any input the events (or the error status) must be the
same as when every request goes through h11.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kitpy.protocol import HTTP11Protocol, Limits, ProtocolError, RequestHead
from kitpy.protocol.http11.plain import parse_plain_head

try:  # kitpy[fast]; the test extra installs it, so CI runs every reader
    from kitpy.protocol.http11 import native
    from kitpy.protocol.http11.native import parse_native_head
except ImportError:
    native = None  # type: ignore[assignment]

needs_httptools = pytest.mark.skipif(native is None, reason="httptools is not installed")
#: "llhttp": fast="httptools" with llhttp reading every head, short ones included.
FAST: tuple[bool | str, ...] = (True,) if native is None else (True, "httptools", "llhttp")

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
    b"X: a\x01b\r\n",
    b"X: a\x7f\r\n",
    b"X: \t a b\t \r\n",
    b"X: a\rb\r\n",
    b"FOO / HTTP/1.1\r\n",
    b"CONNECT a:1 HTTP/1.1\r\n",
    b"GET /\x7f HTTP/1.1\r\n",
    b"GET /\x80 HTTP/1.1\r\n",
    b"GET * HTTP/1.1\r\n",
    b"GET http://a/b HTTP/1.1\r\n",
    b"GET / HTTP/1.1 \r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"\r\n",
]
TAILS = [b"", b"abc", b"abcGET / HTTP/1.1\r\nHost: a\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"]


def events(data: bytes, cut: int, *, fast: bool | str) -> list[object]:
    """Events (and the error status) for ``data`` cut once; ``fast=False``: all h11."""
    if fast == "llhttp":
        saved, native.NATIVE_FROM = native.NATIVE_FROM, 0
        try:
            return events(data, cut, fast="httptools")
        finally:
            native.NATIVE_FROM = saved
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


@pytest.mark.parametrize("fast", FAST)
@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.sampled_from(PIECES), min_size=1, max_size=6),
    tail=st.sampled_from(TAILS),
    cut=st.integers(min_value=0, max_value=400),
)
def test_fast_path_matches_h11(fast: bool | str, lines: list[bytes], tail: bytes, cut: int) -> None:
    data = b"".join(lines) + b"\r\n" + tail
    cut = min(cut, len(data))
    assert events(data, cut, fast=fast) == events(data, len(data), fast=False)
    _same_where_both_take(data)


def _same_where_both_take(data: bytes) -> None:
    """llhttp takes no head the plain reader refuses, and makes the same of the rest."""
    end = data.find(b"\r\n\r\n")
    if end != -1 and native is not None:
        taken = parse_native_head(data, end)
        if taken is not None:
            assert taken == parse_plain_head(data, end)


# Heads assembled piece by piece, mostly valid (so the readers take them and what
# they make of them is compared), with bytes the grammar does not allow mixed in:
# CTLs, DEL, obs-text, CR, LF, NUL, spaces where they do not belong.
_GOOD_NAME = st.sampled_from([b"X", b"Accept", b"x-y", b"Cookie", b"A1"])
_BAD_NAME = st.lists(st.sampled_from(list(b"Hx-:Ca \t\x00o")), max_size=6).map(bytes)
_NAME = st.one_of(_GOOD_NAME, _GOOD_NAME, _GOOD_NAME, _BAD_NAME)
_VALUE_BYTES = b"aab 1\t,;=/" * 4 + b"\x00\x01\x7f\x80\xff\r\n"
_VALUE = st.lists(st.sampled_from(list(_VALUE_BYTES)), max_size=8).map(bytes)
_COLON = st.sampled_from([b":", b": ", b": ", b":\t", b" :"])
_OWS = st.sampled_from([b"", b"", b" ", b"\t", b" \t "])
_HEADER = st.tuples(_NAME, _COLON, _VALUE, _OWS).map(b"".join)
_COMMON = st.sampled_from([b"Host: b", b"Content-Length: 2", b"Connection: close"])
_METHOD = st.sampled_from([b"GET"] * 4 + [b"POST", b"PATCH", b"FOO", b"get", b""])
_TARGET = st.sampled_from([b"/"] * 3 + [b"/a?b=c#d", b"*", b"/\x7f", b"/a b", b"http://h/p", b""])
_SEP = st.sampled_from([b" "] * 6 + [b"  ", b"\t"])
_VERSION = st.sampled_from([b"HTTP/1.1"] * 4 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 "])


@settings(max_examples=600, deadline=None)
@example(b"GET", b" ", b"/", b"HTTP/1.1", b"", [b"Host: a"], [b"X: y \t"], b"")
@example(b"GET", b"  ", b"/", b"HTTP/1.1", b"\r\n", [b"Host: a"], [], b"")
@example(b"GET", b" ", b"/", b"HTTP/1.1", b"", [b"Host: a"], [b"X: a\x01"], b"")
@given(
    method=_METHOD,
    sep=_SEP,
    target=_TARGET,
    version=_VERSION,
    lead=st.sampled_from([b""] * 6 + [b"\r\n"]),
    host=st.sampled_from([[b"Host: a"]] * 6 + [[]]),
    headers=st.lists(st.one_of(_COMMON, _HEADER, _HEADER, _HEADER), max_size=5),
    tail=st.sampled_from(TAILS),
)
def test_readers_agree_with_h11_on_assembled_heads(
    method: bytes,
    sep: bytes,
    target: bytes,
    version: bytes,
    lead: bytes,
    host: list[bytes],
    headers: list[bytes],
    tail: bytes,
) -> None:
    line = method + sep + target + b" " + version
    data = lead + b"\r\n".join([line, *host, *headers]) + b"\r\n\r\n" + tail
    reference = events(data, len(data), fast=False)
    for fast in FAST:
        assert events(data, len(data), fast=fast) == reference, fast
    _same_where_both_take(data)


@needs_httptools
@pytest.mark.parametrize(
    "head",
    [
        b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /users/42?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: curl/8\r\n"
        b"Accept: */*\r\nCookie: a=b; c=d\r\nX-Trail: v \t\r\n\r\n",
        b"POST /p HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_the_native_reader_takes_common_heads_as_the_plain_one_does(head: bytes) -> None:
    end = head.find(b"\r\n\r\n")
    taken = parse_native_head(head, end)
    assert taken is not None
    assert taken == parse_plain_head(head, end)


@needs_httptools
def test_a_long_head_is_read_by_llhttp_and_skips_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counted(buf: bytes, end: int) -> object:
        calls.append(end)
        return parse_native_head(buf, end)

    monkeypatch.setattr(native, "parse_native_head", counted)
    conn = HTTP11Protocol(Limits(), lambda: 0.0, fast="httptools")
    padding = b"X-Padding: " + b"p" * native.NATIVE_FROM + b"\r\n"
    conn.receive_data(b"GET /x HTTP/1.1\r\nHost: a\r\n" + padding + b"Content-Length: 2\r\n\r\nhi")
    head = conn.next_event()
    assert isinstance(head, RequestHead) and head.content_length == 2
    assert (b"x-padding", b"p" * native.NATIVE_FROM) in head.headers
    assert not conn.uses_h11
    assert len(calls) == 1


def test_fast_httptools_without_httptools_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "httptools", None)  # import httptools -> ImportError
    monkeypatch.delitem(sys.modules, "kitpy.protocol.http11.native", raising=False)
    with pytest.raises(ValueError, match=r"kitpy\[fast\]"):
        HTTP11Protocol(Limits(), lambda: 0.0, fast="httptools")


def test_fast_takes_only_known_readers() -> None:
    with pytest.raises(ValueError, match="fast must be"):
        HTTP11Protocol(Limits(), lambda: 0.0, fast="llhttp")


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
