"""The plain-request reader: a common request head parsed without h11.

A head qualifies when it is whole in the buffer, HTTP/1.0 or 1.1, has one Host, at
most one Content-Length of digits, no Transfer-Encoding and no Upgrade, and every
line matches the RFC 9112 grammar with CRLF line ends. The reader accepts a strict
subset of what h11 accepts and produces the same result for it; for anything else it
answers None and the request goes, untouched, to the h11 reference path
(:mod:`kitpy.protocol.http11.reference`). ``tests/protocol/test_http11_fast_path.py``
holds the two paths to the same events, byte for byte.

What it makes of a head is the :class:`~kitpy.protocol.events.RequestHead` itself,
built in one pass: the limits (431, 413) are the connection's to apply.
"""

from __future__ import annotations

from kitpy.protocol.events import RequestHead

__all__ = ("parse_plain_head", "plain_request", "read_plain")

# RFC 9112 sections 3 and 5, as h11 reads them (a token method, a target of visible
# ASCII, OWS around a field value of visible or obs-text bytes) but narrower:
# HTTP/1.0 and 1.1 only. Checked with bytes methods, not a regular expression (which
# costs several times as much on a short head), and as few calls as there are parts:
#
# - no NUL, VT or FF anywhere, every CR and LF part of a CRLF line end: deleting
#   those five bytes from the head takes away two per line end and nothing else. A
#   field value is then whatever h11 takes (any byte but NUL and whitespace other
#   than SP and HTAB), once the SP and HTAB around it are stripped;
# - the request line is three parts split by single spaces: a token (common methods
#   from a table), visible ASCII (ASCII text that is printable and holds no space:
#   the split took those), ``HTTP/1.0`` or ``HTTP/1.1``;
# - a field line is a token, a colon, the value (common names from a table).
_TOKEN_BYTES = b"-!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LINE_BYTES = b"\r\n\x00\x0b\x0c"
_VERSIONS = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}
#: Tokens every client sends, to their text.
_METHODS = {
    method.encode("ascii"): method
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
}
_COMMON_NAMES = (
    b"Host",
    b"User-Agent",
    b"Accept",
    b"Accept-Encoding",
    b"Accept-Language",
    b"Authorization",
    b"Cache-Control",
    b"Connection",
    b"Content-Length",
    b"Content-Type",
    b"Cookie",
    b"DNT",
    b"Expect",
    b"If-Modified-Since",
    b"If-None-Match",
    b"If-Range",
    b"Origin",
    b"Pragma",
    b"Priority",
    b"Range",
    b"Referer",
    b"Sec-Fetch-Dest",
    b"Sec-Fetch-Mode",
    b"Sec-Fetch-Site",
    b"Sec-Fetch-User",
    b"TE",
    b"Upgrade-Insecure-Requests",
    b"X-Forwarded-For",
    b"X-Forwarded-Proto",
    b"X-Real-IP",
    b"X-Request-Id",
)
#: Field names known to be tokens, as sent and in lower case, to their lower case.
_KNOWN_NAMES = {name: name.lower() for name in _COMMON_NAMES} | {
    name.lower(): name.lower() for name in _COMMON_NAMES
}
#: The names :func:`plain_request` reads the meaning of the head from.
_FRAMING = frozenset(
    {b"host", b"content-length", b"connection", b"expect", b"transfer-encoding", b"upgrade"}
)
_new = object.__new__


def parse_plain_head(buf: bytes, end: int) -> RequestHead | None:
    """Parse the plain request head ``buf[: end + 4]``; None: let h11 decide.

    Returns what h11 would give for it; None for anything outside the plain subset
    described in the module docstring, valid or not.
    """
    return read_plain(buf[:end])


def read_plain(head: bytes) -> RequestHead | None:
    """:func:`parse_plain_head` for the head without its final CRLF CRLF."""
    lines = head.split(b"\r\n")
    if len(head.translate(None, _LINE_BYTES)) + 2 * len(lines) - 2 != len(head):
        return None
    try:
        method, target, version_text = lines[0].split(b" ")
        text = target.decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    version = _VERSIONS.get(version_text)
    if version is None or not text or not text.isprintable():
        return None
    method_text = _METHODS.get(method)
    if method_text is None:
        if not method or method.translate(None, _TOKEN_BYTES):
            return None
        method_text = method.decode("ascii")
    del lines[0]
    headers: list[tuple[bytes, bytes]] = []
    known = _KNOWN_NAMES
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        lower = known.get(name)
        if lower is None:
            if not name or name.translate(None, _TOKEN_BYTES):
                return None
            lower = name.lower()
        headers.append((lower, value.strip(b" \t")))
    return plain_request(method_text, text, version, headers)


def plain_request(
    method: str, target: str, version: str, headers: list[tuple[bytes, bytes]]
) -> RequestHead | None:
    """The head of a request with these validated parts, if it is in the plain subset.

    One Host (RFC 9112 section 3.2: exactly one in HTTP/1.1, at most one in 1.0), at
    most one Content-Length of 1-20 digits (what h11 takes), no Transfer-Encoding and
    no Upgrade; else None. ``headers`` are (lower-case name, value) pairs.
    """
    host: bytes | None = None
    length: bytes | None = None
    connection: bytes | None = None
    expect: bytes | None = None
    for name, value in headers:
        if name in _FRAMING:
            if name == b"host":
                if host is not None:
                    return None
                host = value
            elif name == b"content-length":
                if length is not None or not value.isdigit() or len(value) > 20:
                    return None
                length = value
            elif name == b"connection":
                connection = value if connection is None else connection + b"," + value
            elif name == b"expect":
                expect = value  # the last one counts, as for h11
            else:  # transfer-encoding, upgrade: h11's
                return None
    http11 = version == "1.1"
    if host is None and http11:
        return None
    # Built field by field: calling the dataclass runs its __init__ in a frame of its
    # own, which costs about as much as the rest of this function.
    request = _new(RequestHead)
    request.method = method
    request.target = target
    request.headers = headers
    request.http_version = version
    request.host = "" if host is None else host.decode("latin-1")
    request.keep_alive = http11 and (connection is None or not _closes(connection))
    request.expect_continue = http11 and expect is not None and expect.lower() == b"100-continue"
    request.content_length = None if length is None else int(length)
    request.chunked = False
    request.upgrade = None
    return request


def _closes(connection: bytes) -> bool:
    """Whether (comma-joined) ``Connection`` values hold the ``close`` token."""
    return b"close" in {token.strip() for token in connection.lower().split(b",")}
