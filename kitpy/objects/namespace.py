"""Namespace (a binding such as ``env.rooms``) and Stub (``rooms.get(id)``).

``await stub.fetch(path_or_url, request=None, *, method=, headers=, body=)`` builds
the Request the object's ``fetch`` receives, and returns the object's Response
unchanged -- a 101 with its WebSocket end included -- so an endpoint can return it
as is (docs/endpoints.md, "WebSockets from an endpoint"). The URL the object sees:

- an absolute URL (``"https://x/y?q"``, a :class:`~kitpy.http.url.URL`) is used as is;
- a path, with or without its leading slash (``"websocket"``, ``"/websocket"``,
  ``""``), replaces the path of the given ``request``'s URL -- its scheme, host, port
  and, unless the path has its own ``?query``, its query string are kept, as when a
  Worker rewrites ``url.pathname`` before forwarding. Without a request, the path is
  taken relative to ``https://fake-host/``;
- a :class:`~kitpy.http.request.Request` as the first argument is forwarded whole.

With a ``request``, the object gets the same method, headers, body and client; the
keywords ``method``, ``headers`` and ``body`` override them. Without one, the request
is built from the keywords (``GET`` with no headers and no body by default).

Every other public attribute of a stub is an RPC method of the object's class:
``await stub.increment(by=2)`` (see :mod:`kitpy.objects.rpc` for the values and errors
that cross). A name the class does not define as a callable public method -- or
``fetch``'s siblings ``alarm`` and ``websocket_*`` -- is an AttributeError at once.
``stub.id`` and ``stub.name`` are the stub's own, as on Cloudflare.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from kitpy.http.headers import HeadersInit
from kitpy.http.request import Request
from kitpy.http.response import Response
from kitpy.http.url import URL
from kitpy.objects import rpc
from kitpy.objects.ids import ObjectId, id_from_name, id_from_string, new_unique_id

if TYPE_CHECKING:
    from kitpy.objects.registry import ObjectSystem

__all__ = ("DEFAULT_ORIGIN", "Namespace", "RemoteMethod", "Stub", "build_request")

#: Where a relative path points when stub.fetch() is given no request.
DEFAULT_ORIGIN = "https://fake-host"


class Namespace:
    """The ids and stubs of one binding (``event.platform.env.<name>``)."""

    __slots__ = ("_system", "name")

    def __init__(self, name: str, system: ObjectSystem) -> None:
        self.name = name
        self._system = system

    def __repr__(self) -> str:
        return f"<Namespace {self.name!r}>"

    def id_from_name(self, name: str) -> ObjectId:
        """The id of ``name``: the same on every call and after restarts."""
        return id_from_name(self.name, name)

    def new_unique_id(self) -> ObjectId:
        """A new random id (keep ``str(id)`` to reach the object again)."""
        return new_unique_id(self.name)

    def id_from_string(self, text: str) -> ObjectId:
        """The id whose ``str()`` is ``text`` (64 hex digits); ValueError otherwise."""
        return id_from_string(self.name, text)

    def get(self, object_id: ObjectId) -> Stub:
        """A stub for the object with ``object_id``; the object is built on first use."""
        if not isinstance(object_id, ObjectId):
            raise TypeError(
                f"{self.name}.get() takes an ObjectId, got {type(object_id).__name__}; "
                f"use {self.name}.id_from_name(name) or {self.name}.id_from_string(text)"
            )
        if object_id.namespace != self.name:
            raise ValueError(
                f"{object_id!r} belongs to namespace {object_id.namespace!r}, "
                f"not {self.name!r}; make ids with this namespace's id_from_* methods"
            )
        return Stub(object_id, self._system)

    def get_by_name(self, name: str) -> Stub:
        """``get(id_from_name(name))``."""
        return self.get(self.id_from_name(name))


class Stub:
    """A handle on one durable object; cheap to make, never touches the object itself."""

    __slots__ = ("_system", "id")

    def __init__(self, object_id: ObjectId, system: ObjectSystem) -> None:
        self.id = object_id
        self._system = system

    @property
    def name(self) -> str | None:
        """The name the id was made from, if any."""
        return self.id.name

    def __repr__(self) -> str:
        return f"<Stub {self.id!r}>"

    async def fetch(
        self,
        path_or_url: str | URL | Request,
        request: Request | None = None,
        *,
        method: str | None = None,
        headers: HeadersInit = None,
        body: bytes | str | None = None,
    ) -> Response:
        """Call the object's ``fetch(request)``; return its Response unchanged.

        See the module docstring for the URL and request the object receives.
        Exceptions the object's ``fetch`` raises (``error(404)`` included) reach the
        caller. The object's handler runs in a task of the object system, so a caller
        cancelled meanwhile does not cancel the object's work.
        """
        built = build_request(path_or_url, request, method=method, headers=headers, body=body)
        return await self._system.fetch(self.id, built)

    def __getattr__(self, name: str) -> RemoteMethod:
        if name.startswith("__"):
            raise AttributeError(name)  # copy, pickle and friends probe dunder names
        rpc.check_method(self._system.object_class(self.id.namespace), name)
        return RemoteMethod(self, name)


class RemoteMethod:
    """``stub.name``: calling it sends an RPC call and returns an awaitable of the result.

    The arguments are checked and encoded at the call (a TypeError naming the
    argument that cannot cross), so the object gets copies.
    """

    __slots__ = ("_stub", "name")

    def __init__(self, stub: Stub, name: str) -> None:
        self._stub = stub
        self.name = name

    def __repr__(self) -> str:
        return f"<RemoteMethod {self.name!r} of {self._stub!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        stub = self._stub
        cls = stub._system.object_class(stub.id.namespace)
        return self._send(rpc.encode_call(self.name, args, kwargs, cls))

    async def _send(self, payload: bytes) -> Any:
        stub = self._stub
        return rpc.decode_outcome(await stub._system.call(stub.id, payload))


def build_request(
    path_or_url: str | URL | Request,
    request: Request | None = None,
    *,
    method: str | None = None,
    headers: HeadersInit = None,
    body: bytes | str | None = None,
) -> Request:
    """The Request a stub's ``fetch`` delivers (rules in the module docstring)."""
    if isinstance(path_or_url, Request):
        if request is not None:
            raise TypeError("stub.fetch() takes a Request or (path_or_url, request), not both")
        request, url = path_or_url, path_or_url.url
    elif isinstance(path_or_url, URL):
        url = path_or_url
    elif isinstance(path_or_url, str):
        url = _resolve(path_or_url, request)
    else:
        raise TypeError(
            "stub.fetch() takes a path, a URL or a Request, "
            f"got {type(path_or_url).__name__}: {path_or_url!r}"
        )
    if request is None:
        return Request(method or "GET", url, headers, body)
    if method is None and headers is None and body is None:
        return request.clone_with_url(url)
    return Request(
        method or request.method,
        url,
        headers if headers is not None else request.headers.copy(),
        body if body is not None else request.stream(),
        client=request.client,
    )


def _resolve(target: str, request: Request | None) -> URL:
    if "://" in target:
        return URL(target)
    target = target.partition("#")[0]
    path, has_query, query = target.partition("?")
    base = request.url if request is not None else URL(DEFAULT_ORIGIN + "/")
    return base.replace(path="/" + path.lstrip("/"), query=query if has_query else None)
