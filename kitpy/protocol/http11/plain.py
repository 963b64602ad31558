"""The plain-request reader: a common request head parsed without h11.

A head qualifies when it is whole in the buffer, HTTP/1.0 or 1.1, has one Host, at
most one Content-Length of digits, no Transfer-Encoding and no Upgrade, and every
line matches the RFC 9112 grammar with CRLF line ends. The reader accepts a strict
subset of what h11 accepts and produces the same result for it; for anything else it
answers None and the request goes, untouched, to the h11 reference path
(:mod:`kitpy.protocol.http11.reference`). ``tests/protocol/test_http11_fast_path.py``
holds the two paths to the same events, byte for byte.
"""

from __future__ import annotations

__all__ = ("PlainHead", "parse_plain_head", "qualifies")

#: Method, target, HTTP version ("1.0" or "1.1"), the (lower-case name, value) pairs,
#: and the same pairs as a dict (which keeps one value of a repeated name: it is the
#: whole story only when it is as long as the list).
PlainHead = tuple[bytes, bytes, str, list[tuple[bytes, bytes]], dict[bytes, bytes]]

# RFC 9112 sections 3 and 5, as h11 reads them (a token method, a target of visible
# ASCII, OWS around a field value of visible or obs-text bytes) but narrower:
# HTTP/1.0 and 1.1 only. Checked with bytes methods, not a regular expression (which
# costs several times as much on a short head):
#
# - no NUL, VT or FF anywhere, every CR and LF part of a CRLF line end: what remains
#   of the head once every other byte is deleted is one CRLF per line end. A field
#   value is then whatever h11 takes (any byte but NUL and whitespace other than SP
#   and HTAB), once the SP and HTAB around it are stripped;
# - the request line is three parts split by single spaces: a token, visible ASCII,
#   ``HTTP/1.0`` or ``HTTP/1.1``;
# - a field line is a token, a colon, the value (common names from a table).
_TOKEN_BYTES = b"-!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VISIBLE = bytes(range(0x21, 0x7F))
#: Every byte but the ones checked by the line-end rule (NUL, VT, FF, CR, LF).
_ORDINARY = bytes(b for b in range(256) if b not in b"\x00\x0b\x0c\r\n")
_VERSIONS = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}
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
#: Headers whose presence sends a request to h11 (framing, upgrades).
_SLOW_HEADERS = frozenset({b"transfer-encoding", b"upgrade"})


def parse_plain_head(buf: bytes, end: int) -> PlainHead | None:
    """Parse the plain request head ``buf[: end + 4]``; None: let h11 decide.

    Returns what h11 would give for it; None for anything outside the plain subset
    described in the module docstring, valid or not.
    """
    head = buf[:end]
    lines = head.split(b"\r\n")
    if head.translate(None, _ORDINARY) != b"\r\n" * (len(lines) - 1):
        return None
    request_line = lines[0].split(b" ")
    if len(request_line) != 3:
        return None
    method, target, version_text = request_line
    version = _VERSIONS.get(version_text)
    if (
        version is None
        or not method
        or not target
        or method.translate(None, _TOKEN_BYTES)
        or target.translate(None, _VISIBLE)
    ):
        return None
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
    fields = qualifies(headers, version)
    if fields is None:
        return None
    return method, target, version, headers, fields


def qualifies(headers: list[tuple[bytes, bytes]], version: str) -> dict[bytes, bytes] | None:
    """Whether parsed (lower-case name, value) pairs stay in the plain subset.

    One Host (RFC 9112 section 3.2: exactly one in HTTP/1.1, at most one in 1.0), at
    most one Content-Length of digits, no Transfer-Encoding and no Upgrade. None when
    they do not; else ``dict(headers)`` (see :data:`PlainHead`).
    """
    fields = dict(headers)
    if len(fields) != len(headers):
        return fields if _repeats_qualify(headers, version) else None
    if b"transfer-encoding" in fields or b"upgrade" in fields:
        return None
    length = fields.get(b"content-length")
    if length is not None and not _digits(length):
        return None
    return fields if b"host" in fields or version == "1.0" else None


def _digits(value: bytes) -> bool:
    """1 to 20 ASCII digits: a Content-Length h11 takes."""
    return value.isdigit() and len(value) <= 20


def _repeats_qualify(headers: list[tuple[bytes, bytes]], version: str) -> bool:
    """:func:`qualifies` for pairs in which some name repeats."""
    hosts = 0
    lengths = 0
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            lengths += 1
            if not _digits(value):
                return False
        elif name in _SLOW_HEADERS:
            return False
    return hosts <= 1 and lengths <= 1 and (hosts == 1 or version == "1.0")
