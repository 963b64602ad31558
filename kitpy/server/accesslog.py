"""Access log lines for ``kitpy serve``: who, what, status, size, how long."""

from __future__ import annotations

import asyncio
import atexit
import sys

__all__ = ("AccessRecord", "StderrLog", "client_label", "format_line", "print_to_stderr")

#: Lines held before a write even within one event-loop turn.
BATCH_LINES = 512

#: The fields of one access line: the client's :func:`client_label`, method, target,
#: HTTP version, status, body bytes sent, seconds taken and the request id (or None).
AccessRecord = tuple[str, str, str, str, int, int, float, str | None]


class StderrLog:
    """An access log writing lines to stderr, one write per event-loop turn.

    A line logged on a running asyncio loop is held, and every line held is written
    (and stderr flushed) by a callback at the end of the loop's current turn: a
    server answering 64 keep-alive connections in one turn makes one write, not 64.
    Off an asyncio loop (Trio, a thread) each line is written at once. Lines still
    held when the interpreter exits are written then.

    The server hands it the fields of a line (:meth:`record`) rather than the line:
    they are formatted together when written, which costs less per request.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: list[str | AccessRecord] = []

    def __call__(self, line: str) -> None:
        """Log one line."""
        self.hold(line)

    def record(
        self,
        who: str,
        method: str,
        target: str,
        http_version: str,
        status: int,
        size: int,
        duration: float,
        request_id: str | None,
    ) -> None:
        """Log the line :func:`format_line` makes of these fields (``who``: the client's label)."""
        self.hold((who, method, target, http_version, status, size, duration, request_id))

    def hold(self, item: str | AccessRecord) -> None:
        """Keep ``item`` for the next write: at the end of this loop turn, or now."""
        held = self._held
        held.append(item)
        if len(held) == 1:
            self._first_held()
        elif len(held) >= BATCH_LINES:
            self.flush()

    def _first_held(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every line held (a closed or broken stderr is ignored)."""
        held = self._held
        if not held:
            return
        self._held = []
        try:
            sys.stderr.write("\n".join(_format(held)) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not break serving
            pass


#: The default access log of ``kitpy serve``.
print_to_stderr = StderrLog()
atexit.register(print_to_stderr.flush)


def client_label(client: tuple[str, int] | None) -> str:
    """``127.0.0.1:50000``, ``[::1]:50000``, or ``-`` when the client is not known."""
    if client is None:
        return "-"
    if ":" in client[0]:
        return f"[{client[0]}]:{client[1]}"
    return f"{client[0]}:{client[1]}"


def format_line(
    client: tuple[str, int] | None,
    method: str,
    target: str,
    http_version: str,
    status: int,
    size: int,
    duration: float,
    request_id: str | None = None,
) -> str:
    """``127.0.0.1:50000 - "GET /path HTTP/1.1" 200 12 0.4ms 3f2a9c0d1e4b5a6c``.

    ``size`` is the number of body bytes sent; ``duration`` is in seconds, from the
    request head to the end of the response; ``request_id`` (its ``X-Request-Id``,
    see :mod:`kitpy.server.requestid`) ends the line when given.
    """
    record = (client_label(client), method, target, http_version, status, size, duration)
    return _format([(*record, request_id)])[0]


#: Status codes as text (an int formatted per line costs more than a lookup).
_STATUSES = {status: str(status) for status in range(100, 600)}
#: Durations below this many tenths of a millisecond come from :data:`_TOOK`.
_TOOK_TENTHS = 1000
#: ``0.0ms`` to ``99.9ms``: a float formatted per line costs more than the rest of it.
_TOOK = [f"{tenths / 10:.1f}ms" for tenths in range(_TOOK_TENTHS)]


def _format(held: list[str | AccessRecord]) -> list[str]:
    """The lines of what was held: lines as they are, records formatted."""
    lines: list[str] = []
    append = lines.append
    took_table = _TOOK
    statuses = _STATUSES
    for item in held:
        if isinstance(item, str):
            append(item)
            continue
        who, method, target, version, status, size, duration, request_id = item
        if not target.isprintable() or '"' in target:
            target = _escaped(target)
        code = statuses.get(status) or str(status)
        tenths = round(duration * 10000)
        took = took_table[tenths] if 0 <= tenths < _TOOK_TENTHS else f"{duration * 1000:.1f}ms"
        if request_id is None:
            append(f'{who} - "{method} {target} HTTP/{version}" {code} {size} {took}')
        else:
            append(f'{who} - "{method} {target} HTTP/{version}" {code} {size} {took} {request_id}')
    return lines


def _escaped(target: str) -> str:
    """The target, the client's text, with what would forge or break a log line escaped."""
    return target.encode("unicode_escape").decode("ascii").replace('"', '\\"')
