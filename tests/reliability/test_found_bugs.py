"""Bugs the reliability suite found, one test each, until they are fixed.

Each test states the expected behaviour; while the bug is open it is marked
``xfail(strict=True)`` with the precise bug as reason, so CI stays green and the fix
flips it to XPASS (a failure under strict), telling whoever fixed it to drop the mark.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import kitpy
from kitpy.runtime.results import to_response

from .helpers import write_site
from .inproc import call, site_app
from .sites import FAULTY, FAULTY_CONFIG

# -- 1. NaN / Infinity in a JSON body --------------------------------------------------------


@pytest.mark.xfail(
    reason="kitpy/http/response.py json() and runtime/results.py dict body: json.dumps "
    "allows NaN/Infinity, so {'x': float('nan')} is sent as 200 with the invalid JSON "
    "'{\"x\":NaN}' that JSON.parse rejects; expected a clear error (ValueError -> 500 "
    "naming the route), as for any other body that is not JSON",
    strict=True,
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_json_body_refuses_nan(value: float) -> None:
    with pytest.raises((ValueError, TypeError)):
        kitpy.json({"x": value})
    with pytest.raises(Exception, match="JSON"):
        to_response({"body": {"x": value}}, "routes/x.py: get()")


@pytest.mark.xfail(
    reason="a handler returning {'body': {'x': float('nan')}} answers 200 with the "
    "invalid JSON body '{\"x\":NaN}' instead of a 500",
    strict=True,
)
@pytest.mark.anyio
async def test_nan_body_over_the_app_is_500(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", FAULTY, FAULTY_CONFIG)
    async with site_app(site, tmp_path / "state") as app:
        answer = await call(app, "/fault/garbage/nan_json")
    assert answer.status == 500, answer


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
