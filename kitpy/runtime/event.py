"""RequestEvent: what hooks and handlers receive (docs/endpoints.md, "The request event").

| field | what |
|---|---|
| ``request`` | the :class:`~kitpy.Request` |
| ``url`` | the parsed URL (``request.url``; scheme from a trusted proxy) |
| ``params`` | route parameters, ``dict[str, str]`` |
| ``route`` | the route id (``/api/rooms/[id]``), None when no route matched |
| ``locals`` | a dict shared by the hooks and the endpoint for this request |
| ``platform`` | ``env`` (bindings and [env] values) and ``wait_until(coro)`` |
| ``cookies`` | ``get`` / ``set`` / ``delete``; set cookies reach the response |
| ``client`` | the peer's ``(host, port)``, or the forwarded client behind a trusted proxy |
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from kitpy.http.cookies import Cookies
from kitpy.http.request import Request
from kitpy.http.url import URL
from kitpy.runtime.config import ServerConfig

__all__ = (
    "Env",
    "Platform",
    "RequestEvent",
    "client_and_url",
    "make_event",
    "set_cookie_headers",
)


class Env:
    """Bindings by attribute and by item: ``env.rooms``, ``env["GREETING"]``."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))

    def _set(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            known = ", ".join(sorted(self._values)) or "none"
            raise AttributeError(
                f"no binding or env value {name!r} (known: {known}); "
                f"add it to [objects] or [env] in kitpy.toml"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("env is read-only; set values in kitpy.toml")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def keys(self) -> list[str]:
        return list(self._values)

    def __repr__(self) -> str:
        return f"Env({sorted(self._values)!r})"


class Platform:
    """``event.platform``: ``env`` and ``wait_until(coro)``."""

    __slots__ = ("_wait_until", "env")

    def __init__(self, env: Env, wait_until: Callable[[Awaitable[Any]], None]) -> None:
        self.env = env
        self._wait_until = wait_until

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` in a task the app owns; it may outlive the response."""
        self._wait_until(awaitable)


class RequestEvent:
    """The one argument of every hook and handler."""

    __slots__ = (
        "_cookie_secret",
        "_cookies",
        "client",
        "locals",
        "params",
        "platform",
        "request",
        "route",
        "url",
    )

    def __init__(
        self,
        request: Request,
        *,
        platform: Platform,
        params: dict[str, str] | None = None,
        route: str | None = None,
        client: tuple[str, int] | None = None,
        cookie_secret: str | None = None,
    ) -> None:
        self.request = request
        self.url: URL = request.url
        self.params: dict[str, str] = params if params is not None else {}
        self.route = route
        self.locals: dict[str, Any] = {}
        self.platform = platform
        self.client = client if client is not None else request.client
        self._cookie_secret = cookie_secret
        self._cookies: Cookies | None = None

    @property
    def cookies(self) -> Cookies:
        """The request's cookies, and the Set-Cookie headers to send (made on first use)."""
        cookies = self._cookies
        if cookies is None:
            request = self.request
            cookies = self._cookies = Cookies(
                request.headers.get("cookie"), request.url.host, self._cookie_secret
            )
        return cookies

    def __repr__(self) -> str:
        return f"<RequestEvent {self.request.method} {self.url.raw_path} route={self.route!r}>"


def make_event(
    request: Request,
    platform: Platform,
    params: dict[str, str],
    route: str | None,
    client: tuple[str, int] | None,
    cookie_secret: str | None,
) -> RequestEvent:
    """``RequestEvent(request, platform=..., params=..., route=..., client=...,
    cookie_secret=...)`` made without the keyword call: the runtime makes one per
    request."""
    event = _new_object(RequestEvent)
    event.request = request
    event.url = request.url
    event.params = params
    event.route = route
    event.locals = {}
    event.platform = platform
    event.client = client if client is not None else request.client
    event._cookie_secret = cookie_secret
    event._cookies = None
    return event


_new_object = object.__new__


def set_cookie_headers(event: RequestEvent) -> list[str]:
    """The Set-Cookie values queued through ``event.cookies`` (none if it was unused)."""
    cookies = event._cookies
    return [] if cookies is None else cookies.set_cookie_headers()


def client_and_url(
    request: Request, server: ServerConfig
) -> tuple[tuple[str, int] | None, Request]:
    """The client address and the request as the app should see them.

    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the peer is one
    of ``trusted_proxies``: otherwise any client could claim any address. In
    ``X-Forwarded-For`` the client is the right-most address that is not itself a
    trusted proxy (the ones to its left were written by the client).
    """
    peer = request.client
    if peer is None or not server.is_trusted_proxy(peer[0]):
        return peer, request
    client = peer
    forwarded = [
        part.strip()
        for value in request.headers.get_all("x-forwarded-for")
        for part in value.split(",")
        if part.strip()
    ]
    for entry in reversed(forwarded):
        address = _ip_of(entry)
        if address is None:
            # Not an address ("unknown", "<script>", a typo): believe nothing further
            # left, as nginx's realip module does; the last good hop stays the client.
            break
        client = (address, 0)
        if not server.is_trusted_proxy(address):
            break
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto in ("http", "https") and proto != request.url.scheme:
        url = request.url
        target = url.raw_path + (f"?{url.query_string}" if url.query_string else "")
        host = request.headers.get("host", url.netloc)
        request = request.clone_with_url(URL.from_target(proto, host, target))
    return client, request


def _ip_of(entry: str) -> str | None:
    """The IP address in an X-Forwarded-For entry (``1.2.3.4``, ``1.2.3.4:80``,
    ``[::1]:80``, ``::1``), or None when it is not one."""
    if entry.startswith("["):
        entry = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:
        entry = entry.partition(":")[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None
