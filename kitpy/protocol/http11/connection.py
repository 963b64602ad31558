"""The HTTP/1.1 state of one server connection: bytes in, request events out.

Theory of operation
-------------------
One :class:`HTTP11Protocol` lives as long as a TCP connection. The server feeds it
bytes with :meth:`~HTTP11Protocol.receive_data` and pulls events with
:meth:`~HTTP11Protocol.next_event`: a :class:`RequestHead`, then :class:`BodyData`
chunks, then :class:`BodyEnd`. It answers with :meth:`~HTTP11Protocol.encode_response`
(the head, plus the whole body when it is known), and for a streamed body
:meth:`~HTTP11Protocol.encode_body` and :meth:`~HTTP11Protocol.encode_end` (the
:mod:`~kitpy.protocol.http11.writer`). When the exchange allows keep-alive,
:meth:`~HTTP11Protocol.start_next_cycle` readies it for the next (possibly already
pipelined) request.

Two strategies read a request. With ``fast=True`` (the default) a plain head is
parsed by :mod:`~kitpy.protocol.http11.plain`, with ``fast="httptools"`` by the C
parser of :mod:`~kitpy.protocol.http11.native` (``kitpy[fast]``; short heads still
by the plain reader, faster there); everything else,
and every request with ``fast=False``, goes to the h11 reference path
(:mod:`~kitpy.protocol.http11.reference`) for that request cycle. The plain reader
is only ever stricter than h11 in deciding *whether* to take a request, never
different in what it makes of one. A cycle parsed by h11 passes the bytes it
buffered but did not parse (pipelined requests) to the next cycle, which tries the
plain reader again.

Two house rules:

* Every decision about a misbehaving client is made here and carried by a
  :class:`ProtocolError` with the status to answer: 400 malformed, 413 body over
  ``max_body_bytes`` (a Content-Length above the limit fails at the head, before
  any body byte is read; so does a chunk-size line declaring more, as soon as its
  digits arrive), 431 head over ``max_header_bytes``. The message is a fixed text
  (``Bad Request: invalid header``): it becomes the response body, so it never
  quotes the client's bytes or h11's wording.
* Time comes from the ``clock`` passed in. :meth:`~HTTP11Protocol.deadline` is the
  instant at which the server must give up on the current head: the keep-alive
  timeout while no byte of a next request has come, the header timeout (counted
  from the connection or the previous response, so a trickle of bytes does not
  extend it) once some have.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Iterable

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
from kitpy.protocol.http11.plain import read_plain
from kitpy.protocol.http11.reference import (
    BAD_CHUNKS,
    INCOMPLETE_BODY,
    ChunkWatch,
    check_raw_head,
    h11_error,
    new_h11,
)
from kitpy.protocol.http11.writer import CONTINUE_RESPONSE, Framing, ResponseWriter
from kitpy.protocol.limits import Limits
from kitpy.types import Clock

__all__ = ("DRAIN_LIMIT", "FAST_READERS", "HTTP11Protocol", "best_reader")

#: What ``fast=`` takes besides True (the plain reader) and False (h11 only).
FAST_READERS = ("plain", "httptools")

#: Unread request body the server may read and discard to keep a connection alive.
DRAIN_LIMIT = 64 * 1024

#: Reads a request head (without its final CRLF CRLF); None: h11 is to read it.
HeadReader = Callable[[bytes], RequestHead | None]


def best_reader() -> str:
    """The fastest head reader installed here: ``"httptools"`` with ``kitpy[fast]``."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "plain"


def _reader(fast: bool | str) -> HeadReader | None:
    if fast is False:
        return None
    if fast is True or fast == "plain":
        return read_plain
    if fast == "httptools":
        try:
            from kitpy.protocol.http11.native import read_head
        except ImportError:
            raise ValueError(
                "fast='httptools' needs httptools: pip install 'kitpy[fast]'"
            ) from None
        return read_head
    raise ValueError(f"fast must be True, False or one of {FAST_READERS}, got {fast!r}")


def _tokens(connection: bytes) -> set[bytes]:
    """The tokens of (lower-cased, comma-joined) ``Connection`` header values."""
    return {token.strip() for token in connection.split(b",")}


def _head_too_large(limits: Limits) -> ProtocolError:
    return ProtocolError(f"request head larger than {limits.max_header_bytes} bytes", status=431)


def _too_large(content_length: int, limits: Limits) -> ProtocolError:
    return ProtocolError(
        f"request body of {content_length} bytes is larger than {limits.max_body_bytes} bytes",
        status=413,
    )


_BODY_END = BodyEnd()
_CONNECTION_CLOSED = ConnectionClosed()
_INF = math.inf


class HTTP11Protocol:
    """The HTTP/1.1 state of one server connection; see the module docstring.

    Args:
        limits: sizes and timeouts to enforce.
        clock: a monotonic clock in seconds; :meth:`deadline` is on this clock.
        wall_clock: seconds since the epoch, for the ``Date`` header.
        fast: parse plain request heads without h11: True or ``"plain"`` with the
            pure-Python reader, ``"httptools"`` with the C one (``kitpy[fast]``;
            ValueError when it is not installed); False: every request through h11,
            the reference the differential tests compare against.
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
        "_fast",
        "_h11",
        "_limits",
        "_raw",
        "_writer",
        "body_done",
        "head",
        "keep_alive",
    )

    def __init__(
        self,
        limits: Limits,
        clock: Clock,
        *,
        wall_clock: Callable[[], float] = time.time,
        fast: bool | str = True,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._fast = _reader(fast)
        self._writer = ResponseWriter(wall_clock)
        # None while the plain reader parses this cycle (see the module docstring).
        self._h11: h11.Connection | None = None
        self._buf = b""
        self._eof = False
        # While the head of a cycle is awaited, its bytes so far are ``_buf`` (the
        # plain reader's) or ``_raw`` (h11's, kept to check what it parsed).
        self._raw = b""
        self._body_bytes = 0
        self._continue_sent = False
        # Request body bytes still to come, for the plain reader (0 at the body's end).
        self._body_left = 0
        self._chunks: ChunkWatch | None = None
        self._cycle_start = clock()
        #: The head of the request being answered, once it has arrived.
        self.head: RequestHead | None = None
        #: True once the whole request body has been received.
        self.body_done = False
        #: Whether the connection may carry another request after this response.
        self.keep_alive = False

    @property
    def uses_h11(self) -> bool:
        """True while the current request cycle is parsed by h11 (the reference path)."""
        return self._h11 is not None

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
                self._buf = self._buf + data if self._buf else data
            return
        if not data:
            self._eof = True
        elif self.head is None:
            self._raw = self._raw + data if self._raw else data
        elif self._chunks is not None:
            self._chunks.feed(data)
        conn.receive_data(data)

    def _use_h11(self) -> h11.Connection:
        """Hand this cycle, and every byte buffered for it, to a fresh h11 connection."""
        conn = new_h11(self._limits.max_header_bytes)
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
                :func:`~kitpy.protocol.http11.error_response` and closes the connection.
        """
        if self.body_done:
            raise RuntimeError("the request is complete: call start_next_cycle() first")
        conn = self._h11
        if conn is None:
            if self.head is not None:
                return self._plain_body()
            buf = self._buf
            if not buf:
                return _CONNECTION_CLOSED if self._eof else NEED_DATA
            read = self._fast
            if read is not None:
                block, end, rest = buf.partition(b"\r\n\r\n")
                if end:
                    head = read(block)
                    if head is not None:
                        # What h11 would refuse (431) or what kitpy does (413); the
                        # plain reader never takes Transfer-Encoding or Upgrade.
                        limits = self._limits
                        if len(block) + 4 > limits.max_header_bytes:
                            raise _head_too_large(limits)
                        self._buf = rest
                        self.head = head
                        self.keep_alive = head.keep_alive
                        length = head.content_length
                        if not length:
                            self.body_done = True
                        elif length > limits.max_body_bytes:
                            raise _too_large(length, limits)
                        else:
                            self._body_left = length
                        return head
            conn = self._use_h11()
        elif self._chunks is not None:
            self._check_chunks(self._chunks)
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise h11_error(exc, self.head) from None
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

    def _check_head_size(self, raw: bytes) -> None:
        if len(raw) > self._limits.max_header_bytes:
            raise _head_too_large(self._limits)

    def _plain_body(self) -> BodyData | BodyEnd | NeedData:
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
            raise ProtocolError(INCOMPLETE_BODY, status=400)
        return NEED_DATA

    def _check_chunks(self, chunks: ChunkWatch) -> None:
        if chunks.malformed:
            raise ProtocolError(BAD_CHUNKS, status=400)
        limit = self._limits.max_body_bytes
        if chunks.declared > limit:
            raise ProtocolError(f"request body larger than {limit} bytes", status=413)

    def _on_request(self, event: h11.Request) -> RequestHead:
        conn = self._h11
        assert conn is not None
        raw, self._raw = self._raw, b""
        trailing = conn.trailing_data[0]
        if trailing:
            raw = raw[: len(raw) - len(trailing)]
        # h11 enforces its limit only on an *incomplete* head; a large head that
        # arrived in one piece is measured here.
        self._check_head_size(raw)
        check_raw_head(raw)
        head = self._make_head(
            event.method, event.target, event.http_version.decode("ascii"), event.headers
        )
        if head.chunked:
            # Chunk-size lines that came with the head are judged, as later ones are,
            # when the body is read: the same answer however the bytes were split.
            self._chunks = ChunkWatch()
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
        tokens = _tokens(connection) if connection else set()
        self.keep_alive = version == "1.1" and b"close" not in tokens
        head = RequestHead(
            method.decode("ascii"),
            target.decode("latin-1"),
            headers,
            version,
            host.decode("latin-1"),
            self.keep_alive,
            expect and version == "1.1",
            content_length,
            chunked,
            upgrade.decode("latin-1").strip().lower()
            if upgrade is not None and b"upgrade" in tokens
            else None,
        )
        self.head = head
        if chunked and content_length is not None:
            # RFC 9112 section 6.3: both framings at once "ought to be handled as an
            # error" -- the classic request smuggling vector.
            raise ProtocolError(
                "Bad Request: both Content-Length and Transfer-Encoding", status=400
            )
        if content_length is not None and content_length > limits.max_body_bytes:
            raise _too_large(content_length, limits)
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
        if self._buf or self._raw:  # bytes of the request have come
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
        self.head = None

    def start_next_cycle(self) -> bool:
        """Get ready for the next request on a kept-alive connection.

        Only valid when the request body is complete and :attr:`keep_alive` holds.
        Returns whether :meth:`next_event` may have an event before more bytes come
        (bytes of the next request are buffered, or the client closed): when not, it
        would answer ``NEED_DATA``, and the caller may read the connection first.
        """
        if not (self.body_done and self.keep_alive):
            raise RuntimeError("start_next_cycle() needs a complete, kept-alive exchange")
        conn = self._h11
        if conn is None:
            data = self._buf
        else:
            self._buf = data = conn.trailing_data[0]
            self._h11 = None
            self._chunks = None
        # A new cycle. Only what this one changed is reset: ``_raw`` and
        # ``_body_left`` are empty at the end of every request, and the writer sets
        # its framing with every response head.
        self._cycle_start = self._clock()
        if self._body_bytes:
            self._body_bytes = 0
        if self._continue_sent:
            self._continue_sent = False
        self.head = None
        self.body_done = False
        self.keep_alive = False
        return bool(data) or self._eof

    # -- responding ----------------------------------------------------------------------

    def _reusable(self) -> bool:
        """Whether what is left of the request lets the connection carry another."""
        if self.body_done:
            return True
        if self.waiting_for_continue:
            # The client waits for 100 Continue and holds its body back; it may still
            # send it after this response, so the connection cannot be reused.
            return False
        head = self.head
        if head is None or head.content_length is None:
            return False  # an unread chunked body: no telling how long it is
        return head.content_length - self._body_bytes <= DRAIN_LIMIT  # else: close

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
        keep_alive = self.keep_alive
        data, framing, self.keep_alive = self._writer.head(
            status,
            headers,
            body,
            self.head,
            keep_alive,
            not keep_alive or self.body_done or self._reusable(),
            request_id,
        )
        return data, framing

    @property
    def body_complete(self) -> bool:
        """True once a streamed body with a ``Content-Length`` has had all its bytes.

        The client then has the whole response: its closing the connection at this
        point is no error (``Connection: close``, curl exiting).
        """
        return self._writer.body_complete

    def encode_body(self, data: bytes) -> bytes:
        """Frame one chunk of a streamed body.

        Raises:
            ValueError: more bytes than the application's ``Content-Length``.
        """
        try:
            return self._writer.body(data)
        except ValueError:
            self.keep_alive = False
            raise

    def encode_end(self) -> bytes:
        """End a streamed body.

        Raises:
            ValueError: fewer bytes than the application's ``Content-Length``.
        """
        try:
            return self._writer.end()
        except ValueError:
            self.keep_alive = False
            raise
