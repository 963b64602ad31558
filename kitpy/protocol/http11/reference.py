"""The h11 reference path: what h11 parses, and the rules kitpy adds around it.

Every request the plain reader (:mod:`kitpy.protocol.http11.plain`) does not take --
a head split across reads, a chunked body, a WebSocket handshake, any odd byte --
goes to a fresh ``h11.Connection`` for that request cycle (:func:`new_h11`). h11
does the parsing that must be exact: RFC 9112 framing, header validation, chunked
decoding. Around it kitpy refuses what h11 leniently accepts but request smuggling
feeds on (:func:`check_raw_head`), turns h11's complaints into fixed answers that do
not quote the client (:func:`h11_error`), and reads chunk-size lines alongside h11
to refuse an over-large body early (:class:`ChunkWatch`).
"""

from __future__ import annotations

import re

import h11

from kitpy.protocol.events import ProtocolError, RequestHead

__all__ = (
    "BAD_CHUNKS",
    "INCOMPLETE_BODY",
    "ChunkWatch",
    "check_raw_head",
    "h11_error",
    "new_h11",
)

INCOMPLETE_BODY = "Bad Request: the client closed before sending the whole body"
BAD_CHUNKS = "Bad Request: malformed chunked body"
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:([^\n]*)", re.IGNORECASE)


def new_h11(max_header_bytes: int) -> h11.Connection:
    """A server-side h11 connection for one request cycle."""
    return h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)


def h11_error(exc: h11.RemoteProtocolError, head: RequestHead | None) -> ProtocolError:
    """The answer to what h11 refused: 431 for a head too large, 400 otherwise.

    ``head`` is the request's head once it was parsed (the error is then in the
    body). h11's message quotes the client's bytes (``illegal header line:
    b'...'``), so it is only used to pick one of a few fixed texts.
    """
    text = str(exc).lower()
    if head is None:
        if exc.error_status_hint == 431:
            return ProtocolError("request head too large", status=431)
        for words, message in _HEAD_PROBLEMS:
            if any(word in text for word in words):
                return ProtocolError(message, status=400)
        return ProtocolError("Bad Request: malformed request", status=400)
    if "peer closed" in text:
        return ProtocolError(INCOMPLETE_BODY, status=400)
    if head.chunked:
        return ProtocolError(BAD_CHUNKS, status=400)
    return ProtocolError("Bad Request: malformed request body", status=400)


def check_raw_head(raw: bytes) -> None:
    """Refuse what h11 leniently accepts but request smuggling feeds on.

    h11 takes a bare LF as a line end, unfolds obs-fold and merges repeated equal
    Content-Length values. A proxy in front may read those differently, so each is
    a 400 here: RFC 9112 section 2.2 (bare LF "MAY" be recognized), section 5.2
    (obs-fold: "MUST either reject ... or replace"), section 6.3 (several lengths).
    """
    if raw.count(b"\n") != raw.count(b"\r\n"):
        raise ProtocolError("Bad Request: a line ends in a bare LF", status=400)
    if b"\n " in raw or b"\n\t" in raw:
        raise ProtocolError("Bad Request: obsolete line folding", status=400)
    lengths = _CONTENT_LENGTH.findall(raw)
    if len(lengths) > 1 or (lengths and b"," in lengths[0]):
        raise ProtocolError("Bad Request: more than one Content-Length", status=400)


#: Fixed answers to h11's complaints about a head, by words in its (lower-cased) message.
_HEAD_PROBLEMS = (
    (("request line", "method", "target", "http version"), "Bad Request: malformed request line"),
    (("host",), "Bad Request: missing or repeated Host header"),
    (("content-length", "transfer-encoding"), "Bad Request: invalid message framing"),
    (("header", "continuation"), "Bad Request: invalid header"),
)
#: h11 takes at most 20 hex digits of chunk size (h11/_abnf.py, chunk_size).
_MAX_CHUNK_DIGITS = 20
_HEX = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}


class ChunkWatch:
    """Reads the chunk-size lines of a chunked body alongside h11.

    h11 parses the chunked coding and stays the judge of its validity, but it does not
    say what size a chunk line declared: it hands out the data as it comes. This
    follows the same bytes just far enough to add up the declared sizes, so a chunk
    declaring more than ``max_body_bytes`` is refused (413) when its size line is read,
    as a Content-Length above the limit is, instead of after the client has sent (or
    trickled) that much. A size line with more hex digits than h11 takes is malformed
    at once, too. It stops at the last chunk; trailers and what follows are h11's.
    """

    __slots__ = ("_before", "_digits", "_left", "_size", "_state", "declared", "malformed")

    _SIZE, _LINE, _DATA, _CRLF, _DONE = range(5)

    def __init__(self) -> None:
        #: Body bytes announced so far, the chunk being declared included.
        self.declared = 0
        self.malformed = False
        self._state = self._SIZE
        self._before = 0  # the sizes of the chunks before this one
        self._size = 0
        self._digits = 0
        self._left = 0

    def feed(self, data: bytes) -> None:
        pos = 0
        end = len(data)
        while pos < end:
            state = self._state
            if state == self._DATA:
                step = min(self._left, end - pos)
                self._left -= step
                pos += step
                if not self._left:
                    self._state = self._CRLF
                    self._left = 2
            elif state == self._SIZE:
                value = _HEX.get(data[pos])
                if value is None:
                    self._state = self._LINE
                    continue
                pos += 1
                self._digits += 1
                self._size = self._size * 16 + value
                self.declared = self._before + self._size
                if self._digits > _MAX_CHUNK_DIGITS:
                    self.malformed = True
                    self._state = self._DONE
            elif state == self._LINE:
                newline = data.find(b"\n", pos)
                if newline == -1:
                    return
                pos = newline + 1
                if self._size:
                    self._state = self._DATA
                    self._left = self._size
                else:
                    self._state = self._DONE  # the last chunk (or a bad line: h11 says)
            elif state == self._CRLF:
                step = min(self._left, end - pos)
                self._left -= step
                pos += step
                if not self._left:
                    self._state = self._SIZE
                    self._before = self.declared
                    self._size = self._digits = 0
            else:
                return
