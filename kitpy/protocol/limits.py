"""Limits: sizes and timeouts the server enforces (numbers only, no behaviour).

Defaults, as docs/server.md states them: a 16 KiB header block (431 above), a
1 MiB body (413), a 1 MiB WebSocket message (close 1009), headers within 10 s of
the connection or of the previous response, idle keep-alive closed after 5 s.
A request body must be read whole within 30 s (408 above), so clients that trickle
bodies cannot hold connection slots forever.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("DEFAULT_LIMITS", "Limits")


@dataclass(frozen=True)
class Limits:
    """Every size and timeout of the server; each one configurable per site.

    Sizes are in bytes, times in seconds. A ``ws_ping_interval`` of 0 turns the
    WebSocket keepalive ping off.
    """

    #: Largest request head (request line and headers); above it: 431.
    max_header_bytes: int = 16 * 1024
    #: Largest request body; above it: 413, without reading it all.
    max_body_bytes: int = 1024 * 1024
    #: Largest WebSocket message, fragments and all; above it: close 1009.
    max_ws_message_bytes: int = 1024 * 1024
    #: The whole request head must arrive within this time of the connection or of
    #: the previous response; a trickle of bytes does not extend it (slowloris).
    header_timeout: float = 10.0
    #: An idle keep-alive connection (no byte of a next request) is closed after this.
    keepalive_timeout: float = 5.0
    #: A request body must have arrived whole this long after the application first
    #: asked for it (or the server began draining it); past it: 408 and close. A
    #: trickle of bytes does not extend it; a body read that stalls for
    #: ``header_timeout`` is a 408 sooner.
    body_timeout: float = 30.0
    #: Connections served at once; further clients wait in the listen backlog.
    max_connections: int = 1000
    #: Seconds between keepalive pings on a WebSocket.
    ws_ping_interval: float = 20.0
    #: A ping unanswered this long means the client is gone; also bounds the wait
    #: for the client's reply to a close frame.
    ws_ping_timeout: float = 20.0
    #: Bytes an application may queue for one slow WebSocket reader before the
    #: socket is closed (1008) instead of growing memory.
    ws_max_queue_bytes: int = 4 * 1024 * 1024
    #: Graceful shutdown: how long requests in flight may take to finish.
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_body_bytes", "max_ws_message_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_connections < 1:
            raise ValueError(
                f"Limits.max_connections must be at least 1, got {self.max_connections}"
            )
        for name in ("header_timeout", "keepalive_timeout", "body_timeout", "ws_ping_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")
        if self.ws_ping_interval < 0 or self.shutdown_timeout < 0:
            raise ValueError("Limits.ws_ping_interval and shutdown_timeout must not be negative")


#: The defaults, shared (Limits is immutable).
DEFAULT_LIMITS = Limits()
