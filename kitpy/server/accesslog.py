"""Access log lines for ``kitpy serve``: who, what, status, size, how long."""

from __future__ import annotations

import asyncio
import atexit
import sys

__all__ = ("StderrLog", "format_line", "print_to_stderr")

#: Lines held before a write even within one event-loop turn.
BATCH_LINES = 512


class StderrLog:
    """An access log writing lines to stderr, one write per event-loop turn.

    A line logged on a running asyncio loop is held, and every line held is written
    (and stderr flushed) by a callback at the end of the loop's current turn: a
    server answering 64 keep-alive connections in one turn makes one write, not 64.
    Off an asyncio loop (Trio, a thread) each line is written at once. Lines still
    held when the interpreter exits are written then.
    """

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: list[str] = []

    def __call__(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            loop.call_soon(self.flush)
        elif len(lines) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        """Write every line held (a closed or broken stderr is ignored)."""
        lines = self._lines
        if not lines:
            return
        self._lines = []
        try:
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not break serving
            pass


#: The default access log of ``kitpy serve``.
print_to_stderr = StderrLog()
atexit.register(print_to_stderr.flush)


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
    if client is None:
        who = "-"
    elif ":" in client[0]:
        who = f"[{client[0]}]:{client[1]}"
    else:
        who = f"{client[0]}:{client[1]}"
    # The target is the client's text: escape what would forge or break a log line.
    if not target.isprintable() or '"' in target:
        target = target.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    ms = duration * 1000
    line = f'{who} - "{method} {target} HTTP/{http_version}" {status} {size} {ms:.1f}ms'
    return line if request_id is None else f"{line} {request_id}"
