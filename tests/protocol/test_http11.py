"""kitpy.protocol.http11 against an h11 client: bytes shuttled by hand, no sockets."""

from __future__ import annotations

from dataclasses import dataclass, field

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitpy.protocol import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    Framing,
    HTTP11Protocol,
    Limits,
    ProtocolError,
    RequestHead,
)
from kitpy.protocol.http11 import date_header, error_response, status_line


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Pair:
    """An h11 client and kitpy's server protocol, bytes carried by hand."""

    limits: Limits = field(default_factory=Limits)
    clock: FakeClock = field(default_factory=FakeClock)

    def __post_init__(self) -> None:
        self.client = h11.Connection(h11.CLIENT)
        self.server = HTTP11Protocol(self.limits, self.clock, wall_clock=lambda: 0.0)

    def send(self, *events: h11.Event) -> None:
        for event in events:
            data = self.client.send(event)
            if data:
                self.server.receive_data(data)

    def server_events(self) -> list[object]:
        events: list[object] = []
        while not self.server.body_done:
            event = self.server.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
            if isinstance(event, ConnectionClosed):
                break
        return events

    def to_client(self, data: bytes) -> list[h11.Event]:
        self.client.receive_data(data)
        events: list[h11.Event] = []
        while True:
            event = self.client.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return events
            assert not isinstance(event, type)
            events.append(event)
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return events


def get(target: str = "/", *headers: tuple[str, str]) -> h11.Request:
    return h11.Request(method="GET", target=target, headers=[("Host", "example.com"), *headers])


def test_get_round_trip() -> None:
    pair = Pair()
    pair.send(get("/a%20b?x=1", ("Accept", "*/*")), h11.EndOfMessage())
    [head] = pair.server_events()
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.host, head.http_version) == (
        "GET",
        "/a%20b?x=1",
        "example.com",
        "1.1",
    )
    assert head.keep_alive and pair.server.body_done and head.upgrade is None
    assert (b"accept", b"*/*") in head.headers
    data, framing = pair.server.encode_response(200, [("content-type", "text/plain")], b"hello")
    assert framing is Framing.DONE
    response, body, end = pair.to_client(data)
    assert isinstance(response, h11.Response) and response.status_code == 200
    headers = dict(response.headers)
    assert headers[b"content-length"] == b"5"
    assert headers[b"server"] == b"kitpy"
    assert headers[b"date"] == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert isinstance(body, h11.Data) and body.data == b"hello"
    assert isinstance(end, h11.EndOfMessage)
    assert pair.server.keep_alive


def test_pipelined_requests_come_one_cycle_at_a_time() -> None:
    pair = Pair()
    raw = (
        b"".join(f"GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in range(3))
        + b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    )
    pair.server.receive_data(raw)
    targets = []
    for _ in range(4):
        event = pair.server.next_event()
        assert isinstance(event, RequestHead)
        targets.append(event.target)
        body = []
        while not pair.server.body_done:
            chunk = pair.server.next_event()
            if isinstance(chunk, BodyData):
                body.append(chunk.data)
        pair.server.encode_response(204, [], b"")
        pair.server.start_next_cycle()
    assert targets == ["/0", "/1", "/2", "/p"]
    assert body == [b"abc"]
    assert pair.server.next_event() is NEED_DATA


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=20))
def test_any_split_of_the_bytes_gives_the_same_request(cuts: list[int]) -> None:
    raw = (
        b"POST /upload?x=1 HTTP/1.1\r\nHost: h:8000\r\nTransfer-Encoding: chunked\r\n"
        b"X-A: 1\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    server = HTTP11Protocol(Limits(), FakeClock())
    pieces, rest = [], raw
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    heads: list[RequestHead] = []
    body = b""
    for piece in pieces:
        if piece:
            server.receive_data(piece)
        while not server.body_done:
            event = server.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, RequestHead):
                heads.append(event)
            elif isinstance(event, BodyData):
                body += event.data
    assert [h.target for h in heads] == ["/upload?x=1"]
    assert heads[0].chunked and heads[0].host == "h:8000"
    assert body == b"hello world" and server.body_done


def test_streamed_body_arrives_in_chunks() -> None:
    pair = Pair()
    pair.send(
        h11.Request(
            method="POST",
            target="/",
            headers=[("Host", "x"), ("Content-Length", "10")],
        )
    )
    [head] = pair.server_events()
    assert isinstance(head, RequestHead) and head.content_length == 10
    pair.send(h11.Data(data=b"01234"))
    assert pair.server_events() == [BodyData(b"01234")]
    pair.send(h11.Data(data=b"56789"), h11.EndOfMessage())
    assert pair.server_events() == [BodyData(b"56789"), BodyEnd()]


def test_content_length_over_the_limit_is_413_at_the_head() -> None:
    pair = Pair(Limits(max_body_bytes=100))
    pair.send(
        h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "101")])
    )
    with pytest.raises(ProtocolError) as info:
        pair.server.next_event()
    assert info.value.status == 413
    assert pair.server.head is not None and pair.server.head.content_length == 101


def test_chunked_body_over_the_limit_is_413_once_it_passes() -> None:
    pair = Pair(Limits(max_body_bytes=10))
    pair.send(
        h11.Request(
            method="POST", target="/", headers=[("Host", "x"), ("Transfer-Encoding", "chunked")]
        ),
        h11.Data(data=b"x" * 8),
    )
    assert isinstance(pair.server.next_event(), RequestHead)
    assert pair.server.next_event() == BodyData(b"x" * 8)
    pair.send(h11.Data(data=b"x" * 8))
    with pytest.raises(ProtocolError, match="larger than 10 bytes") as info:
        pair.server.next_event()
    assert info.value.status == 413


@pytest.mark.parametrize("in_one_piece", [True, False], ids=["whole", "trickled"])
def test_header_block_over_the_limit_is_431(in_one_piece: bool) -> None:
    server = HTTP11Protocol(Limits(max_header_bytes=1024), FakeClock())
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    pieces = [raw] if in_one_piece else [raw[i : i + 100] for i in range(0, len(raw), 100)]
    with pytest.raises(ProtocolError) as info:
        for piece in pieces:
            server.receive_data(piece)
            while server.next_event() is not NEED_DATA:
                pass
    assert info.value.status == 431


def test_header_block_just_under_the_limit_passes() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 900 + b"\r\n\r\n"
    server = HTTP11Protocol(Limits(max_header_bytes=len(raw)), FakeClock())
    server.receive_data(raw + b"GET / HTTP/1.1\r\n")
    assert isinstance(server.next_event(), RequestHead)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", "malformed request line", id="no-version"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", "missing or repeated Host header", id="no-host"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
            "invalid header",
            id="space-in-name",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "invalid message framing",
            id="two-lengths",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "invalid message framing",
            id="bad-coding",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 3\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
            id="smuggling",
        ),
    ],
)
def test_malformed_request_is_400(raw: bytes, message: str) -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(raw)
    with pytest.raises(ProtocolError) as info:
        server.next_event()
    assert info.value.status == 400
    assert str(info.value) == f"Bad Request: {message}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Secret\x01: 1\r\n\r\n",
            "Bad Request: invalid header",
            id="header",
        ),
        pytest.param(
            b"GET /secret\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
            "Bad Request: malformed request line",
            id="request-line",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz-secret\r\n",
            "Bad Request: malformed chunked body",
            id="chunk-line",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcsecret\r\n",
            "Bad Request: malformed chunked body",
            id="chunk-footer",
        ),
    ],
)
def test_400_message_is_fixed_text(raw: bytes, message: str) -> None:
    """The message becomes the response body: no h11 wording, no client bytes."""
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(raw)
    with pytest.raises(ProtocolError) as info:
        while not isinstance(server.next_event(), type(NEED_DATA)):
            pass
    assert info.value.status == 400
    assert str(info.value) == message
    assert "secret" not in info.value.message


def test_bad_chunk_is_400() -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert isinstance(server.next_event(), RequestHead)
    with pytest.raises(ProtocolError) as info:
        server.next_event()
    assert info.value.status == 400


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def _body_events(server: HTTP11Protocol) -> list[object]:
    events: list[object] = []
    while not server.body_done:
        event = server.next_event()
        if event is NEED_DATA:
            break
        events.append(event)
    return events


@pytest.mark.parametrize("with_head", [True, False], ids=["with-head", "later"])
def test_chunk_size_over_the_limit_is_413_before_its_data(with_head: bool) -> None:
    server = HTTP11Protocol(Limits(max_body_bytes=100), FakeClock())
    line = b"ffffffffffffffffffff\r\nabc"
    server.receive_data(CHUNKED_HEAD + (line if with_head else b""))
    assert isinstance(server.next_event(), RequestHead)
    if not with_head:
        server.receive_data(line)
    with pytest.raises(ProtocolError, match="larger than 100 bytes") as info:
        server.next_event()
    assert info.value.status == 413


def test_chunk_size_is_judged_digit_by_digit() -> None:
    """A size line trickled one byte at a time fails at the digit that passes the limit."""
    server = HTTP11Protocol(Limits(max_body_bytes=0x100), FakeClock())
    server.receive_data(CHUNKED_HEAD)
    assert isinstance(server.next_event(), RequestHead)
    server.receive_data(b"10")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"0")  # 0x100: at the limit
    assert server.next_event() is NEED_DATA
    server.receive_data(b"1")  # 0x1001
    with pytest.raises(ProtocolError) as info:
        server.next_event()
    assert info.value.status == 413


def test_chunk_sizes_add_up_to_the_limit() -> None:
    server = HTTP11Protocol(Limits(max_body_bytes=10), FakeClock())
    server.receive_data(CHUNKED_HEAD + b"6;ext=1\r\nabcdef\r\n")
    assert isinstance(server.next_event(), RequestHead)
    assert _body_events(server) == [BodyData(b"abcdef")]
    server.receive_data(b"5\r\n")  # 6 + 5 > 10, refused before the 5 bytes come
    with pytest.raises(ProtocolError) as info:
        server.next_event()
    assert info.value.status == 413


def test_chunk_size_with_too_many_digits_is_400_at_once() -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(CHUNKED_HEAD + b"0" * 21)  # no line end yet: h11 would wait
    assert isinstance(server.next_event(), RequestHead)
    with pytest.raises(ProtocolError) as info:
        server.next_event()
    assert info.value.status == 400
    assert info.value.message == "Bad Request: malformed chunked body"


@given(
    sizes=st.lists(st.integers(1, 40), max_size=6),
    limit=st.integers(1, 120),
    cut=st.integers(1, 7),
)
def test_chunked_body_is_refused_exactly_when_its_sizes_pass_the_limit(
    sizes: list[int], limit: int, cut: int
) -> None:
    server = HTTP11Protocol(Limits(max_body_bytes=limit), FakeClock())
    body = b"".join(b"%x\r\n%b\r\n" % (n, b"x" * n) for n in sizes) + b"0\r\n\r\n"
    data = CHUNKED_HEAD + body
    received = b""
    try:
        for i in range(0, len(data), cut):
            server.receive_data(data[i : i + cut])
            while not server.body_done:
                event = server.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, BodyData):
                    received += event.data
    except ProtocolError as exc:
        assert exc.status == 413
        assert sum(sizes) > limit
        assert len(received) <= limit
    else:
        assert sum(sizes) <= limit
        assert received == b"x" * sum(sizes)


def test_chunks_within_the_limit_pass_with_trailers_and_pipelining() -> None:
    server = HTTP11Protocol(Limits(max_body_bytes=10), FakeClock())
    body = b"00005\r\nabcde\r\n5;a=b\r\nfghij\r\n0\r\nX-Trailer: ffffffff\r\n\r\n"
    pipelined = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    data = CHUNKED_HEAD + body + pipelined
    for i in range(len(data)):  # byte by byte: every split of every line
        server.receive_data(data[i : i + 1])
    assert isinstance(server.next_event(), RequestHead)
    events = _body_events(server)
    assert b"".join(e.data for e in events if isinstance(e, BodyData)) == b"abcdefghij"
    assert events[-1] == BodyEnd()
    server.start_next_cycle()
    head = server.next_event()
    assert isinstance(head, RequestHead) and head.target == "/next"


def test_deadline_idle_then_header_timeout_from_cycle_start() -> None:
    clock = FakeClock(1000.0)
    server = HTTP11Protocol(Limits(header_timeout=10, keepalive_timeout=5), clock)
    assert server.deadline() == 1005.0  # nothing yet: the keep-alive timeout
    clock.now = 1003.0
    server.receive_data(b"GET / HT")
    assert server.next_event() is NEED_DATA
    # A byte arrived: the header timeout, still counted from the start (no extension).
    assert server.deadline() == 1010.0
    clock.now = 1009.0
    server.receive_data(b"TP/1.1\r\n")
    assert server.deadline() == 1010.0
    server.receive_data(b"Host: x\r\n\r\n")
    assert isinstance(server.next_event(), RequestHead)
    assert server.deadline() == float("inf")
    server.encode_response(200, [], b"")
    clock.now = 2000.0
    server.start_next_cycle()
    assert server.deadline() == 2005.0


@pytest.mark.parametrize("fast", [True, False])
def test_deadline_counts_bytes_not_yet_read_and_pipelined(fast: bool) -> None:
    clock = FakeClock(1000.0)
    server = HTTP11Protocol(Limits(header_timeout=10, keepalive_timeout=5), clock, fast=fast)
    server.receive_data(b"GET / HTTP/1.1\r\nHo")  # buffered, not parsed yet
    assert server.deadline() == 1010.0
    server.receive_data(b"st: x\r\n\r\nGET /next HTTP/1.1\r\n")
    assert isinstance(server.next_event(), RequestHead)
    server.encode_response(200, [], b"")
    clock.now = 2000.0
    assert server.start_next_cycle()
    assert server.deadline() == 2010.0  # part of the next head came with the first
    server.receive_data(b"Host: x\r\n\r\n")
    assert isinstance(server.next_event(), RequestHead)
    server.encode_response(200, [], b"")
    clock.now = 3000.0
    assert not server.start_next_cycle()
    assert server.deadline() == 3005.0


def test_client_closing_between_requests() -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(b"")
    assert isinstance(server.next_event(), ConnectionClosed)


def test_head_request_announces_length_without_body() -> None:
    pair = Pair()
    pair.send(h11.Request(method="HEAD", target="/", headers=[("Host", "x")]), h11.EndOfMessage())
    pair.server_events()
    data, framing = pair.server.encode_response(200, [], b"hello world")
    assert framing is Framing.DONE and data.endswith(b"\r\n\r\n")
    response, end = pair.to_client(data)
    assert isinstance(response, h11.Response)
    assert dict(response.headers)[b"content-length"] == b"11"
    assert isinstance(end, h11.EndOfMessage)


def test_head_request_keeps_the_apps_length_for_an_empty_body() -> None:
    pair = Pair()
    pair.send(h11.Request(method="HEAD", target="/", headers=[("Host", "x")]), h11.EndOfMessage())
    pair.server_events()
    data, _ = pair.server.encode_response(200, [("content-length", "1234")], b"")
    assert b"content-length: 1234\r\n" in data


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    pair = Pair()
    pair.send(get(), h11.EndOfMessage())
    pair.server_events()
    data, framing = pair.server.encode_response(status, [], b"ignored")
    assert framing is Framing.DONE
    assert b"ignored" not in data and b"content-length" not in data
    response, end = pair.to_client(data)
    assert isinstance(response, h11.Response) and response.status_code == status


@pytest.mark.parametrize(
    ("method", "status", "headers", "body", "length", "framing"),
    [
        pytest.param("HEAD", 200, [], b"", b"content-length: 0", Framing.DONE, id="head-empty"),
        pytest.param("HEAD", 200, [("content-length", "5")], None, b"content-length: 5",
                     Framing.DONE, id="head-stream-length"),
        pytest.param("HEAD", 200, [], None, None, Framing.DONE, id="head-stream"),
        pytest.param("HEAD", 204, [("content-length", "5")], b"", None, Framing.DONE,
                     id="head-204"),
        pytest.param("GET", 304, [("content-length", "5")], None, b"content-length: 5",
                     Framing.DONE, id="304-length"),
        pytest.param("GET", 304, [("content-length", "x")], b"", None, Framing.DONE,
                     id="304-bad-length"),
        pytest.param("GET", 204, [("content-length", "5")], None, None, Framing.DONE, id="204"),
        pytest.param("GET", 200, [("content-length", "5x")], None,
                     b"transfer-encoding: chunked", Framing.CHUNKED, id="bad-length-stream"),
        pytest.param("GET", 200, [("content-length", "9")], b"abc", b"content-length: 3",
                     Framing.DONE, id="known-body"),
    ],
)  # fmt: skip
def test_length_line_and_framing_of_a_response(
    method: str,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes | None,
    length: bytes | None,
    framing: Framing,
) -> None:
    server = HTTP11Protocol(Limits(), FakeClock(), wall_clock=lambda: 0.0)
    server.receive_data(method.encode() + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.next_event()
    data, got = server.encode_response(status, headers, body)
    assert got is framing
    lines = data.split(b"\r\n")
    assert [line for line in lines if line.startswith((b"content-length", b"transfer"))] == (
        [] if length is None else [length]
    )
    assert data.endswith(
        b"\r\n\r\nabc" if body and method == "GET" and status == 200 else b"\r\n\r\n"
    )
    assert server.keep_alive


def test_streamed_response_is_chunked() -> None:
    pair = Pair()
    pair.send(get(), h11.EndOfMessage())
    pair.server_events()
    head, framing = pair.server.encode_response(200, [("transfer-encoding", "gzip")], None)
    assert framing is Framing.CHUNKED and b"transfer-encoding: chunked" in head
    data = head + pair.server.encode_body(b"abc") + pair.server.encode_body(b"")
    data += pair.server.encode_body(b"defg") + pair.server.encode_end()
    events = pair.to_client(data)
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"abcdefg"
    assert isinstance(events[-1], h11.EndOfMessage)
    assert pair.server.keep_alive


def test_streamed_response_with_the_apps_length() -> None:
    pair = Pair()
    pair.send(get(), h11.EndOfMessage())
    pair.server_events()
    head, framing = pair.server.encode_response(200, [("content-length", "6")], None)
    assert framing is Framing.LENGTH
    events = pair.to_client(
        head + pair.server.encode_body(b"abc") + pair.server.encode_body(b"def")
    )
    assert isinstance(events[-1], h11.EndOfMessage)
    assert pair.server.encode_end() == b""


def test_streamed_response_longer_or_shorter_than_its_length_fails() -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.next_event()
    server.encode_response(200, [("content-length", "2")], None)
    with pytest.raises(ValueError, match="longer"):
        server.encode_body(b"abc")
    assert not server.keep_alive
    server.encode_response(200, [("content-length", "5")], None)
    server.encode_body(b"ab")
    with pytest.raises(ValueError, match="shorter"):
        server.encode_end()


def test_http10_streamed_response_is_delimited_by_close() -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    head = server.next_event()
    assert isinstance(head, RequestHead) and not head.keep_alive
    data, framing = server.encode_response(200, [], None)
    assert framing is Framing.UNTIL_CLOSE
    assert b"connection: close" in data and b"chunked" not in data
    assert server.encode_body(b"x") == b"x"


@pytest.mark.parametrize(
    ("request_headers", "response_headers", "keep_alive"),
    [
        pytest.param([], [], True, id="default"),
        pytest.param([("Connection", "close")], [], False, id="client-close"),
        pytest.param([], [("connection", "close")], False, id="app-close"),
        pytest.param([("Connection", "keep-alive, Close")], [], False, id="token-list"),
    ],
)
def test_connection_close_is_honoured(
    request_headers: list[tuple[str, str]],
    response_headers: list[tuple[str, str]],
    keep_alive: bool,
) -> None:
    pair = Pair()
    pair.send(get("/", *request_headers), h11.EndOfMessage())
    pair.server_events()
    data, _ = pair.server.encode_response(200, response_headers, b"")
    assert pair.server.keep_alive is keep_alive
    assert (b"connection: close" in data) is not keep_alive


def test_expect_100_continue_is_sent_once() -> None:
    pair = Pair()
    pair.send(
        h11.Request(
            method="POST",
            target="/",
            headers=[("Host", "x"), ("Content-Length", "3"), ("Expect", "100-continue")],
        )
    )
    [head] = pair.server_events()
    assert isinstance(head, RequestHead) and head.expect_continue
    assert pair.server.waiting_for_continue
    interim = pair.server.continue_response()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    [event] = pair.to_client(interim)
    assert isinstance(event, h11.InformationalResponse) and event.status_code == 100
    assert pair.server.continue_response() == b""


def test_answering_without_reading_a_held_back_body_closes() -> None:
    pair = Pair()
    pair.send(
        h11.Request(
            method="POST",
            target="/",
            headers=[("Host", "x"), ("Content-Length", "3"), ("Expect", "100-continue")],
        )
    )
    pair.server_events()
    data, _ = pair.server.encode_response(401, [], b"no")
    assert not pair.server.keep_alive and b"connection: close" in data


@pytest.mark.parametrize(
    ("headers", "keep_alive"),
    [
        pytest.param([("Content-Length", "100")], True, id="small-unread-body-is-drained"),
        pytest.param([("Content-Length", str(200 * 1024))], False, id="large-unread-body"),
        pytest.param([("Transfer-Encoding", "chunked")], False, id="unread-chunked-body"),
    ],
)
def test_unread_body_decides_keep_alive(headers: list[tuple[str, str]], keep_alive: bool) -> None:
    pair = Pair()
    pair.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), *headers]))
    pair.server_events()
    pair.server.encode_response(200, [], b"")
    assert pair.server.keep_alive is keep_alive


def test_upgrade_header_is_reported_with_connection_upgrade() -> None:
    pair = Pair()
    pair.send(get("/ws", ("Connection", "keep-alive, Upgrade"), ("Upgrade", "WebSocket")))
    [head] = pair.server_events()
    assert isinstance(head, RequestHead) and head.upgrade == "websocket"
    pair = Pair()
    pair.send(get("/ws", ("Upgrade", "websocket")))
    [head] = pair.server_events()
    assert isinstance(head, RequestHead) and head.upgrade is None


def test_error_response_is_a_closing_plain_text_response() -> None:
    client = h11.Connection(h11.CLIENT)
    client.send(get())
    client.send(h11.EndOfMessage())
    client.receive_data(error_response(431, now=0))
    response = client.next_event()
    assert isinstance(response, h11.Response) and response.status_code == 431
    headers = dict(response.headers)
    assert headers[b"connection"] == b"close"
    data = client.next_event()
    assert isinstance(data, h11.Data)
    assert data.data == b"Request Header Fields Too Large\n"


def test_error_response_carries_the_request_id() -> None:
    data = error_response(400, "Bad Request: invalid header", now=0, request_id="abc123")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\nx-request-id: abc123" in head and body == b"Bad Request: invalid header\n"
    assert b"x-request-id" not in error_response(400, now=0)


def test_request_id_header_is_passed_on_and_the_servers_one_is_sent() -> None:
    pair = Pair()
    pair.send(get("/", ("X-Request-Id", "edge-1")), h11.EndOfMessage())
    [head, *_] = pair.server_events()
    assert isinstance(head, RequestHead) and (b"x-request-id", b"edge-1") in head.headers
    data, _ = pair.server.encode_response(200, [("x-request-id", "app")], b"", "edge-1")
    assert data.count(b"x-request-id:") == 1 and b"x-request-id: edge-1\r\n" in data


def test_status_lines_and_date() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(599) == b"HTTP/1.1 599 \r\n"
    assert date_header(0.5) == "date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
    assert date_header(86400) == "date: Fri, 02 Jan 1970 00:00:00 GMT\r\n"


def test_app_date_and_server_headers_win() -> None:
    pair = Pair()
    pair.send(get(), h11.EndOfMessage())
    pair.server_events()
    data, _ = pair.server.encode_response(200, [("server", "mine"), ("date", "then")], b"")
    assert data.count(b"server:") == 1 and b"server: mine" in data
    assert data.count(b"date:") == 1 and b"date: then" in data


def test_non_latin1_header_fails_to_encode() -> None:
    pair = Pair()
    pair.send(get(), h11.EndOfMessage())
    pair.server_events()
    with pytest.raises(UnicodeEncodeError):
        pair.server.encode_response(200, [("x-name", "\u2603")], b"")


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        Limits(max_body_bytes=0)
    with pytest.raises(ValueError, match="header_timeout"):
        Limits(header_timeout=0)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GET / HTTP/1.1\nHost: x\n\n", id="bare-lf"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", id="bare-lf-header"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n", id="obs-fold"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n",
            id="obs-fold-te",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nabcde",
            id="cl-duplicate-same",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nCONTENT-LENGTH: 5, 5\r\n\r\nabcde", id="cl-list-same"
        ),
    ],
)
def test_smuggling_vectors_h11_tolerates_are_400(raw: bytes) -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(raw + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        server.next_event()
    assert info.value.status == 400


def test_pipelined_heads_are_each_checked() -> None:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\nHost: x\n\n")
    assert isinstance(server.next_event(), RequestHead)
    server.encode_response(204, [], b"")
    server.start_next_cycle()
    with pytest.raises(ProtocolError):
        server.next_event()


def test_release_drops_the_parser_state_after_an_upgrade() -> None:
    conn = HTTP11Protocol(Limits(), lambda: 0.0)
    conn.receive_data(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nXY"
    )
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.trailing_data == b"XY"
    conn.release()
    assert conn.trailing_data == b""
