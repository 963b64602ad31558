"""Access log lines for ``kitpy serve``: who, what, status, size, how long."""

from __future__ import annotations

import sys

__all__ = ("format_line", "print_to_stderr")


def print_to_stderr(line: str) -> None:
    """The default access log: one line to stderr, flushed."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stderr must not break serving
        pass


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
