"""The WebSocket opening handshake (RFC 6455 section 4), decided in three steps.

1. :func:`origin_allowed`, *before* the application is called: a browser sends
   ``Origin`` on every WebSocket handshake, and a page on another site must not be
   able to open a socket with the user's cookies (cross-site WebSocket hijacking).
   By default a missing Origin (not a browser) and an Origin whose host and port
   equal the Host header pass; ``["*"]`` lets everything through; other entries
   name further allowed origins (``"https://app.example.com"``).
2. :func:`upgrade_problem` once the application answered 101: is this request a
   valid RFC 6455 opening handshake (section 4.2.1)? If not, the 101 is a bug of
   the application and the server answers 500.
3. :func:`accept_upgrade` builds the ``101 Switching Protocols`` head: the accept
   token, the subprotocol the application chose (its ``Sec-WebSocket-Protocol``
   header, which must be one the client offered), permessage-deflate when offered,
   and the application's other headers (cookies...). It returns the
   :class:`~kitpy.protocol.websocket.WebSocketProtocol` for the frames that follow.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from kitpy.protocol.events import RequestHead
from kitpy.protocol.head import SERVER_HEADER, date_header
from kitpy.protocol.limits import Limits
from kitpy.protocol.websocket.connection import WebSocketProtocol
from kitpy.protocol.websocket.encoder import FrameCache
from kitpy.types import Clock

__all__ = ("accept_upgrade", "origin_allowed", "upgrade_problem")

#: Headers of the 101 the server writes itself; the application's copies are dropped.
_HANDSHAKE_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _tokens(value: str | None) -> list[str]:
    if not value:
        return []
    return [token.strip() for token in value.split(",") if token.strip()]


def _header(head: RequestHead, name: bytes) -> str | None:
    for key, value in head.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _offers(head: RequestHead, name: bytes) -> list[str]:
    """Every comma-separated token of every ``name`` header."""
    return [
        token
        for key, value in head.headers
        if key == name
        for token in _tokens(value.decode("latin-1"))
    ]


def _split_host_port(value: str, default_port: int | None) -> tuple[str, int | None]:
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end != -1 else (value, "")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.partition(":")
    if port.isdigit():
        return host, int(port)
    return host, default_port


def origin_allowed(origin: str | None, host: str, allowed_origins: Sequence[str] | None) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` may reach the application.

    Args:
        origin: the request's ``Origin`` header (``None`` when absent).
        host: the request's ``Host`` header.
        allowed_origins: ``None`` for the default (same host only), ``["*"]`` for
            any, or origins such as ``"https://app.example.com"`` allowed besides.

    A missing Origin always passes (browsers always send one; other clients can
    forge anything anyway), and so does one naming the server's own host and port.
    """
    if origin is None:
        return True
    origin = origin.strip()
    if allowed_origins is not None:
        if "*" in allowed_origins:
            return True
        wanted = origin.lower().rstrip("/")
        if any(wanted == entry.strip().lower().rstrip("/") for entry in allowed_origins):
            return True
    scheme, sep, rest = origin.partition("://")
    if not sep or not rest or "/" in rest:
        return False  # "null" (sandboxed frames, file: pages) or malformed
    default = _DEFAULT_PORTS.get(scheme.lower())
    return _split_host_port(rest, default) == _split_host_port(host, default)


def upgrade_problem(head: RequestHead) -> str | None:
    """Why ``head`` is not a valid WebSocket opening handshake, or None if it is.

    RFC 6455 section 4.2.1: GET, HTTP/1.1 or later, ``Upgrade: websocket``,
    ``Connection: Upgrade``, ``Sec-WebSocket-Version: 13`` and a
    ``Sec-WebSocket-Key`` of 16 base64-encoded bytes.
    """
    if head.method != "GET":
        return f"a WebSocket handshake must be a GET, not {head.method}"
    if head.http_version != "1.1":
        return f"a WebSocket handshake needs HTTP/1.1, not HTTP/{head.http_version}"
    if head.upgrade is None or "websocket" not in _tokens(head.upgrade):
        return "the request has no 'Upgrade: websocket' (with 'Connection: Upgrade')"
    version = _header(head, b"sec-websocket-version")
    if version is None or version.strip() != "13":
        return f"Sec-WebSocket-Version must be 13, got {version!r}"
    key = _header(head, b"sec-websocket-key")
    try:
        valid_key = key is not None and len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return f"Sec-WebSocket-Key must be 16 bytes in base64, got {key!r}"
    return None


def accept_upgrade(
    head: RequestHead,
    headers: Iterable[tuple[str, str]],
    limits: Limits,
    clock: Clock,
    *,
    trailing_data: bytes = b"",
    now: float | None = None,
    frames: FrameCache | None = None,
) -> tuple[bytes, WebSocketProtocol, str | None]:
    """Accept a valid handshake (check :func:`upgrade_problem` first).

    Args:
        head: the upgrade request.
        headers: the application's 101 headers; its ``sec-websocket-protocol`` is
            the chosen subprotocol, the rest (cookies...) are sent along.
        limits: message size and keepalive settings for the connection.
        clock: monotonic clock for the keepalive.
        trailing_data: bytes that came after the request head (first frames).
        now: wall time for the ``Date`` header (default: the present).
        frames: the server's cache of framed messages, shared by its sockets.

    Returns:
        The ``101 Switching Protocols`` bytes, the connection, the subprotocol.

    Raises:
        ValueError: the application chose a subprotocol the client did not offer.
    """
    key = _header(head, b"sec-websocket-key")
    if key is None:
        raise ValueError("not a WebSocket handshake: no Sec-WebSocket-Key")
    lines = [
        "upgrade: websocket\r\nconnection: Upgrade\r\n",
        f"sec-websocket-accept: {generate_accept_token(key.strip().encode('ascii')).decode()}\r\n",
    ]
    subprotocol: str | None = None
    extra: list[str] = []
    has_date = has_server = False
    # Like the HTTP writer's loop in shape, with the handshake's own rules: the two
    # share only the pieces of kitpy.protocol.head.
    for name, value in headers:
        if name == "sec-websocket-protocol":
            subprotocol = value.strip()
        if name in _HANDSHAKE_HEADERS:
            continue
        if name == "date":
            has_date = True
        elif name == "server":
            has_server = True
        extra.append(f"{name}: {value}\r\n")
    if subprotocol is not None:
        offered = _offers(head, b"sec-websocket-protocol")
        if subprotocol not in offered:
            raise ValueError(
                f"the application chose WebSocket subprotocol {subprotocol!r}, "
                f"but the client offered {offered or 'none'}"
            )
        lines.append(f"sec-websocket-protocol: {subprotocol}\r\n")
    offers = _offers(head, b"sec-websocket-extensions")
    extensions: list[Extension] = []
    if offers:
        deflate = PerMessageDeflate()
        accepted = server_extensions_handshake(offers, [deflate])
        if accepted is not None:
            extensions.append(deflate)
            lines.append(f"sec-websocket-extensions: {accepted.decode('ascii')}\r\n")
    if not has_server:
        extra.append(f"server: {SERVER_HEADER}\r\n")
    if not has_date:
        extra.append(date_header(now))
    data = (
        "HTTP/1.1 101 Switching Protocols\r\n" + "".join(lines) + "".join(extra) + "\r\n"
    ).encode("latin-1")
    protocol = WebSocketProtocol(
        limits, clock, extensions=extensions, trailing_data=trailing_data, frames=frames
    )
    return data, protocol, subprotocol
