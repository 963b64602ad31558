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

#: Method, target, HTTP version ("1.0" or "1.1"), the (lower-case name, value) pairs,
#: and the same pairs as a dict (which keeps one value of a repeated name: it is the
#: whole story only when it is as long as the list).
PlainHead = tuple[bytes, bytes, str, list[tuple[bytes, bytes]], dict[bytes, bytes]]

# RFC 9112 sections 3 and 5, as h11 reads them (a token method, a target of visible
# ASCII, OWS around a field value of visible or obs-text bytes) but narrower:
# HTTP/1.0 and 1.1 only. The whole head is checked by one match, then its fields are
# taken by one findall: a line that does not match fails the first.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_LINE = rb"(" + _TOKEN + rb"):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*\r\n"
_HEAD = re.compile(
    rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])\r\n((?:" + _FIELD_LINE + rb")*)"
)
_FIELDS = re.compile(_FIELD_LINE)
_DIGITS = re.compile(rb"[0-9]{1,20}")  # h11 takes up to 20 digits
#: Headers whose presence sends a request to h11 (framing, upgrades).
_SLOW_HEADERS = frozenset({b"transfer-encoding", b"upgrade"})
_VERSIONS = {b"0": "1.0", b"1": "1.1"}


def parse_plain_head(buf: bytes, end: int) -> PlainHead | None:
    """Parse the plain request head ``buf[: end + 4]``; None: let h11 decide.

    Returns what h11 would give for it; None for anything outside the plain subset
    described in the module docstring, valid or not.
    """
    match = _HEAD.fullmatch(buf, 0, end + 2)  # every line with its CRLF
    if match is None:
        return None
    method, target, minor, block = match.group(1, 2, 3, 4)
    headers = [(name.lower(), value) for name, value in _FIELDS.findall(block)] if block else []
    version = _VERSIONS[minor]
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
    if length is not None and _DIGITS.fullmatch(length) is None:
        return None
    return fields if b"host" in fields or version == "1.0" else None


def _repeats_qualify(headers: list[tuple[bytes, bytes]], version: str) -> bool:
    """:func:`qualifies` for pairs in which some name repeats."""
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
