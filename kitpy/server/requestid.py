"""Request ids: one per request, on its response, its access line and its log lines.

The server gives every request an id: 16 hex characters of a random 64-bit number,
or the request's own ``X-Request-Id`` when that is 1 to 64 characters of
``[A-Za-z0-9._-]`` (a proxy or load balancer in front that made one; anything else is
ignored, so a client cannot forge log lines). The response carries it as
``X-Request-Id``; the access line ends with it; and while the request is handled it
is in :data:`REQUEST_ID`, which :class:`RequestIdFormatter` adds to every line of a
log record (a traceback included), so ``grep <id>`` finds all of one request.

The context variable lives in the connection's task, so it follows the request into
the application, into the tasks it starts and into worker threads (anyio copies the
context into both).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from random import getrandbits

__all__ = ("REQUEST_ID", "RequestIdFormatter", "new_request_id", "request_id_for")

#: The id of the request being handled in this context (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("kitpy_request_id", default=None)

_SAFE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def new_request_id() -> str:
    """16 random hex characters.

    Not a secret, only unique enough to tell requests apart: ``random`` costs a
    fraction of ``uuid4()`` or ``os.urandom`` on this per-request path.
    """
    return getrandbits(64).to_bytes(8).hex()


def request_id_for(incoming: bytes | None) -> str:
    """The request's own ``X-Request-Id`` when it is short and safe, else a new id."""
    if incoming is not None and _SAFE_ID.fullmatch(incoming) is not None:
        return incoming.decode("ascii")
    return new_request_id()


class RequestIdFormatter(logging.Formatter):
    """A formatter that starts each line of a record written during a request with ``[id]``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = REQUEST_ID.get()
        if request_id is None:
            return text
        prefix = f"[{request_id}] "
        return prefix + text.replace("\n", "\n" + prefix)
