"""Request: method, url, headers, client, and the body read whole or streamed."""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from kitpy.errors import HTTPError
from kitpy.http.form import FormData, parse_form
from kitpy.http.headers import Headers, HeadersInit
from kitpy.http.url import URL

__all__ = ("Request",)

_new_object = object.__new__


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


class Request:
    """An HTTP request as handlers see it.

    The body is read at most once from the connection: ``await body()`` keeps it, and
    ``stream()`` yields chunks as they arrive without keeping them.
    """

    def __init__(
        self,
        method: str,
        url: URL | str,
        headers: HeadersInit = None,
        body: bytes | str | AsyncIterable[bytes] | None = None,
        *,
        client: tuple[str, int] | None = None,
    ) -> None:
        self.method = method.upper()
        self.url = url if isinstance(url, URL) else URL(url)
        self._headers: Headers | None = (
            headers if isinstance(headers, Headers) else Headers(headers)
        )
        self._raw_headers: Iterable[tuple[bytes, bytes]] = ()
        self.client = client
        self._body: bytes | None = None
        self._stream: AsyncIterable[bytes] | None = None
        if body is None:
            self._body = b""
        elif isinstance(body, str):
            self._body = body.encode()
        elif isinstance(body, bytes | bytearray | memoryview):
            self._body = bytes(body)
        else:
            self._stream = body
        self._consumed = False

    @classmethod
    def from_wire(
        cls,
        method: str,
        url: URL,
        raw_headers: Iterable[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | None,
        *,
        client: tuple[str, int] | None,
    ) -> Request:
        """A request as a server parsed it; ``raw_headers`` are wire pairs it has
        validated, decoded into :attr:`headers` only when they are first read. ``body``
        is None when the request has none."""
        request = _new_object(cls)
        request.method = method.upper()
        request.url = url
        request._headers = None
        request._raw_headers = raw_headers
        request.client = client
        request._body = b"" if body is None else None
        request._stream = body
        request._consumed = False
        return request

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers.from_raw(self._raw_headers)
        return headers

    @headers.setter
    def headers(self, headers: Headers) -> None:
        self._headers = headers

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body chunk by chunk; chunks are not kept."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._consumed or self._stream is None:
            raise RuntimeError("the request body was already streamed")
        self._consumed = True
        async for chunk in self._stream:
            if chunk:
                yield chunk

    async def body(self) -> bytes:
        """The whole body (read once, then kept)."""
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self.stream()])
        return self._body

    async def text(self) -> str:
        """The body decoded as UTF-8 (or the charset the request names)."""
        charset = "utf-8"
        ctype = self.headers.get("content-type", "")
        for param in ctype.split(";")[1:]:
            key, _, val = param.strip().partition("=")
            if key.lower() == "charset" and val:
                charset = val.strip('"')
        try:
            return (await self.body()).decode(charset)
        except (LookupError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"request body is not valid {charset} text") from exc

    async def json(self) -> Any:
        """The body parsed as JSON; a malformed body is a 400."""
        try:
            return _json.loads(await self.body())
        except ValueError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from exc

    async def form(self) -> FormData:
        """An urlencoded or multipart form."""
        return parse_form(self.headers.get("content-type", ""), await self.body())

    def clone_with_url(self, url: URL) -> Request:
        """The same request (sharing its body) at another URL."""
        clone = Request.__new__(Request)
        self.headers  # noqa: B018 - decoded now, so the two share one Headers
        clone.__dict__.update(self.__dict__)
        clone.url = url
        return clone

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"
