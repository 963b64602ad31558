"""Terminal output shared by the ``kitpy`` commands: colours, one-line messages, logging."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = ("LOG_LEVELS", "Style", "configure_logging", "say", "status_style")

#: The names ``--log-level`` accepts, quietest last.
LOG_LEVELS = ("debug", "info", "warning", "error")


class Style:
    """ANSI colours when the stream is a terminal (NO_COLOR / FORCE_COLOR honoured)."""

    CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33",
             "blue": "34", "magenta": "35", "cyan": "36"}  # fmt: skip

    def __init__(self, stream: TextIO) -> None:
        if os.environ.get("NO_COLOR"):
            self.enabled = False
        elif os.environ.get("FORCE_COLOR"):
            self.enabled = True
        else:
            self.enabled = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(self.CODES[name] for name in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def say(stream: TextIO, text: str) -> None:
    """Write one line and flush it."""
    stream.write(text + "\n")
    stream.flush()


def status_style(status: int) -> str:
    """The colour of an HTTP status in a request log line."""
    if status < 200:
        return "magenta"
    if status < 300:
        return "green"
    if status < 400:
        return "cyan"
    if status < 500:
        return "yellow"
    return "red"


_LEVEL_COLOURS = {"DEBUG": "dim", "INFO": "cyan", "WARNING": "yellow"}


class _Coloured(logging.Formatter):
    def __init__(self, base: logging.Formatter, style: Style) -> None:
        super().__init__()
        self.base = base
        self.style = style

    def format(self, record: logging.LogRecord) -> str:
        text = self.base.format(record)
        colour = _LEVEL_COLOURS.get(record.levelname, "red")
        return self.style(text, colour) if record.levelno >= logging.WARNING else text


def configure_logging(
    level: str,
    formatter: logging.Formatter,
    *,
    stream: TextIO | None = None,
    filters: tuple[logging.Filter, ...] = (),
) -> None:
    """Send every log record at ``level`` or above (a :data:`LOG_LEVELS` name) to stderr.

    The same for ``kitpy dev`` and ``kitpy serve``; a site's own loggers
    (``logging.getLogger(__name__)``) inherit the level from the root logger.
    """
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Coloured(formatter, Style(out)))
    for item in filters:
        handler.addFilter(item)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
