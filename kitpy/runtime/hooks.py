"""The ``handle`` / ``resolve`` chain, ``sequence()``, and error responses.

A site's ``hooks.py`` may define (docs/hooks.md):

``async def handle(event, resolve)``
    Runs for every request, static files and WebSocket upgrades included. It returns
    a Response: usually ``await resolve(event)``, possibly another one (101 included).
    ``sequence(a, b, c)`` chains several: ``a`` gets a ``resolve`` that runs ``b``,
    whose ``resolve`` runs ``c``, whose ``resolve`` is the real one.

``handle_error(error, event)``, plain or async
    Called for an unexpected exception (not for :class:`~kitpy.HTTPError`); returns
    the body of the 500: a str (text/plain) or a dict (JSON). Returning None, or not
    defining it, gives a generic "Internal Server Error", which never shows internals.
    In ``kitpy dev`` a 500 always shows the traceback, with what ``handle_error``
    returned beside it.

An :class:`~kitpy.HTTPError` (``error(404, "no such room")``) becomes its status with
``{"message": ...}`` as JSON when the client accepts JSON, plain text otherwise.
"""

from __future__ import annotations

import html as _html
import inspect
import json as _json
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from kitpy.errors import HTTPError
from kitpy.http.request import Request
from kitpy.http.response import HTML_TYPE, Response, json, text
from kitpy.http.results import to_response
from kitpy.runtime.event import RequestEvent

__all__ = (
    "Handle",
    "HandleError",
    "Resolve",
    "accepts_json",
    "call_handle",
    "http_error_response",
    "sequence",
    "unexpected_error_response",
)

Resolve = Callable[[RequestEvent], Awaitable[Response]]
Handle = Callable[[RequestEvent, Resolve], Awaitable[Response]]
HandleError = Callable[[BaseException, RequestEvent], Any]

logger = logging.getLogger("kitpy")

GENERIC_500 = "Internal Server Error"


def sequence(*handles: Handle) -> Handle:
    """Chain ``handle`` functions: the first runs outermost.

    ```python
    handle = sequence(auth, logging)
    ```
    """
    for index, one in enumerate(handles):
        if not callable(one):
            raise TypeError(
                f"sequence() takes handle functions, argument {index + 1} is {type(one).__name__}"
            )

    async def chained(event: RequestEvent, resolve: Resolve) -> Response:
        async def step(index: int, event: RequestEvent) -> Response:
            if index == len(handles):
                return await resolve(event)

            async def next_resolve(event: RequestEvent) -> Response:
                return await step(index + 1, event)

            result = await call_handle(handles[index], event, next_resolve)
            return to_response(result, "hooks.py: handle()")

        return await step(0, event)

    return chained


async def call_handle(handle: Callable[..., Any], event: RequestEvent, resolve: Resolve) -> Any:
    """Call a handle function, plain or async; what it returns is checked by the caller."""
    result = handle(event, resolve)
    if inspect.isawaitable(result):
        result = await result
    return result


def accepts_json(request: Request) -> bool:
    """True when the client asked for JSON at least as much as for HTML.

    Only an explicit ``application/json`` (or ``+json``) counts: ``*/*`` alone, a browser's
    ``text/html,...``, or no Accept header at all get text.
    """
    json_q = html_q = 0.0
    for item in request.headers.get_all("accept"):
        for part in item.split(","):
            media, *params = (p.strip() for p in part.split(";"))
            q = 1.0
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = float(value)
                    except ValueError:
                        q = 0.0
            media = media.lower()
            if media == "application/json" or media.endswith("+json"):
                json_q = max(json_q, q)
            elif media == "text/html":
                html_q = max(html_q, q)
    return json_q > 0 and json_q >= html_q


def http_error_response(error: HTTPError, request: Request) -> Response:
    """The response for ``error(status, message)``."""
    if accepts_json(request):
        response = json({"message": error.message}, error.status)
    else:
        response = text(error.message, error.status)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


async def unexpected_error_response(
    error: BaseException,
    event: RequestEvent,
    *,
    dev: bool,
    handle_error: HandleError | None,
) -> Response:
    """The 500 for an exception nobody handled (already logged by the caller).

    In serve mode the body is what ``handle_error`` returned, else a generic message.
    In dev mode it is always the traceback (docs/hooks.md), with what
    ``handle_error`` returned shown beside it.
    """
    body = await _call_handle_error(handle_error, error, event)
    if dev:
        return _traceback_response(error, event.request, body)
    if isinstance(body, str):
        return text(body, 500)
    if isinstance(body, dict):
        return json(body, 500)
    if accepts_json(event.request):
        return json({"message": GENERIC_500}, 500)
    return text(GENERIC_500, 500)


async def _call_handle_error(
    handle_error: HandleError | None, error: BaseException, event: RequestEvent
) -> str | dict[str, Any] | None:
    """What ``handle_error`` returned, or None when it is missing, failed or misbehaved."""
    if handle_error is None:
        return None
    try:
        body = handle_error(error, event)
        if inspect.isawaitable(body):
            body = await body
    except Exception:
        logger.exception("hooks.py: handle_error() raised while handling an error")
        return None
    if body is None or isinstance(body, str):
        return body
    if isinstance(body, dict):
        try:
            _json.dumps(body, allow_nan=False)
        except (TypeError, ValueError) as exc:
            logger.error("hooks.py: handle_error() returned a dict that is not JSON: %s", exc)
            return None
        return body
    logger.error(
        "hooks.py: handle_error() must return a str, a dict or None, got %s",
        type(body).__name__,
    )
    return None


def _traceback_response(
    error: BaseException, request: Request, body: str | dict[str, Any] | None
) -> Response:
    trace = "".join(traceback.format_exception(error))
    summary = f"{type(error).__name__}: {error}"
    if accepts_json(request):
        data: dict[str, Any] = {"message": summary, "traceback": trace}
        if body is not None:
            data["handle_error"] = body
        return json(data, 500)
    shown = body if isinstance(body, str) or body is None else _json.dumps(body)
    if "text/html" in request.headers.get("accept", ""):
        extra = ""
        if shown is not None:
            extra = f"<p>handle_error() returned:</p><pre>{_html.escape(shown)}</pre>"
        page = (
            "<!doctype html><meta charset=utf-8><title>500 Internal Server Error</title>"
            '<body style="font-family:sans-serif;margin:2em">'
            f"<h1>500 Internal Server Error</h1><h2>{_html.escape(summary)}</h2>"
            f'<pre style="background:#f4f4f4;padding:1em;overflow:auto">'
            f"{_html.escape(trace)}</pre>{extra}<p>kitpy dev shows this page; kitpy serve "
            "never does.</p></body>"
        )
        return Response(page.encode(), 500, {"content-type": HTML_TYPE})
    extra = f"\nhandle_error() returned: {shown}\n" if shown is not None else ""
    return text(f"500 Internal Server Error\n\n{trace}{extra}", 500)
