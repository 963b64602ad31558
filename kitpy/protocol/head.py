"""Writing a response head: the status line, ``Date`` and ``Server``, for both protocols.

The HTTP/1.1 writer (:mod:`kitpy.protocol.http11.writer`) and the WebSocket handshake
(:mod:`kitpy.protocol.websocket.handshake`) build their heads from these pieces, so a
101 and a 200 carry the same ``server`` and ``date`` lines. Nothing here is mutable
module state: the status lines are one table built at import, and the ``Date`` cache
is an object each owner keeps (:class:`DateHeader`).
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

__all__ = ("SERVER_HEADER", "DateHeader", "date_header", "status_line")

#: Value of the ``Server`` header.
SERVER_HEADER = "kitpy"


def _line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    # RFC 9112 section 4: the reason phrase may be empty, the space before it may not.
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


#: Every status line Python knows a phrase for, built once (read-only afterwards).
_STATUS_LINES: dict[int, bytes] = {int(status): _line(status) for status in HTTPStatus}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` for ``status`` (the common ones from a table)."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else _line(status)


def date_header(now: float | None = None) -> str:
    """The ``date: ...\\r\\n`` header line for wall time ``now`` (default: the present)."""
    return f"date: {formatdate(int(time.time() if now is None else now), usegmt=True)}\r\n"


class DateHeader:
    """The ``Date`` header line, formatted at most once per second by its owner."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = ""

    def line(self, now: float) -> str:
        """:func:`date_header` for ``now``, from the cache within the same second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._line = date_header(second)
        return self._line
