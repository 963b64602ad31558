"""kitpy.server: all network I/O, on anyio (asyncio or Trio)."""

from __future__ import annotations

from kitpy.protocol.limits import Limits as Limits
from kitpy.server.connection import handle_connection as handle_connection
from kitpy.server.serve import run as run
from kitpy.server.serve import serve as serve

__all__ = ("Limits", "handle_connection", "run", "serve")
