"""Response and the helpers json/text/html/redirect/error."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from kitpy.errors import HTTPError
from kitpy.http.headers import Headers, HeadersInit
from kitpy.http.jsoncode import dumps

if TYPE_CHECKING:
    from kitpy.http.websocket import WebSocket

__all__ = (
    "Body",
    "Response",
    "checked_response",
    "error",
    "html",
    "json",
    "redirect",
    "text",
)

Body = str | bytes | AsyncIterable[bytes] | Iterable[bytes] | None

TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json"
BYTES_TYPE = "application/octet-stream"


class Response:
    """An HTTP response of any status from 100 to 599.

    ``body`` may be ``str`` (text/plain; charset=utf-8 unless a Content-Type is given),
    ``bytes`` (application/octet-stream), ``None``, or an iterator or async iterator of
    bytes, which is streamed. ``websocket`` is the client end of a
    :class:`~kitpy.WebSocketPair` and goes with status 101. ``headers`` stay mutable.
    """

    __slots__ = ("body", "headers", "status", "stream", "websocket")

    def __init__(
        self,
        body: Body = None,
        status: int = 200,
        headers: HeadersInit = None,
        websocket: WebSocket | None = None,
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"Response status must be an int from 100 to 599, got {status!r}")
        if websocket is not None and status != 101:
            raise ValueError(f"a Response with a websocket must have status 101, got {status}")
        self.status = status
        self.headers = headers.copy() if isinstance(headers, Headers) else Headers(headers)
        self.websocket = websocket
        self.stream: AsyncIterable[bytes] | Iterable[bytes] | None = None
        self.body: bytes | None
        if body is None:
            self.body = b""
        elif isinstance(body, str):
            self.body = body.encode()
            self.headers.setdefault("content-type", TEXT_TYPE)
        elif isinstance(body, bytes | bytearray | memoryview):
            self.body = bytes(body)
            self.headers.setdefault("content-type", BYTES_TYPE)
        elif isinstance(body, AsyncIterable) or (
            isinstance(body, Iterable) and not isinstance(body, dict | list | str)
        ):
            self.body = None
            self.stream = body
        else:
            raise TypeError(
                f"Response body must be str, bytes, None or an iterator of bytes, "
                f"got {type(body).__name__}"
            )

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def checked_response(body: bytes, status: int, content_type: str | None) -> Response:
    """A Response from parts already known to be valid (a status from 100 to 599 and
    bytes), with ``content_type`` as its only header (none when None): what
    ``Response(body, status, {"content-type": ...})`` makes, without its checks."""
    response = _new_object(Response)
    headers = _new_object(Headers)
    headers._items = [] if content_type is None else [("content-type", content_type)]
    response.status = status
    response.headers = headers
    response.websocket = None
    response.stream = None
    response.body = body
    return response


_new_object = object.__new__


def json(data: Any, status: int = 200, headers: HeadersInit = None) -> Response:
    """A JSON response; NaN and infinities are refused (``ValueError``): not JSON."""
    body = dumps(data).encode()
    response = Response(body, status, headers)
    if headers is None or "content-type" not in Headers(headers):
        response.headers["content-type"] = JSON_TYPE
    return response


def text(body: str, status: int = 200, headers: HeadersInit = None) -> Response:
    """A text/plain response."""
    return Response(body, status, headers)


def html(body: str, status: int = 200, headers: HeadersInit = None) -> Response:
    """A text/html response."""
    response = Response(body.encode(), status, headers)
    if headers is None or "content-type" not in Headers(headers):
        response.headers["content-type"] = HTML_TYPE
    return response


def redirect(location: str, status: int = 303, headers: HeadersInit = None) -> Response:
    """A redirect (300-308) to ``location``."""
    if not 300 <= status <= 308:
        raise ValueError(f"redirect() takes a status from 300 to 308, got {status}")
    response = Response(None, status, headers)
    response.headers["location"] = location
    return response


def error(status: int, message: str | None = None) -> NoReturn:
    """Stop the handler and answer ``status`` with ``{"message": ...}`` or text."""
    raise HTTPError(status, message)
