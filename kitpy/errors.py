"""The kitpy error family.

Every error raised because of a user's site (a bad route file, a broken kitpy.toml,
conflicting routes) is a :class:`SiteError` that names the file and, where known,
the line, so the CLI can print ``routes/x.py:12: message`` and exit non-zero.
:func:`redact_url` makes a URL (a database's, NATS's) safe to show in a message.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = (
    "ConfigError",
    "DurableObjectError",
    "HTTPError",
    "InitError",
    "KitpyError",
    "RouteConflictError",
    "SiteError",
    "StorageError",
    "redact_url",
)


class KitpyError(Exception):
    """Root of every error kitpy raises on purpose."""


class SiteError(KitpyError):
    """A problem in a site's files; the message names the file and line."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class ConfigError(SiteError):
    """kitpy.toml is unreadable or has a bad key or value."""


class InitError(SiteError):
    """``init()`` of hooks.py raised ``error`` (also its ``__cause__``)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(f"init() raised {type(error).__name__}: {error}", "hooks.py")


class RouteConflictError(SiteError):
    """Two route files map to the same URL pattern."""


class StorageError(KitpyError):
    """A durable-storage operation failed (bad value, disk full, read-only store)."""


class DurableObjectError(KitpyError):
    """A durable object's RPC method raised an exception that cannot cross as itself.

    ``HTTPError`` and Python's built-in exceptions reach the caller as the same type
    and message; any other exception arrives as this, naming its type
    (``type_name``, e.g. ``"objects.counter.LimitReached"``) and message
    (``remote_message``). The object's log has the traceback.
    """

    def __init__(self, type_name: str, message: str = "") -> None:
        self.type_name = type_name
        self.remote_message = message
        super().__init__(f"{type_name}: {message}" if message else type_name)


class HTTPError(KitpyError):
    """Raised by ``error(status, message)``: answered as that status.

    The body is ``{"message": ...}`` as JSON when the client accepts JSON, plain text
    otherwise.
    """

    def __init__(
        self,
        status: int,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"error() takes a status from 400 to 599, got {status}")
        self.status = status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        self.message = message if message is not None else phrase
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {self.message}")

    def __repr__(self) -> str:
        return f"HTTPError(status={self.status!r}, message={self.message!r})"


_USERINFO = re.compile(r"//[^/]*@")


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for messages and logs.

    A URL that does not parse has all of its user part hidden.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub("//***@", url, count=1)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
