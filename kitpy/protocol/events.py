"""What happened on a connection: the events kitpy.protocol hands to the server.

Events are nouns for what the peer did (``RequestHead``, ``BodyData``, ``Message``,
``CloseReceived``); :class:`ProtocolError` says the peer misbehaved and carries the
answer the server gives: an HTTP status (400, 413, 431) or a WebSocket close code
(1002, 1007, 1009).
"""

from __future__ import annotations

from dataclasses import dataclass

from kitpy.errors import KitpyError

__all__ = (
    "NEED_DATA",
    "BodyData",
    "BodyEnd",
    "CloseReceived",
    "ConnectionClosed",
    "Message",
    "NeedData",
    "PongReceived",
    "ProtocolError",
    "RequestHead",
)


class ProtocolError(KitpyError):
    """The peer broke the protocol; ``status`` or ``close_code`` is what to answer.

    HTTP errors carry ``status`` (400 malformed, 413 body too large, 431 header block
    too large); WebSocket errors carry ``close_code`` (1002 protocol error, 1007
    invalid UTF-8, 1009 message too big).
    """

    def __init__(
        self, message: str, *, status: int | None = None, close_code: int | None = None
    ) -> None:
        if (status is None) == (close_code is None):
            raise ValueError("ProtocolError takes exactly one of status and close_code")
        self.message = message
        self.status = status
        self.close_code = close_code
        super().__init__(message)

    def __repr__(self) -> str:
        if self.status is not None:
            what = f"status={self.status}"
        else:
            what = f"close_code={self.close_code}"
        return f"ProtocolError({self.message!r}, {what})"


class NeedData:
    """No event until more bytes arrive (a singleton: ``NEED_DATA``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@dataclass(slots=True)
class RequestHead:
    """A complete request line and header block (read-only by convention).

    ``headers`` are the wire pairs as h11 validated them (lower-case names).
    ``keep_alive`` is what the client asked for (HTTP/1.1 without ``Connection:
    close``); ``expect_continue`` is set when it waits for ``100 Continue``;
    ``upgrade`` is the lower-cased ``Upgrade`` header when ``Connection`` names it.
    Not a frozen dataclass: one is built per request, and a frozen one costs about
    six times as much to build.
    """

    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    http_version: str
    host: str
    keep_alive: bool
    expect_continue: bool
    content_length: int | None
    chunked: bool
    upgrade: str | None


@dataclass(slots=True)
class BodyData:
    """A chunk of the request body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """The request body is complete."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side cleanly between requests."""


@dataclass(frozen=True, slots=True)
class Message:
    """A whole WebSocket message: ``str`` for text frames, ``bytes`` for binary."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer sent a close frame (1005 when it had no code)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The peer answered a keepalive ping."""
