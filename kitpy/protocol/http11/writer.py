"""Encoding responses: the head, and the framing of a streamed body.

Responses are encoded here rather than through h11: building a status line and a
header block is simple string work, and h11's validating send path costs more than
the rest of a hello-world request. Framing headers are the writer's business: a
known body gets its ``content-length``, a streamed one the application's length or
``transfer-encoding: chunked`` (HTTP/1.1) or the end of the connection (HTTP/1.0).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from enum import Enum, auto
from http import HTTPStatus

from kitpy.protocol.events import RequestHead
from kitpy.protocol.head import SERVER_HEADER, DateHeader, date_header, status_line

__all__ = ("CONTINUE_RESPONSE", "Framing", "ResponseWriter", "error_response")

#: The interim response sent when a client waits for ``Expect: 100-continue``.
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"


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


#: Response headers the writer decides or drops (see :meth:`ResponseWriter.head`).
_SERVER_OWNED = frozenset(
    {"content-length", "connection", "transfer-encoding", "keep-alive", "x-request-id"}
    | {"date", "server"}
)


def _status_text(status: int) -> str:
    return status_line(status).decode("ascii")


#: The status lines as text, the head being built as one string.
_STATUS_TEXT: dict[int, str] = {int(status): _status_text(status) for status in HTTPStatus}


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


_SERVER_LINE = f"server: {SERVER_HEADER}\r\n"
_DONE = Framing.DONE
_LENGTH = Framing.LENGTH
_CHUNKED = Framing.CHUNKED
_UNTIL_CLOSE = Framing.UNTIL_CLOSE


class ResponseWriter:
    """The response side of one connection: heads, and the body framing they chose.

    Args:
        wall_clock: seconds since the epoch, for the ``Date`` header.
    """

    __slots__ = (
        "_date",
        "_dates",
        "_remaining",
        "_second",
        "_server_date",
        "_wall_clock",
        "framing",
    )

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._dates = DateHeader()
        #: The second (of ``wall_clock``) the two cached lines below were made for.
        self._second = -2.0
        self._date = ""
        self._server_date = ""
        self._remaining = 0
        #: How the body of the response being written goes on the wire.
        self.framing = Framing.DONE

    def head(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
        request: RequestHead | None,
        keep_alive: bool,
        reusable: bool,
        request_id: str | None = None,
    ) -> tuple[bytes, Framing, bool]:
        """Encode a final response head (with ``body`` when it is known).

        ``request`` is the request's head (None before one was read); ``keep_alive``
        is what the client asked for, ``reusable`` whether the rest of the request
        allows another one on the connection. Returns the bytes, the framing of the
        rest of the body and whether the connection stays open. See
        :meth:`kitpy.protocol.http11.HTTP11Protocol.encode_response`.
        """
        lines = ""  # the application's header lines
        app_length: str | None = None
        server_date = 3  # bit 1: the server line is still to add, bit 2: the date line
        for name, value in headers:
            if name in _SERVER_OWNED:
                if name == "content-length":
                    app_length = value.strip()
                    continue
                if name == "connection":
                    if "close" in value.lower():
                        keep_alive = False
                    continue
                if name == "date":
                    server_date &= 1
                elif name == "server":
                    server_date &= 2
                else:  # transfer-encoding, keep-alive, x-request-id
                    continue
            lines += f"{name}: {value}\r\n"

        framing = _DONE
        payload = body
        method = None if request is None else request.method
        if body is not None and status >= 200 and status != 204 and status != 304:
            if method == "HEAD":
                # RFC 9110 section 9.3.2: HEAD announces GET's length, sends no content.
                payload = None
                if body:
                    length = f"content-length: {len(body)}\r\n"
                elif app_length is not None and app_length.isdigit():
                    length = f"content-length: {app_length}\r\n"
                else:
                    length = "content-length: 0\r\n"
            else:
                length = f"content-length: {len(body)}\r\n"
        else:
            length, framing = self._framing(status, body, method, request, app_length)
            if framing is _UNTIL_CLOSE:
                keep_alive = False
            payload = None

        self.framing = framing
        # The server and date lines, formatted once per second.
        now = self._wall_clock()
        if not self._second <= now < self._second + 1.0:
            self._second = second = float(int(now))
            self._date = date = self._dates.line(second)
            self._server_date = f"server: {SERVER_HEADER}\r\n{date}"
        if server_date == 3:
            ours = self._server_date
        elif server_date == 2:
            ours = self._date
        elif server_date == 1:
            ours = _SERVER_LINE
        else:
            ours = ""
        if not (keep_alive and reusable):
            keep_alive = False
            ours = "connection: close\r\n" + ours
        text = _STATUS_TEXT.get(status) or _status_text(status)
        if request_id is None:
            data = f"{text}{lines}{length}{ours}\r\n".encode("latin-1")
        else:
            data = f"{text}{lines}{length}{ours}x-request-id: {request_id}\r\n\r\n".encode(
                "latin-1"
            )
        return (data + payload if payload else data), framing, keep_alive

    def _framing(
        self,
        status: int,
        body: bytes | None,
        method: str | None,
        request: RequestHead | None,
        app_length: str | None,
    ) -> tuple[str, Framing]:
        """The length line and framing of a response sending no content now.

        No content (RFC 9110 section 6.4.1: 1xx, 204, 304; a HEAD request whose body
        :meth:`head` did not have): a 304 or a HEAD announces the application's
        length, if any. A streamed body: the application's length when it is digits,
        else chunked for HTTP/1.1 and the end of the connection for 1.0.
        """
        if app_length is not None and not app_length.isdigit():
            app_length = None
        if status < 200 or status == 204 or status == 304 or method == "HEAD":
            if app_length is not None and status >= 200 and status != 204:
                return f"content-length: {app_length}\r\n", _DONE
            return "", _DONE
        if app_length is not None:
            self._remaining = int(app_length)
            return f"content-length: {app_length}\r\n", _LENGTH
        if request is not None and request.http_version == "1.1":
            return "transfer-encoding: chunked\r\n", _CHUNKED
        return "", _UNTIL_CLOSE

    @property
    def body_complete(self) -> bool:
        """True once a streamed body with a ``Content-Length`` has had all its bytes."""
        return self.framing is Framing.LENGTH and self._remaining == 0

    def body(self, data: bytes) -> bytes:
        """Frame one chunk of a streamed body.

        Raises:
            ValueError: more bytes than the application's ``Content-Length``.
        """
        framing = self.framing
        if framing is Framing.CHUNKED:
            if not data:
                return b""
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing is Framing.LENGTH:
            self._remaining -= len(data)
            if self._remaining < 0:
                raise ValueError("the response body is longer than its Content-Length")
            return data
        if framing is Framing.UNTIL_CLOSE:
            return data
        return b""

    def end(self) -> bytes:
        """End a streamed body.

        Raises:
            ValueError: fewer bytes than the application's ``Content-Length``.
        """
        framing = self.framing
        self.framing = Framing.DONE
        if framing is Framing.CHUNKED:
            return b"0\r\n\r\n"
        if framing is Framing.LENGTH and self._remaining:
            raise ValueError("the response body is shorter than its Content-Length")
        return b""
