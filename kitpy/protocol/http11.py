"""Server-side HTTP/1.1 over h11, without I/O.

Theory of operation
-------------------
One :class:`HTTP11Connection` lives as long as a TCP connection. The server feeds
it bytes with :meth:`~HTTP11Connection.receive_data` and pulls events with
:meth:`~HTTP11Connection.next_event`: a :class:`RequestHead`, then
:class:`BodyData` chunks, then :class:`BodyEnd`. It answers with
:meth:`~HTTP11Connection.encode_response` (the head, plus the whole body when it is
known), and for a streamed body :meth:`~HTTP11Connection.encode_body` and
:meth:`~HTTP11Connection.encode_end`. When the exchange allows keep-alive,
:meth:`~HTTP11Connection.start_next_cycle` readies it for the next (possibly
already pipelined) request.

h11 does the parsing that must be exact (RFC 9112 framing, header validation,
chunked decoding, request smuggling defences) for every request that is not plain.
Responses are encoded here instead: building a status line and header block is
simple string work, and h11's validating send path costs more than the rest of a
hello-world request.

The common request is parsed here too, by :func:`_parse_head`: a whole head in the
buffer, HTTP/1.0 or 1.1, one Host, at most one Content-Length of digits, no
Transfer-Encoding and no Upgrade, every line matching the RFC 9112 grammar with
CRLF line ends. It accepts a strict subset of what h11 accepts and produces the
same result for it; anything else -- a head split across reads, a chunked body, a
WebSocket handshake, any odd byte -- is handed, untouched, to a fresh
``h11.Connection`` for that request cycle. So the fast path can only ever be
stricter than h11 in deciding *whether* to take a request, never different in
what it makes of one. A cycle parsed by h11 passes the bytes it buffered but did
not parse (pipelined requests) to the next cycle, which tries the fast path again.

Two house rules:

* Every decision about a misbehaving client is made here and carried by a
  :class:`ProtocolError` with the status to answer: 400 malformed, 413 body over
  ``max_body_bytes`` (a Content-Length above the limit fails at the head, before
  any body byte is read; so does a chunk-size line declaring more, as soon as its
  digits arrive, see :class:`_ChunkWatch`), 431 head over ``max_header_bytes``.
  The message is a fixed text (``Bad Request: invalid header``): it becomes the
  response body, so it never quotes the client's bytes or h11's wording.
* Time comes from the ``clock`` passed in. :meth:`~HTTP11Connection.deadline` is the
  instant at which the server must give up on the current head: the keep-alive
  timeout while no byte of a next request has come, the header timeout (counted
  from the connection or the previous response, so a trickle of bytes does not
  extend it) once some have.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from enum import Enum, auto
from http import HTTPStatus

import h11

from kitpy.protocol.events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    NeedData,
    ProtocolError,
    RequestHead,
)
from kitpy.protocol.limits import Limits
from kitpy.types import Clock

__all__ = (
    "CONTINUE_RESPONSE",
    "DRAIN_LIMIT",
    "SERVER_HEADER",
    "Framing",
    "HTTP11Connection",
    "date_header",
    "error_response",
    "status_line",
)

#: Value of the ``Server`` header.
SERVER_HEADER = "kitpy"
#: The interim response sent when a client waits for ``Expect: 100-continue``.
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"

#: Unread request body the server may read and discard to keep a connection alive.
DRAIN_LIMIT = 64 * 1024

_BODY_END = BodyEnd()
_CONNECTION_CLOSED = ConnectionClosed()
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` for ``status`` (cached)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        # RFC 9112 section 4: the reason phrase may be empty, the space before it may not.
        line = f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")
        _STATUS_LINES[status] = line
    return line


class _DateCache:
    """The ``Date`` header line, formatted at most once per second."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = ""

    def line(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._line = f"date: {formatdate(second, usegmt=True)}\r\n"
        return self._line


_DATES = _DateCache()


def date_header(now: float | None = None) -> str:
    """The ``date: ...\\r\\n`` header line for wall time ``now`` (default: the present)."""
    return _DATES.line(time.time() if now is None else now)


def error_response(
    status: int,
    message: str | None = None,
    *,
    now: float | None = None,
    request_id: str | None = None,
) -> bytes:
    """A complete plain-text response that closes the connection (400, 413, 431...)."""
    if message is None:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "Error"
    body = message.encode("utf-8", "replace") + b"\n"
    head = (
        f"{date_header(now)}server: {SERVER_HEADER}\r\n"
        f"content-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n" + (f"x-request-id: {request_id}\r\n\r\n" if request_id else "\r\n")
    )
    return status_line(status) + head.encode("latin-1") + body


class Framing(Enum):
    """How a response body goes on the wire after its head."""

    #: Nothing more to send: the body went with the head, or there is none (HEAD, 204, 304).
    DONE = auto()
    #: ``Content-Length`` bytes given by the application, streamed.
    LENGTH = auto()
    #: ``Transfer-Encoding: chunked``.
    CHUNKED = auto()
    #: Delimited by closing the connection (an HTTP/1.0 client and a streamed body).
    UNTIL_CLOSE = auto()


_INF = math.inf


class HTTP11Connection:
    """The HTTP/1.1 state of one server connection; see the module docstring.

    Args:
        limits: sizes and timeouts to enforce.
        clock: a monotonic clock in seconds; :meth:`deadline` is on this clock.
        wall_clock: seconds since the epoch, for the ``Date`` header.
    """

    __slots__ = (
        "_body_bytes",
        "_body_left",
        "_buf",
        "_chunks",
        "_clock",
        "_continue_sent",
        "_cycle_start",
        "_eof",
        "_fed",
        "_framing",
        "_h11",
        "_limits",
        "_raw",
        "_remaining",
        "_wall_clock",
        "body_done",
        "head",
        "keep_alive",
    )

    def __init__(
        self, limits: Limits, clock: Clock, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        # None while the fast path parses this cycle (see the module docstring).
        self._h11: h11.Connection | None = None
        self._buf = b""
        self._eof = False
        self._reset()

    def _reset(self) -> None:
        self._cycle_start = self._clock()
        self._fed = 0
        self._raw = b""
        self._body_bytes = 0
        self._continue_sent = False
        self._framing = Framing.DONE
        self._remaining = 0
        self._body_left = 0
        self._chunks: _ChunkWatch | None = None
        #: The head of the request being answered, once it has arrived.
        self.head: RequestHead | None = None
        #: True once the whole request body has been received.
        self.body_done = False
        #: Whether the connection may carry another request after this response.
        self.keep_alive = False

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means it closed its side."""
        if self._eof:
            return
        conn = self._h11
        if conn is None:
            if not data:
                self._eof = True
            else:
                if self.head is None:
                    self._fed += len(data)
                self._buf = self._buf + data if self._buf else data
            return
        if not data:
            self._eof = True
        elif self.head is None:
            self._fed += len(data)
            self._raw = self._raw + data if self._raw else data
        elif self._chunks is not None:
            self._chunks.feed(data)
        conn.receive_data(data)

    def _use_h11(self) -> h11.Connection:
        """Hand this cycle, and every byte buffered for it, to a fresh h11 connection."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_header_bytes)
        data, self._buf = self._buf, b""
        if data:
            self._raw = data
            conn.receive_data(data)
        if self._eof:
            conn.receive_data(b"")
        self._h11 = conn
        return conn

    def next_event(self) -> RequestHead | BodyData | BodyEnd | ConnectionClosed | NeedData:
        """The next thing the client did, or ``NEED_DATA``.

        Raises:
            ProtocolError: with ``status`` 400, 413 or 431; the server answers it with
                :func:`error_response` and closes the connection.
        """
        if self.body_done:
            raise RuntimeError("the request is complete: call start_next_cycle() first")
        conn = self._h11
        if conn is None:
            if self.head is not None:
                return self._fast_body()
            buf = self._buf
            if not buf:
                return _CONNECTION_CLOSED if self._eof else NEED_DATA
            end = buf.find(b"\r\n\r\n")
            if end != -1:
                parsed = _parse_head(buf, end)
                if parsed is not None:
                    self._buf = buf[end + 4 :]
                    return self._fast_head(buf[: end + 4], *parsed)
            conn = self._use_h11()
        elif self._chunks is not None:
            self._check_chunks(self._chunks)
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise self._h11_error(exc) from None
        kind = type(event)
        if kind is h11.Data:
            data = bytes(event.data)  # type: ignore[union-attr]
            self._body_bytes += len(data)
            if self._body_bytes > self._limits.max_body_bytes:
                raise ProtocolError(
                    f"request body larger than {self._limits.max_body_bytes} bytes", status=413
                )
            return BodyData(data)
        if kind is h11.EndOfMessage:
            self.body_done = True
            return _BODY_END
        if kind is h11.Request:
            return self._on_request(event)  # type: ignore[arg-type]
        if event is h11.NEED_DATA:
            return NEED_DATA
        if kind is h11.ConnectionClosed:
            return _CONNECTION_CLOSED
        raise RuntimeError(f"unexpected h11 event {event!r}")  # pragma: no cover

    def _fast_head(
        self,
        raw: bytes,
        method: bytes,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
    ) -> RequestHead:
        """The head :func:`_parse_head` took; the body, if any, is counted here."""
        limits = self._limits
        if len(raw) > limits.max_header_bytes:
            raise ProtocolError(
                f"request head larger than {limits.max_header_bytes} bytes", status=431
            )
        head = self._make_head(method, target, version, headers)
        length = head.content_length
        if length:
            self._body_left = length
        else:
            self.body_done = True
        return head

    def _fast_body(self) -> BodyData | BodyEnd | NeedData:
        left = self._body_left
        buf = self._buf
        if not left:
            self.body_done = True
            return _BODY_END
        if buf:
            if len(buf) <= left:
                data, self._buf = buf, b""
            else:
                data, self._buf = buf[:left], buf[left:]
            self._body_left = left - len(data)
            self._body_bytes += len(data)
            return BodyData(data)
        if self._eof:
            # What h11 decides in the same situation.
            raise ProtocolError(_INCOMPLETE_BODY, status=400)
        return NEED_DATA

    def _h11_error(self, exc: h11.RemoteProtocolError) -> ProtocolError:
        """The answer to what h11 refused: 431 for a head too large, 400 otherwise.

        h11's message quotes the client's bytes (``illegal header line: b'...'``), so
        it is only used to pick one of a few fixed texts.
        """
        text = str(exc).lower()
        head = self.head
        if head is None:
            if exc.error_status_hint == 431:
                return ProtocolError("request head too large", status=431)
            for words, message in _HEAD_PROBLEMS:
                if any(word in text for word in words):
                    return ProtocolError(message, status=400)
            return ProtocolError("Bad Request: malformed request", status=400)
        if "peer closed" in text:
            return ProtocolError(_INCOMPLETE_BODY, status=400)
        if head.chunked:
            return ProtocolError(_BAD_CHUNKS, status=400)
        return ProtocolError("Bad Request: malformed request body", status=400)

    def _check_chunks(self, chunks: _ChunkWatch) -> None:
        if chunks.malformed:
            raise ProtocolError(_BAD_CHUNKS, status=400)
        limit = self._limits.max_body_bytes
        if chunks.declared > limit:
            raise ProtocolError(f"request body larger than {limit} bytes", status=413)

    def _on_request(self, event: h11.Request) -> RequestHead:
        limits = self._limits
        conn = self._h11
        assert conn is not None
        raw, self._raw = self._raw, b""
        trailing = conn.trailing_data[0]
        if trailing:
            raw = raw[: self._fed - len(trailing)]
        if len(raw) > limits.max_header_bytes:
            # h11 enforces its limit only on an *incomplete* head; a large head that
            # arrived in one piece is measured here.
            raise ProtocolError(
                f"request head larger than {limits.max_header_bytes} bytes", status=431
            )
        _check_raw_head(raw)
        head = self._make_head(
            event.method, event.target, event.http_version.decode("ascii"), event.headers
        )
        if head.chunked:
            # Chunk-size lines that came with the head are judged, as later ones are,
            # when the body is read: the same answer however the bytes were split.
            self._chunks = _ChunkWatch()
            if trailing:
                self._chunks.feed(trailing)
        length = head.content_length
        if length == 0 or (length is None and not head.chunked):
            # No body: h11 has the EndOfMessage ready; consume it now so the server
            # need not ask (one less call per bodiless request).
            end = conn.next_event()
            if type(end) is h11.EndOfMessage:
                self.body_done = True
        return head

    def _make_head(
        self,
        method: bytes,
        target: bytes,
        version: str,
        raw_headers: Iterable[tuple[bytes, bytes]],
    ) -> RequestHead:
        """Build the :class:`RequestHead` and apply the framing and size rules."""
        limits = self._limits
        headers: list[tuple[bytes, bytes]] = []
        host = b""
        content_length: int | None = None
        chunked = False
        connection = b""
        expect = False
        upgrade: bytes | None = None
        request_id: bytes | None = None
        for name, value in raw_headers:
            headers.append((name, value))
            if name == b"host":
                host = value
            elif name == b"content-length":
                content_length = int(value)
            elif name == b"transfer-encoding":
                chunked = True  # h11 accepts no other coding
            elif name == b"connection":
                connection += b"," + value.lower()
            elif name == b"expect":
                expect = value.lower() == b"100-continue"
            elif name == b"upgrade":
                upgrade = value
            elif name == b"x-request-id":
                request_id = value
        tokens = {token.strip() for token in connection.split(b",")} if connection else set()
        self.keep_alive = version == "1.1" and b"close" not in tokens
        head = RequestHead(
            method=method.decode("ascii"),
            target=target.decode("latin-1"),
            headers=headers,
            http_version=version,
            host=host.decode("latin-1"),
            keep_alive=self.keep_alive,
            expect_continue=expect and version == "1.1",
            content_length=content_length,
            chunked=chunked,
            upgrade=upgrade.decode("latin-1").strip().lower()
            if upgrade is not None and b"upgrade" in tokens
            else None,
            request_id=request_id,
        )
        self.head = head
        if chunked and content_length is not None:
            # RFC 9112 section 6.3: both framings at once "ought to be handled as an
            # error" -- the classic request smuggling vector.
            raise ProtocolError(
                "Bad Request: both Content-Length and Transfer-Encoding", status=400
            )
        if content_length is not None and content_length > limits.max_body_bytes:
            raise ProtocolError(
                f"request body of {content_length} bytes is larger than "
                f"{limits.max_body_bytes} bytes",
                status=413,
            )
        return head

    @property
    def waiting_for_continue(self) -> bool:
        """True while the client waits for ``100 Continue`` before sending its body."""
        head = self.head
        return (
            head is not None
            and head.expect_continue
            and not self._continue_sent
            and not self.body_done
            and self._body_bytes == 0
        )

    def continue_response(self) -> bytes:
        """``100 Continue`` when the client waits for it (once), else ``b""``."""
        if self.waiting_for_continue:
            self._continue_sent = True
            return CONTINUE_RESPONSE
        return b""

    def deadline(self) -> float:
        """When the server must stop waiting for the current request head (``clock`` time).

        Infinite once the head has arrived. Before that: the keep-alive timeout while
        no byte of the request has come, the header timeout once some have; both
        counted from the start of the cycle (the connection or the previous response).
        """
        if self.head is not None:
            return _INF
        limits = self._limits
        header_deadline = self._cycle_start + limits.header_timeout
        if self._fed:
            return header_deadline
        return min(header_deadline, self._cycle_start + limits.keepalive_timeout)

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the current request (the start of a WebSocket stream)."""
        conn = self._h11
        return self._buf if conn is None else conn.trailing_data[0]

    def release(self) -> None:
        """Drop the parsing state once the connection has left HTTP (a WebSocket).

        The connection lives on as a WebSocket for hours; its h11 state and buffers
        would only cost memory per socket. No other method may be called after this.
        """
        self._h11 = None
        self._buf = b""
        self._raw = b""
        self._chunks = None

    def start_next_cycle(self) -> None:
        """Get ready for the next request on a kept-alive connection.

        Only valid when the request body is complete and :attr:`keep_alive` holds.
        """
        if not (self.body_done and self.keep_alive):
            raise RuntimeError("start_next_cycle() needs a complete, kept-alive exchange")
        conn = self._h11
        data = self._buf if conn is None else conn.trailing_data[0]
        self._h11 = None
        self._reset()
        self._buf = data
        self._fed = len(data)

    # -- responding ----------------------------------------------------------------------

    def encode_response(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
        request_id: str | None = None,
    ) -> tuple[bytes, Framing]:
        """Encode a final response to the current request.

        Args:
            status: 200-599 (1xx are not final responses).
            headers: (lower-case name, value) pairs, already free of CR/LF. Framing
                headers are the server's business: ``content-length`` is recomputed
                for a known body (and kept for HEAD and a streamed body),
                ``transfer-encoding`` and ``keep-alive`` are dropped, ``connection:
                close`` is honoured. ``date`` and ``server`` are added unless given.
            body: the whole body, or ``None`` when it will be streamed.
            request_id: sent as ``x-request-id``, replacing the application's own.

        Returns:
            The bytes to send (the head, and the body when it was given) and how the
            rest of the body, if any, is framed (:meth:`encode_body`).

        Raises:
            UnicodeEncodeError: a header is not Latin-1.
        """
        head = self.head
        lines: list[str] = []
        keep_alive = self.keep_alive
        app_length: str | None = None
        has_date = has_server = False
        for name, value in headers:
            if name == "content-length":
                app_length = value.strip()
                continue
            if name == "connection":
                if "close" in value.lower():
                    keep_alive = False
                continue
            if name == "transfer-encoding" or name == "keep-alive" or name == "x-request-id":
                continue
            if name == "date":
                has_date = True
            elif name == "server":
                has_server = True
            lines.append(f"{name}: {value}\r\n")
        if app_length is not None and not app_length.isdigit():
            app_length = None

        framing = Framing.DONE
        payload = b""
        if status < 200 or status == 204 or status == 304 or (head and head.method == "HEAD"):
            # RFC 9110 sections 6.4.1, 9.3.2: no content; HEAD announces GET's length.
            if status == 304:
                if app_length is not None:
                    lines.append(f"content-length: {app_length}\r\n")
            elif status >= 200 and status != 204:
                if body:
                    lines.append(f"content-length: {len(body)}\r\n")
                elif app_length is not None:
                    lines.append(f"content-length: {app_length}\r\n")
                elif body is not None:
                    lines.append("content-length: 0\r\n")
        elif body is not None:
            lines.append(f"content-length: {len(body)}\r\n")
            payload = body
        elif app_length is not None:
            lines.append(f"content-length: {app_length}\r\n")
            framing = Framing.LENGTH
            self._remaining = int(app_length)
        elif head is not None and head.http_version == "1.1":
            lines.append("transfer-encoding: chunked\r\n")
            framing = Framing.CHUNKED
        else:
            framing = Framing.UNTIL_CLOSE
            keep_alive = False

        if not self.body_done and keep_alive:
            if self.waiting_for_continue:
                # The client waits for 100 Continue and holds its body back; it may
                # still send it after this response, so the connection cannot be reused.
                keep_alive = False
            elif head is None or head.content_length is None:
                keep_alive = False  # an unread chunked body: no telling how long it is
            elif head.content_length - self._body_bytes > DRAIN_LIMIT:
                keep_alive = False  # too much unread body to drain; close instead
        if not keep_alive:
            lines.append("connection: close\r\n")
        self.keep_alive = keep_alive
        self._framing = framing
        if not has_server:
            lines.append(f"server: {SERVER_HEADER}\r\n")
        if not has_date:
            lines.append(date_header(self._wall_clock()))
        if request_id is not None:
            lines.append(f"x-request-id: {request_id}\r\n")
        lines.append("\r\n")
        data = status_line(status) + "".join(lines).encode("latin-1")
        return (data + payload if payload else data), framing

    @property
    def body_complete(self) -> bool:
        """True once a streamed body with a ``Content-Length`` has had all its bytes.

        The client then has the whole response: its closing the connection at this
        point is no error (``Connection: close``, curl exiting).
        """
        return self._framing is Framing.LENGTH and self._remaining == 0

    def encode_body(self, data: bytes) -> bytes:
        """Frame one chunk of a streamed body.

        Raises:
            ValueError: more bytes than the application's ``Content-Length``.
        """
        framing = self._framing
        if framing is Framing.CHUNKED:
            if not data:
                return b""
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing is Framing.LENGTH:
            self._remaining -= len(data)
            if self._remaining < 0:
                self.keep_alive = False
                raise ValueError("the response body is longer than its Content-Length")
            return data
        if framing is Framing.UNTIL_CLOSE:
            return data
        return b""

    def encode_end(self) -> bytes:
        """End a streamed body.

        Raises:
            ValueError: fewer bytes than the application's ``Content-Length``.
        """
        framing = self._framing
        self._framing = Framing.DONE
        if framing is Framing.CHUNKED:
            return b"0\r\n\r\n"
        if framing is Framing.LENGTH and self._remaining:
            self.keep_alive = False
            raise ValueError("the response body is shorter than its Content-Length")
        return b""


_CONTENT_LENGTH = re.compile(rb"\ncontent-length:([^\n]*)", re.IGNORECASE)

# RFC 9112 sections 3 and 5, as h11 reads them (a token method, a target of visible
# ASCII, OWS around a field value of visible or obs-text bytes) but narrower:
# HTTP/1.0 and 1.1 only.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])")
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*")
_DIGITS = re.compile(rb"[0-9]{1,20}")  # h11 takes up to 20 digits
#: Headers whose presence sends a request to h11 (framing, upgrades, repeats).
_SLOW_HEADERS = frozenset({b"transfer-encoding", b"upgrade"})
_VERSIONS = {b"0": "1.0", b"1": "1.1"}


def _parse_head(buf: bytes, end: int) -> tuple[bytes, bytes, str, list[tuple[bytes, bytes]]] | None:
    """Parse the plain request head ``buf[: end + 4]``; None: let h11 decide.

    Returns the method, target, HTTP version and (lower-case name, value) pairs, as
    h11 would give them. None for anything outside the plain subset described in the
    module docstring, valid or not.
    """
    lines = buf[:end].split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return None
    method, target, minor = match.groups()
    headers: list[tuple[bytes, bytes]] = []
    hosts = 0
    lengths = 0
    header_line = _HEADER_LINE.fullmatch
    for line in lines[1:]:
        found = header_line(line)
        if found is None:
            return None
        name = found[1].lower()
        value = found[2]
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            lengths += 1
            if _DIGITS.fullmatch(value) is None:
                return None
        elif name in _SLOW_HEADERS:
            return None
        headers.append((name, value))
    # RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
    if hosts > 1 or lengths > 1 or (hosts == 0 and minor == b"1"):
        return None
    return method, target, _VERSIONS[minor], headers


def _check_raw_head(raw: bytes) -> None:
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


_INCOMPLETE_BODY = "Bad Request: the client closed before sending the whole body"
_BAD_CHUNKS = "Bad Request: malformed chunked body"
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


class _ChunkWatch:
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
