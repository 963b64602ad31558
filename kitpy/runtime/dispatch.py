"""Method lookup for one route file (docs/endpoints.md).

- ``get``, ``post``, ``put``, ``patch``, ``delete``, ``options`` answer their method;
  ``fallback`` answers any method the file has no handler for.
- HEAD is answered by ``get`` (or ``fallback``) without a body, with the
  ``Content-Length`` GET would send when the body is known (RFC 9110 section 9.3.2).
- A method with no handler is a 405 with ``Allow`` listing the handled methods, HEAD
  when ``get`` exists, and OPTIONS (always answered); OPTIONS with no handler is a 204
  with that ``Allow``.
- A plain ``def`` runs in a worker thread (``anyio.to_thread``) so it cannot block the
  event loop; an ``async def`` runs on the loop, and so does a plain ``def`` marked
  with :func:`on_loop` (for quick handlers that never block: no thread hop).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from enum import Enum, auto
from types import ModuleType
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from kitpy.errors import HTTPError, SiteError
from kitpy.http.response import Response
from kitpy.http.results import to_response
from kitpy.runtime.event import RequestEvent

__all__ = (
    "HANDLER_NAMES",
    "Endpoint",
    "dispatch",
    "endpoint_from_module",
    "on_loop",
    "strip_body",
    "timed_out",
)

#: Handler names in the order ``Allow`` lists their methods.
HANDLER_NAMES = ("get", "post", "put", "patch", "delete", "options")
_ALL_NAMES = (*HANDLER_NAMES, "fallback")

logger = logging.getLogger("kitpy")

_F = TypeVar("_F", bound=Callable[..., Any])
_ON_LOOP = "__kitpy_on_loop__"


def on_loop(function: _F) -> _F:
    """Run this plain ``def`` handler on the event loop instead of a worker thread.

    For handlers that only compute (no file, network or database call, no sleep):
    they skip the hop to a thread and back, which costs about as much as a small
    request itself. A handler that blocks here stalls every request of the server
    while it runs, and ``handler_timeout`` cannot interrupt it. The function is
    returned unchanged, only marked::

        @on_loop
        def get(event):
            return {"body": "Hello"}
    """
    if inspect.iscoroutinefunction(function):
        raise TypeError(f"on_loop is for plain def handlers; {function.__name__} is async def")
    setattr(function, _ON_LOOP, True)
    return function


class _Mode(Enum):
    """How a handler is called, decided once when the route file is loaded."""

    ASYNC = auto()  # async def: awaited on the loop
    LOOP = auto()  # plain def marked @on_loop: called on the loop
    THREAD = auto()  # plain def: run in a worker thread


@dataclass(frozen=True)
class _Call:
    """What one request method resolves to in one route file."""

    handler: Callable[..., Any]
    mode: _Mode
    #: ``routes/x.py: get()``, for log lines and error messages.
    where: str
    #: Not a worker thread's: the runtime may call it in its own frame (see app.py).
    on_loop: bool = field(init=False)
    #: ``async def``: the call gives a coroutine to await.
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_loop", self.mode is not _Mode.THREAD)
        object.__setattr__(self, "is_async", self.mode is _Mode.ASYNC)


@dataclass(frozen=True)
class Endpoint:
    """The handlers of one route file."""

    route_id: str
    #: The route file as shown to users, relative to the site (``routes/x.py``).
    file: str
    handlers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: Request method -> its handler, built once here so a request does no look-ups
    #: beyond one dict get (methods absent here go to ``fallback``).
    _calls: dict[str, _Call] = field(init=False, repr=False, compare=False)
    _fallback: _Call | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        calls = {name: self._call_for(name) for name in self.handlers}
        fallback = calls.get("fallback")
        by_method = {name.upper(): calls.get(name, fallback) for name in HANDLER_NAMES}
        by_method["HEAD"] = calls.get("get", fallback)
        object.__setattr__(
            self, "_calls", {m: call for m, call in by_method.items() if call is not None}
        )
        object.__setattr__(self, "_fallback", fallback)

    def _call_for(self, name: str) -> _Call:
        handler = self.handlers[name]
        if inspect.iscoroutinefunction(handler):
            mode = _Mode.ASYNC
        elif getattr(handler, _ON_LOOP, False):
            mode = _Mode.LOOP
        else:
            mode = _Mode.THREAD
        return _Call(handler, mode, f"{self.file}: {name}()")

    def call_for(self, method: str) -> _Call | None:
        """The handler that answers ``method`` (upper case), or None (a 405)."""
        return self._calls.get(method, self._fallback)

    def methods(self) -> list[str]:
        """The methods handled, as ``Allow`` lists them (OPTIONS always included)."""
        methods: list[str] = []
        for name in HANDLER_NAMES:
            if name in self.handlers:
                methods.append(name.upper())
                if name == "get":
                    methods.append("HEAD")
        if "OPTIONS" not in methods:
            methods.append("OPTIONS")
        return methods

    def allow(self) -> str:
        return ", ".join(self.methods())


def endpoint_from_module(module: ModuleType, route_id: str, file: str) -> Endpoint:
    """Collect the handlers of a route module.

    Raises:
        SiteError: a handler name is bound to something that is not callable, or the
            file uses upper-case names (``GET``) and no lower-case ones.
    """
    handlers: dict[str, Callable[..., Any]] = {}
    for name in _ALL_NAMES:
        value = getattr(module, name, None)
        if value is None:
            continue
        if not callable(value):
            raise SiteError(f"{name} must be a function, got {type(value).__name__}", file)
        handlers[name] = value
    if not handlers:
        upper = [n.upper() for n in _ALL_NAMES if callable(getattr(module, n.upper(), None))]
        if upper:
            raise SiteError(
                f"handlers are lower case in kitpy: rename {upper[0]} to {upper[0].lower()}",
                file,
                _line_of(getattr(module, upper[0])),
            )
    return Endpoint(route_id=route_id, file=file, handlers=handlers)


def _line_of(function: Any) -> int | None:
    code = getattr(function, "__code__", None)
    return code.co_firstlineno if code is not None else None


async def dispatch(
    endpoint: Endpoint, event: RequestEvent, *, time_limit: float | None = None
) -> Response:
    """Call the handler for ``event.request.method`` and turn its result into a Response.

    Raises:
        HTTPError: 405 for a method with no handler (and whatever the handler raises).
        ResultError: the handler returned something that is not a response.
    """
    method = event.request.method
    call = endpoint.call_for(method)
    if call is None:
        allow = endpoint.allow()
        if method == "OPTIONS":
            return Response(None, 204, {"allow": allow})
        raise HTTPError(405, None, {"allow": allow})
    try:
        if time_limit is None:
            # No handler_timeout (the default): no cancel scope to enter and leave.
            result = await _run(call, event, abandon=False)
        else:
            with anyio.fail_after(time_limit):
                result = await _run(call, event, abandon=True)
    except TimeoutError:
        raise timed_out(call, time_limit) from None
    response = to_response(result, call.where)
    if method == "HEAD":
        await strip_body(response)
    return response


def timed_out(call: _Call, time_limit: float | None) -> HTTPError:
    """Log that ``call`` raised TimeoutError (or ran past ``handler_timeout``); the 503."""
    logger.error("%s did not return within handler_timeout (%ss)", call.where, time_limit)
    return HTTPError(503, "The handler took too long to answer.")


async def _run(call: _Call, event: RequestEvent, *, abandon: bool) -> Any:
    mode = call.mode
    if mode is _Mode.ASYNC:
        result = await call.handler(event)
    elif mode is _Mode.LOOP:
        result = call.handler(event)
    else:
        # abandon_on_cancel: with a timeout, stop waiting for a stuck thread.
        result = await anyio.to_thread.run_sync(call.handler, event, abandon_on_cancel=abandon)
    if type(result) is not dict and inspect.isawaitable(result):
        result = await result
    return result


async def strip_body(response: Response) -> None:
    """Drop the body of a HEAD response, keeping the length GET would send."""
    if response.body is not None and response.status not in (204, 304) and response.status >= 200:
        response.headers.setdefault("content-length", str(len(response.body)))
    response.body = b""
    stream = response.stream
    response.stream = None
    if isinstance(stream, AsyncGenerator):
        await stream.aclose()
    elif isinstance(stream, Generator):
        stream.close()
