"""Graceful shutdown: stop accepting, let requests finish, close WebSockets, leave.

The server keeps every live connection in a :class:`ConnectionTracker`. On SIGINT
or SIGTERM (see :func:`watch_signals`), or when ``serve()`` is cancelled, the server
stops accepting and calls :meth:`ConnectionTracker.begin_shutdown`: each connection
then closes as soon as it can. An idle keep-alive connection closes at once (one
accepted just before, whose first request has not arrived yet, gets
``connection.FRESH_GRACE`` seconds to send it and is answered), a request in flight
finishes and its response says ``Connection: close``, a
WebSocket gets a close frame with the shutdown code (1001 "going away" by
default; the dev server uses 1012 "service restart") and its application end is
closed with the same code. The server waits at most ``shutdown_timeout`` for all of
that, cancels what is left, then leaves ``app.lifespan()``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Protocol

import anyio
import anyio.abc

__all__ = ("ConnectionTracker", "TrackedConnection", "watch_signals")

logger = logging.getLogger("kitpy.server")


class TrackedConnection(Protocol):
    """What the tracker needs from a connection."""

    def shutdown(self, close_code: int) -> None:
        """Close as soon as possible: now when idle, after the response when busy."""

    def cancel(self) -> None:
        """Stop now, whatever the connection is doing (its close still runs)."""


class ConnectionTracker:
    """The live connections of one server, for a graceful shutdown."""

    def __init__(self) -> None:
        self._connections: set[TrackedConnection] = set()
        self._empty: anyio.Event | None = None
        #: True once shutdown began; new connections are told to close at once.
        self.shutting_down = False
        self.close_code = 1001

    def __len__(self) -> int:
        return len(self._connections)

    def add(self, connection: TrackedConnection) -> None:
        """Track a new connection (told to close at once if shutdown began)."""
        self._connections.add(connection)
        if self.shutting_down:
            connection.shutdown(self.close_code)

    def discard(self, connection: TrackedConnection) -> None:
        """Forget a finished connection."""
        self._connections.discard(connection)
        if not self._connections and self._empty is not None:
            self._empty.set()

    def begin_shutdown(self, close_code: int = 1001) -> None:
        """Ask every connection to close (WebSockets with ``close_code``)."""
        self.shutting_down = True
        self.close_code = close_code
        for connection in list(self._connections):
            connection.shutdown(close_code)

    def cancel_all(self) -> None:
        """Stop every connection now (the shutdown timeout passed, or a second signal)."""
        for connection in list(self._connections):
            connection.cancel()

    async def wait_empty(self) -> None:
        """Return once no connection is left."""
        while self._connections:
            self._empty = anyio.Event()
            await self._empty.wait()


async def watch_signals(
    on_first: Callable[[], None],
    on_second: Callable[[], None],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_first`` on SIGINT/SIGTERM and ``on_second`` on the next one.

    Signals can only be received in the main thread; elsewhere this waits forever.
    ``task_status.started()`` once the handlers are in place.
    """
    if threading.current_thread() is not threading.main_thread():
        task_status.started()
        await anyio.sleep_forever()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        count = 0
        async for signum in signals:
            count += 1
            name = signal.Signals(signum).name
            if count == 1:
                logger.warning("%s received: shutting down gracefully", name)
                on_first()
            else:
                logger.warning("%s received again: closing every connection now", name)
                on_second()
