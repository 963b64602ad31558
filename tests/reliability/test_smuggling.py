"""Issue #7, part 1: request smuggling attempts are refused.

Each vector is checked on the sans-IO parser (first event: a 400) and on a real
server, where it is followed by a pipelined ``GET /smuggled``: the server must answer
one 400 and close, never answer the smuggled request. Vectors kitpy does not refuse
yet are in test_found_bugs.py (xfail until fixed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import module_server
from .helpers import HOST, Server, exchange
from .sites import FAST_LIMITS, PING
from .test_protocol_fuzz import drive_http

H = b"Host: 127.0.0.1\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

REFUSED = {
    # issue #7's list; h11 tolerates these, kitpy refuses them since 1cc3cad
    "cl-duplicate-same": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
    "cl-list-same": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nabcde",
    "obs-fold": b"GET /ping HTTP/1.1\r\n" + H + b"X-A: a\r\n folded\r\n\r\n",
    "obs-fold-te": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "bare-lf": b"GET /ping HTTP/1.1\nHost: 127.0.0.1\n\n",
    "bare-lf-header": b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\nX-A: b\r\n\r\n",
    "bare-lf-chunk": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n5\nabcde\n0\n\n",
    # RFC 9112 6.1: both framings -> refuse (or at least close after responding)
    "cl-then-te": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-then-cl": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "cl-conflict": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
    "cl-plus": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nabcde",
    "cl-negative": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
    "cl-hex": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nabcde",
    "cl-huge": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 1" + b"0" * 30 + b"\r\n\r\n",
    "cl-list-differs": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nabcde",
    "te-unknown": b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te-chunked-not-last": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "te-duplicate": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-space-before-colon": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "te-vertical-tab": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    "chunk-size-overflow": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk-size-0x": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n",
    "chunk-no-crlf": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcdeXX0\r\n\r\n",
    "bare-cr": b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\rX-A: b\r\n\r\n",
    "nul-in-value": b"GET /ping HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
    "space-before-first-header": b"GET /ping HTTP/1.1\r\n Host: 127.0.0.1\r\n\r\n",
    "two-hosts": b"GET /ping HTTP/1.1\r\n" + H + b"Host: evil\r\n\r\n",
    "no-host": b"GET /ping HTTP/1.1\r\n\r\n",
    "space-in-target": b"GET /ping x HTTP/1.1\r\n" + H + b"\r\n",
    "http09": b"GET /ping\r\n\r\n",
    "high-byte-target": b"GET /\xff HTTP/1.1\r\n" + H + b"\r\n",
}


#: Refused with another status than 400: a well-formed chunk size above max_body_bytes.
STATUS = {"chunk-size-overflow": 413}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_by_the_parser(name: str) -> None:
    events = drive_http([REFUSED[name] + SMUGGLED])
    errors = [e for e in events if e[0] == "error"]
    assert errors == [("error", STATUS.get(name, 400))], events
    heads = [e for e in events if e[0] == "head"]
    assert not any(h[2] == "/smuggled" for h in heads), events


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, PING, FAST_LIMITS)


def assert_refused(server: Server, raw: bytes, status: int = 400) -> None:
    got = exchange(server.port, raw + SMUGGLED, timeout=6)
    assert got.closed, f"connection left open after a refused request: {got.data[:200]!r}"
    statuses = got.statuses
    assert statuses == [status], (statuses, got.data[:400])
    assert got.data.count(b"HTTP/1.1 ") == 1, got.data  # nothing answered /smuggled


def test_refused_by_the_server(server: Server) -> None:
    failures = {}
    for name, raw in sorted(REFUSED.items()):
        try:
            assert_refused(server, raw, STATUS.get(name, 400))
        except AssertionError as exc:
            failures[name] = str(exc)[:300]
    assert not failures, failures
    assert server.alive()


def test_server_still_pipelines_valid_requests(server: Server) -> None:
    body = b"hello"
    raw = (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Content-Length: 5\r\n\r\n"
        + body
        + b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        + b"GET /ping HTTP/1.1\r\n"
        + H
        + b"Connection: close\r\n\r\n"
    )
    got = exchange(server.port, raw, timeout=6)
    assert got.statuses == [200, 200, 200], got.data[:500]
    assert got.responses()[-1].body == b"pong"


def test_get_with_body_is_not_a_second_request(server: Server) -> None:
    """A body on GET is a body (by Content-Length), never a pipelined request."""
    hidden = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        b"GET /ping HTTP/1.1\r\n"
        + H
        + b"Content-Length: %d\r\n\r\n" % len(hidden)
        + hidden
        + b"GET /ping HTTP/1.1\r\n"
        + H
        + b"Connection: close\r\n\r\n"
    )
    got = exchange(server.port, raw, timeout=6)
    assert got.statuses == [200, 200], got.data[:500]


_ = HOST
