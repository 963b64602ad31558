"""WebSocket (RFC 6455), server side, without I/O: :class:`WebSocketProtocol` and its parts.

- :mod:`.handshake`: the opening handshake (Origin check, validity, the 101);
- :mod:`.connection`: :class:`WebSocketProtocol`, an open socket's orchestration
  (close handshake, keepalive, limits);
- :mod:`.decoder`: the fast decoder of client frames (no extension);
- :mod:`.reference`: the wsproto path (extensions, and the reference of the
  differential tests), with the frame-size watch in front of it;
- :mod:`.encoder`: server frames, and the cache that frames a broadcast once.
"""

from __future__ import annotations

from kitpy.protocol.websocket.connection import CloseState, WebSocketProtocol
from kitpy.protocol.websocket.encoder import FrameCache
from kitpy.protocol.websocket.handshake import accept_upgrade, origin_allowed, upgrade_problem

__all__ = (
    "CloseState",
    "FrameCache",
    "WebSocketProtocol",
    "accept_upgrade",
    "origin_allowed",
    "upgrade_problem",
)
