"""``cors(...)``: a ``handle`` hook that answers CORS preflights and adds the headers.

```python
# hooks.py
from kitpy import cors

handle = cors(allow_origins=["https://app.example.com"], allow_credentials=True)
```

Requests without an ``Origin`` header pass through untouched. A preflight
(``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) never reaches the
routes: it is answered ``204`` with the ``Access-Control-Allow-*`` headers when the
origin, the method and every requested header are allowed, else ``400`` naming what
was refused. Any other request from an allowed origin gets ``Access-Control-Allow-
Origin`` (and ``-Credentials``, ``-Expose-Headers``) on its response, whatever the
route answered, errors included; a response that already sets
``Access-Control-Allow-Origin`` is left as it is. Every answer that depends on the
origin says ``Vary: Origin``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kitpy.http.response import Response
from kitpy.runtime.event import RequestEvent
from kitpy.runtime.hooks import Handle, Resolve

__all__ = ("cors",)

DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: Request headers a browser always allows (the CORS-safelisted ones).
_SAFELISTED = frozenset({"accept", "accept-language", "content-language", "content-type"})


def _names(values: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(values, str):
        return (values,)
    return tuple(values)


def cors(
    allow_origins: Sequence[str] | str = "*",
    *,
    allow_origin_regex: str | None = None,
    allow_methods: Sequence[str] | str = DEFAULT_METHODS,
    allow_headers: Sequence[str] | str = (),
    allow_credentials: bool = False,
    expose_headers: Sequence[str] = (),
    max_age: int = 600,
) -> Handle:
    """A ``handle`` hook for cross-origin requests; compose it with ``sequence``.

    ``allow_origins``: exact origins (``"https://app.example.com"``) or ``"*"``;
    ``allow_origin_regex`` also allows the origins it matches in full.
    ``allow_methods`` / ``allow_headers``: what a preflight may ask for (``"*"``: any).
    With ``allow_credentials`` the browser sends cookies; the allowed origin is then
    echoed, never ``*`` (browsers refuse ``*`` with credentials). ``max_age``: seconds
    a browser may cache a preflight answer.
    """
    origins = _names(allow_origins)
    any_origin = "*" in origins
    exact = frozenset(origin.rstrip("/") for origin in origins if origin != "*")
    pattern = re.compile(allow_origin_regex) if allow_origin_regex is not None else None
    methods = tuple(method.upper() for method in _names(allow_methods))
    any_method = "*" in methods
    headers = tuple(header.lower() for header in _names(allow_headers))
    any_header = "*" in headers
    allowed_headers = frozenset(headers) | _SAFELISTED
    if max_age < 0:
        raise ValueError(f"cors(max_age=...) must be 0 or more seconds, got {max_age}")
    echo = allow_credentials or bool(exact) or pattern is not None

    def allowed(origin: str) -> bool:
        if any_origin or origin in exact:
            return True
        return pattern is not None and pattern.fullmatch(origin) is not None

    def allow_origin_value(origin: str) -> str:
        return origin if echo else "*"

    def preflight(origin: str, event: RequestEvent) -> Response:
        request_headers = event.request.headers
        method = request_headers.get("access-control-request-method", "").strip().upper()
        asked = [
            name.strip().lower()
            for name in request_headers.get("access-control-request-headers", "").split(",")
            if name.strip()
        ]
        refused: list[str] = []
        if not allowed(origin):
            refused.append(f"origin {origin}")
        if not any_method and method not in methods:
            refused.append(f"method {method or '(none)'}")
        if not any_header:
            refused += [f"header {name}" for name in asked if name not in allowed_headers]
        if refused:
            return Response(
                "CORS preflight refused: " + ", ".join(refused) + " not allowed",
                400,
                {"vary": "Origin"},
            )
        response = Response(None, 204)
        out = response.headers
        out["access-control-allow-origin"] = allow_origin_value(origin)
        out["access-control-allow-methods"] = method if any_method else ", ".join(methods)
        if asked:
            out["access-control-allow-headers"] = ", ".join(asked)
        if allow_credentials:
            out["access-control-allow-credentials"] = "true"
        out["access-control-max-age"] = str(max_age)
        out["vary"] = "Origin"
        return response

    async def handle(event: RequestEvent, resolve: Resolve) -> Response:
        origin = event.request.headers.get("origin")
        if origin is None:
            return await resolve(event)
        origin = origin.strip()
        request = event.request
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return preflight(origin, event)
        response = await resolve(event)
        out = response.headers
        if not allowed(origin) or "access-control-allow-origin" in out:
            return response
        out["access-control-allow-origin"] = allow_origin_value(origin)
        if allow_credentials:
            out["access-control-allow-credentials"] = "true"
        if expose_headers:
            out["access-control-expose-headers"] = ", ".join(expose_headers)
        if echo:
            out.add("vary", "Origin")
        return response

    return handle
