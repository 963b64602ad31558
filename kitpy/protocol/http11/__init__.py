"""Server-side HTTP/1.1, without I/O: :class:`HTTP11Protocol` and its parts.

- :mod:`.connection`: :class:`HTTP11Protocol`, the orchestration of one connection
  (request cycles, limits, deadlines, keep-alive);
- :mod:`.plain`: the fast reader of plain request heads;
- :mod:`.native`: the same reader on httptools, the C parser (``kitpy[fast]``);
- :mod:`.reference`: the h11 path every other request takes, with kitpy's extra
  rules around it;
- :mod:`.writer`: response heads and body framing.
"""

from __future__ import annotations

from kitpy.protocol.head import SERVER_HEADER, date_header, status_line
from kitpy.protocol.http11.connection import (
    DRAIN_LIMIT,
    FAST_READERS,
    HTTP11Protocol,
    best_reader,
)
from kitpy.protocol.http11.writer import CONTINUE_RESPONSE, Framing, error_response

__all__ = (
    "CONTINUE_RESPONSE",
    "DRAIN_LIMIT",
    "FAST_READERS",
    "SERVER_HEADER",
    "Framing",
    "HTTP11Protocol",
    "best_reader",
    "date_header",
    "error_response",
    "status_line",
)
