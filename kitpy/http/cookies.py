"""Cookie header parsing and Set-Cookie rendering with safe defaults."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote, unquote

__all__ = (
    "Cookies",
    "parse_cookie_header",
    "render_set_cookie",
    "secure_cookies_dropped",
    "sign_value",
    "unsign_value",
)

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_TOKEN_BAD = frozenset(' \t\r\n;,="()<>@:\\/[]?{}\x00')


def parse_cookie_header(value: str) -> dict[str, str]:
    """``a=1; b=2`` -> {"a": "1", "b": "2"}; the first of repeated names wins."""
    cookies: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, val = part.strip().partition("=")
        if not sep or not name:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        cookies.setdefault(name.strip(), unquote(val))
    return cookies


def secure_cookies_dropped(set_cookies: list[str], scheme: str, host: str) -> list[str]:
    """Names of the ``Secure`` cookies among ``set_cookies`` a browser will drop.

    A browser stores a ``Secure`` cookie only from an https page, or from plain http
    on localhost (127.0.0.1, ::1): anywhere else over http it is silently discarded.
    """
    if scheme == "https" or host.lower() in _LOCAL_HOSTS:
        return []
    dropped: list[str] = []
    for value in set_cookies:
        name, _, rest = value.partition("=")
        attributes = [part.strip().lower() for part in rest.split(";")[1:]]
        if "secure" in attributes:
            dropped.append(name.strip())
    return dropped


def render_set_cookie(name: str, value: str, attrs: dict[str, object]) -> str:
    """One Set-Cookie header value; the value is percent-encoded as needed."""
    if not name or _TOKEN_BAD.intersection(name):
        raise ValueError(f"invalid cookie name {name!r}")
    parts = [f"{name}={quote(value, safe='')}"]
    for key, val in attrs.items():
        if val is None or val is False:
            continue
        label = {
            "path": "Path",
            "domain": "Domain",
            "max_age": "Max-Age",
            "expires": "Expires",
            "secure": "Secure",
            "httponly": "HttpOnly",
            "http_only": "HttpOnly",
            "samesite": "SameSite",
            "same_site": "SameSite",
            "partitioned": "Partitioned",
        }.get(key.lower().replace("-", "_"))
        if label is None:
            raise ValueError(f"unknown cookie attribute {key!r}")
        if val is True:
            parts.append(label)
            continue
        if isinstance(val, datetime):
            val = format_datetime(val, usegmt=True)
        text = str(val)
        if label == "SameSite":
            text = text.capitalize()
        if any(c in text for c in ";\r\n\x00"):
            raise ValueError(f"cookie attribute {label} has a forbidden character")
        parts.append(f"{label}={text}")
    return "; ".join(parts)


def _signature(secret: str, name: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{name}={value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_value(secret: str, name: str, value: str) -> str:
    """``value.signature``: an HMAC-SHA256 of the cookie's name and value."""
    return f"{value}.{_signature(secret, name, value)}"


def unsign_value(secret: str, name: str, signed: str) -> str | None:
    """The value of a :func:`sign_value` string, or None if it was not signed so."""
    value, dot, signature = signed.rpartition(".")
    if not dot or not hmac.compare_digest(signature, _signature(secret, name, value)):
        return None
    return value


class Cookies:
    """``event.cookies``: read the request's cookies, queue Set-Cookie headers.

    ``set`` defaults to ``Path=/``, ``HttpOnly``, ``SameSite=Lax`` and ``Secure``
    unless the request's host is localhost, 127.0.0.1 or ::1. With ``signed=True``
    the value carries an HMAC-SHA256 signature made with ``secret`` (``[server]
    cookie_secret``), and ``get(name, signed=True)`` gives ``None`` for a value that
    was not signed with it: a client can read a signed cookie but not forge one.
    """

    def __init__(self, header: str | None, host: str, secret: str | None = None) -> None:
        self._parsed: dict[str, str] | None = None
        self._header = header or ""
        self._secure_default = host not in _LOCAL_HOSTS
        self._outgoing: dict[str, str] = {}
        self._secret = secret

    def _key(self) -> str:
        if self._secret is None:
            raise RuntimeError(
                "signed cookies need a key: set cookie_secret in [server] of kitpy.toml "
                '(cookie_secret = { from_env = "COOKIE_SECRET" })'
            )
        return self._secret

    def _values(self) -> dict[str, str]:
        if self._parsed is None:
            self._parsed = parse_cookie_header(self._header)
        return self._parsed

    def get(self, name: str, default: str | None = None, *, signed: bool = False) -> str | None:
        value = self._values().get(name)
        if value is not None and signed:
            value = unsign_value(self._key(), name, value)
        return default if value is None else value

    def get_all(self) -> dict[str, str]:
        return dict(self._values())

    def set(self, name: str, value: str, *, signed: bool = False, **attrs: object) -> None:
        if signed:
            value = sign_value(self._key(), name, value)
        self._queue(name, value, attrs)

    def _queue(self, name: str, value: str, attrs: dict[str, object]) -> None:
        full: dict[str, object] = {
            "path": "/",
            "httponly": True,
            "samesite": "Lax",
            "secure": self._secure_default,
        }
        for key, val in attrs.items():
            norm = key.lower().replace("-", "_")
            norm = {"http_only": "httponly", "same_site": "samesite"}.get(norm, norm)
            full[norm] = val
        self._outgoing[name] = render_set_cookie(name, value, full)

    def delete(self, name: str, **attrs: object) -> None:
        expired = {"max_age": 0, "expires": "Thu, 01 Jan 1970 00:00:00 GMT"}
        self._queue(name, "", {**expired, **attrs})

    def set_cookie_headers(self) -> list[str]:
        """The Set-Cookie values queued by ``set`` and ``delete``."""
        return list(self._outgoing.values())
