"""Bugs the reliability suite found, one test each, until they are fixed.

Each test states the expected behaviour; while the bug is open it is marked
``xfail(strict=True)`` with the precise bug as reason, so CI stays green and the fix
flips it to XPASS (a failure under strict), telling whoever fixed it to drop the mark.
"""

from __future__ import annotations

import math

import pytest

import kitpy

# -- 1. NaN / Infinity through the json() helper ---------------------------------------------


@pytest.mark.xfail(
    reason="kitpy/http/response.py json(): json.dumps allows NaN/Infinity, so "
    "json({'x': float('nan')}) is a 200 with the invalid JSON body '{\"x\":NaN}' that "
    "JSON.parse rejects; expected ValueError (a 500 naming the route), as a dict body "
    "now does (runtime/results.py, f6cfb4d)",
    strict=True,
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_json_helper_refuses_nan(value: float) -> None:
    with pytest.raises(ValueError):
        kitpy.json({"x": value})


# -- 2. Request smuggling vectors that are accepted ------------------------------------------
#
# Issue #7: "Smuggling attempts (Content-Length with Transfer-Encoding, duplicate
# Content-Length, obs-fold, bare LF) are refused." kitpy.protocol.http11 hands these
# to h11, which accepts them (RFC-lenient), and kitpy keeps the connection alive.

H = b"Host: 127.0.0.1\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

ACCEPTED_SMUGGLING = {
    # identical duplicates are merged by h11 into one Content-Length
    "cl-duplicate-same": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
    "cl-list-same": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nabcde",
    # obs-fold is unfolded ("Transfer-Encoding:\r\n chunked" becomes chunked)
    "obs-fold": b"GET /ping HTTP/1.1\r\n" + H + b"X-A: a\r\n folded\r\n\r\n",
    "obs-fold-te": b"POST /echo HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    # bare LF line endings are accepted as CRLF
    "bare-lf": b"GET /ping HTTP/1.1\nHost: 127.0.0.1\n\n",
    "bare-lf-header": b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\nX-A: b\r\n\r\n",
}

_SMUGGLING_REASON = (
    "kitpy/protocol/http11.py (h11) accepts {name}: expected ProtocolError(400) and a "
    "closed connection (issue #7; RFC 9110 8.6, RFC 9112 5.2 and 2.2 allow refusing); "
    "actual: the request is parsed and served"
)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(reason=_SMUGGLING_REASON.format(name=name), strict=True),
        )
        for name in sorted(ACCEPTED_SMUGGLING)
    ],
)
def test_smuggling_vector_refused_by_parser(name: str) -> None:
    from .test_protocol_fuzz import drive_http

    events = drive_http([ACCEPTED_SMUGGLING[name] + SMUGGLED])
    assert events[0] == ("error", 400), events
