"""The plain-request reader on httptools (llhttp, a C parser): ``kitpy[fast]``.

The same contract as :mod:`kitpy.protocol.http11.plain`, the same answers: a head
whole in the buffer is taken only when it is in the plain subset h11 accepts, and
gives exactly what h11 would make of it; anything else answers None and goes,
untouched, to the h11 reference path. llhttp does the tokenizing; what it would
accept beyond that subset is refused here with a few checks that run at C speed
over the whole head:

- every line ends in CRLF (no bare CR or LF anywhere), no NUL, VT or FF;
- the request line is exactly ``METHOD SP target SP HTTP/1.x CRLF`` (llhttp would
  skip leading empty lines and repeated spaces, h11 reads those differently);
- the target is visible ASCII, the version 1.0 or 1.1;
- llhttp reported one header per line (nothing folded, nothing skipped);
- the rules of the plain reader: one Host (at most one in 1.0), at most one
  Content-Length of 1-20 digits, no Transfer-Encoding, no Upgrade.

llhttp refuses more than h11 does (unknown methods, control bytes in a value,
obs-fold): such heads go to h11 too, which makes the decision it always makes.

Heads shorter than :data:`NATIVE_FROM` bytes are read by the plain reader instead:
on a two-line head llhttp's fixed cost (a parser object, calls back into Python)
is more than the whole regex read; from about six headers on llhttp is faster.
``tests/protocol/test_http11_fast_path.py`` holds this reader, the plain one and h11
to the same events, byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

import httptools

from kitpy.protocol.events import RequestHead
from kitpy.protocol.http11.plain import plain_request, read_plain

__all__ = ("NATIVE_FROM", "parse_native_head", "read_head")

#: Head size in bytes from which llhttp reads it (below: the plain reader).
NATIVE_FROM = 256

_BAD_TARGET = re.compile(rb"[^\x21-\x7e]")
_VERSIONS = {b"0": "1.0", b"1": "1.1"}
_REFUSED = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class _Collector:
    """llhttp's callbacks for one head: the target and the (name, value) pairs."""

    __slots__ = ("headers", "target")

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the OWS before a value, not the OWS after it.
        self.headers.append((name.lower(), value.rstrip(b" \t")))


def read_head(head: bytes) -> RequestHead | None:
    """The reader of ``fast="httptools"``: llhttp from :data:`NATIVE_FROM` bytes on.

    ``head`` is the request head without its final CRLF CRLF.
    """
    if len(head) + 4 < NATIVE_FROM:
        return read_plain(head)
    return parse_native_head(head + b"\r\n\r\n", len(head))


def parse_native_head(buf: bytes, end: int) -> RequestHead | None:
    """Parse the plain request head ``buf[: end + 4]`` with llhttp; None: let h11 decide."""
    raw = buf[: end + 4]
    lines = raw.count(b"\r\n")
    if (
        raw.count(b"\n") != lines
        or raw.count(b"\r") != lines
        or b"\x00" in raw
        or b"\x0b" in raw
        or b"\x0c" in raw
    ):
        return None
    collector = _Collector()
    parser: Any = httptools.HttpRequestParser(collector)
    try:
        parser.feed_data(raw)
    except _REFUSED:
        return None
    method: bytes = parser.get_method()
    target = collector.target
    headers = collector.headers
    # The request line exactly as the plain grammar has it (the version read from
    # it, where llhttp read it too), then one header per line.
    line_end = len(method) + len(target) + 10
    version = _VERSIONS.get(raw[line_end - 1 : line_end])
    if (
        version is None
        or raw[line_end : line_end + 2] != b"\r\n"
        or not raw.startswith(method + b" " + target + b" HTTP/1.")
        or len(headers) != lines - 2
        or not target
        or _BAD_TARGET.search(target) is not None
    ):
        return None
    return plain_request(method.decode("ascii"), target.decode("latin-1"), version, headers)
