"""DurableObject: the class users subclass (docs/objects.md)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitpy.http.request import Request
    from kitpy.http.response import Response
    from kitpy.http.websocket import WebSocket
    from kitpy.objects.state import DurableObjectState

__all__ = ("DurableObject",)

logger = logging.getLogger("kitpy.objects")


class DurableObject:
    """A stateful object with one live instance per id, holding storage and WebSockets.

    Subclass it and define the handlers you need; each runs as one *event* of the
    object, admitted by its input gate (see :mod:`kitpy.objects.gate`)::

        class Room(DurableObject):
            async def fetch(self, request): ...
            async def websocket_message(self, ws, message): ...
            async def websocket_close(self, ws, code, reason): ...
            async def websocket_error(self, ws, error): ...
            async def alarm(self): ...

    The constructor is called with ``(state, env)`` on first use; keep it quick and
    start asynchronous set-up with ``state.block_concurrency_while(...)``.
    """

    def __init__(self, state: DurableObjectState, env: Any) -> None:
        self.state = state
        self.env = env

    async def fetch(self, request: Request) -> Response:
        """Answer ``await stub.fetch(...)``; any Response, 101 with a WebSocket included."""
        raise NotImplementedError(
            f"{type(self).__qualname__} has no fetch() method; define "
            "`async def fetch(self, request)` returning a Response to answer stub.fetch()"
        )

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """A message arrived on a socket given to ``state.accept_websocket``."""

    async def websocket_close(self, ws: WebSocket, code: int, reason: str) -> None:
        """A socket given to ``state.accept_websocket`` closed (it has already left
        ``state.get_websockets()``)."""

    async def websocket_error(self, ws: WebSocket, error: Exception) -> None:
        """``websocket_message`` or ``websocket_close`` raised ``error``; logs it by default.

        The socket stays open (close it here if you want) and its siblings are unaffected.
        """
        logger.error("%s: a WebSocket handler raised", type(self).__qualname__, exc_info=error)

    async def alarm(self) -> None:
        """Runs at the time given to ``state.storage.set_alarm(when)``.

        If it raises it is retried with exponential backoff; after success the alarm is
        cleared (unless ``alarm()`` set a new one).
        """
        raise NotImplementedError(
            f"{type(self).__qualname__} set an alarm but has no alarm() method; define "
            "`async def alarm(self)`"
        )
