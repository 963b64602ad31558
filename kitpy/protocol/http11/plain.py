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

import re

__all__ = ("PlainHead", "parse_plain_head", "qualifies")

#: Method, target, HTTP version ("1.0" or "1.1") and (lower-case name, value) pairs.
PlainHead = tuple[bytes, bytes, str, list[tuple[bytes, bytes]]]

# RFC 9112 sections 3 and 5, as h11 reads them (a token method, a target of visible
# ASCII, OWS around a field value of visible or obs-text bytes) but narrower:
# HTTP/1.0 and 1.1 only.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])")
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*")
_DIGITS = re.compile(rb"[0-9]{1,20}")  # h11 takes up to 20 digits
#: Headers whose presence sends a request to h11 (framing, upgrades).
_SLOW_HEADERS = frozenset({b"transfer-encoding", b"upgrade"})
_VERSIONS = {b"0": "1.0", b"1": "1.1"}


def parse_plain_head(buf: bytes, end: int) -> PlainHead | None:
    """Parse the plain request head ``buf[: end + 4]``; None: let h11 decide.

    Returns what h11 would give for it; None for anything outside the plain subset
    described in the module docstring, valid or not.
    """
    lines = buf[:end].split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return None
    method, target, minor = match.groups()
    headers: list[tuple[bytes, bytes]] = []
    header_line = _HEADER_LINE.fullmatch
    for line in lines[1:]:
        found = header_line(line)
        if found is None:
            return None
        headers.append((found[1].lower(), found[2]))
    version = _VERSIONS[minor]
    if not qualifies(headers, version):
        return None
    return method, target, version, headers


def qualifies(headers: list[tuple[bytes, bytes]], version: str) -> bool:
    """Whether parsed (lower-case name, value) pairs stay in the plain subset.

    One Host (RFC 9112 section 3.2: exactly one in HTTP/1.1, at most one in 1.0), at
    most one Content-Length of digits, no Transfer-Encoding and no Upgrade.
    """
    hosts = 0
    lengths = 0
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            lengths += 1
            if _DIGITS.fullmatch(value) is None:
                return False
        elif name in _SLOW_HEADERS:
            return False
    return hosts <= 1 and lengths <= 1 and (hosts == 1 or version == "1.0")
