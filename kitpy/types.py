"""Aliases and Protocols at the seams between layers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, Union

if TYPE_CHECKING:
    from kitpy.http.request import Request
    from kitpy.http.response import Response

__all__ = ("App", "Clock", "EndpointResult", "Handler")

#: A monotonic clock in seconds, passed in so protocol code and tests control time.
Clock = Callable[[], float]

#: What an endpoint may return: a response-shaped dict or a Response.
EndpointResult = Union["Response", dict[str, Any]]

#: A route handler: ``get(event)``, async or plain.
Handler = Callable[[Any], EndpointResult | Awaitable[EndpointResult]]


class App(Protocol):
    """What the server runs: ``await app(request) -> Response`` inside ``app.lifespan()``.

    The server enters ``lifespan()`` once before accepting connections and leaves it after
    the last connection is done (graceful shutdown): the app owns its background tasks
    (durable objects, alarms, ``wait_until``) inside it.
    """

    async def __call__(self, request: Request) -> Response: ...

    def lifespan(self) -> AbstractAsyncContextManager[None]: ...
