"""TestClient: run a site in process and talk to it synchronously.

```python
from kitpy.testing import TestClient

def test_home() -> None:
    with TestClient("mysite") as client:
        assert client.get("/").status_code == 200
        with client.websocket("/api/room/lobby/websocket") as ws:
            ws.send_json({"name": "ada"})
            assert ws.receive_json() == {"ready": True}
```

The app runs on an event loop in a background thread (an anyio blocking portal), inside
its ``lifespan()``, so durable objects, alarms and ``wait_until`` tasks run as they do
under ``kitpy serve``. Durable storage lives in a temporary folder, never in the site's
own ``.kitpy/``. The client works with or without ``with``: it is closed by ``close()``,
at the end of the ``with`` block, or when garbage-collected.

Requests go to the app directly (no sockets): hooks, static files and routes all run,
but server-level behaviour (body size limits, Origin checks) does not. Cookies set by
responses are kept and sent back, as a browser would (by name; Path and Secure are not
applied). A WebSocket upgrade is sent through the app; on a 101 the test talks to the
returned WebSocket end in memory.
"""

from __future__ import annotations

import base64
import json as _json
import os
import tempfile
import weakref
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import anyio
import anyio.from_thread
from anyio.from_thread import BlockingPortal

from kitpy.http.headers import Headers
from kitpy.http.request import Request
from kitpy.http.response import Response
from kitpy.http.url import URL
from kitpy.http.websocket import WebSocket
from kitpy.runtime.app import SiteApp, load_app

__all__ = (
    "TestClient",
    "TestResponse",
    "TestWebSocket",
    "WebSocketRejectedError",
    "WebSocketTimeoutError",
)

#: Default seconds a ``receive_*`` waits for a message.
RECEIVE_TIMEOUT = 5.0
#: Seconds ``close()`` lets ``wait_until`` tasks finish before cancelling them.
TASK_GRACE = 2.0

_UNSET: Any = object()

QueryInit = Mapping[str, Any] | Iterable[tuple[str, Any]] | str | None


class WebSocketRejectedError(Exception):
    """The app answered a WebSocket upgrade with something other than a 101."""

    def __init__(self, response: TestResponse) -> None:
        self.response = response
        self.status_code = response.status_code
        detail = response.text[:200]
        super().__init__(
            f"WebSocket upgrade refused with status {response.status_code}"
            + (f": {detail}" if detail else "")
        )


class WebSocketTimeoutError(TimeoutError):
    """No message arrived within the receive timeout."""


class TestResponse:
    """A response read whole: ``status_code``, ``headers``, ``content``, ``text``, ``json()``."""

    __test__ = False

    def __init__(self, status_code: int, headers: Headers, content: bytes, url: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        charset = "utf-8"
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return _json.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code}]>"


class TestWebSocket:
    """The test's end of an upgraded WebSocket; every call blocks until done."""

    __test__ = False

    def __init__(self, portal: BlockingPortal, ws: WebSocket, response: TestResponse) -> None:
        self._portal = portal
        self._ws = ws
        #: The 101 response (its headers, e.g. Sec-WebSocket-Protocol).
        self.response = response

    @property
    def accepted_subprotocol(self) -> str | None:
        """The subprotocol the app chose, if any."""
        return self.response.headers.get("sec-websocket-protocol") or self._ws.protocol

    @property
    def close_code(self) -> int | None:
        """The close code once either side closed, else None."""
        return self._ws.close_code

    @property
    def closed(self) -> bool:
        return self._ws.closed

    def send_text(self, data: str) -> None:
        if not isinstance(data, str):
            raise TypeError(f"send_text() takes a str, got {type(data).__name__}")
        self._portal.call(self._ws.send, data)

    def send_bytes(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"send_bytes() takes bytes, got {type(data).__name__}")
        self._portal.call(self._ws.send, bytes(data))

    def send_json(self, data: Any, *, mode: str = "text") -> None:
        encoded = _json.dumps(data, separators=(",", ":"))
        if mode == "binary":
            self.send_bytes(encoded.encode())
        else:
            self.send_text(encoded)

    def receive(self, timeout: float | None = RECEIVE_TIMEOUT) -> str | bytes:
        """The next message; :class:`~kitpy.WebSocketClosed` once closed.

        Raises:
            WebSocketTimeoutError: nothing arrived within ``timeout`` seconds.
        """
        return self._portal.call(self._receive, timeout)

    async def _receive(self, seconds: float | None) -> str | bytes:
        try:
            with anyio.fail_after(seconds):
                return await self._ws.receive()
        except TimeoutError:
            raise WebSocketTimeoutError(
                f"no WebSocket message within {seconds} s (pass timeout= to wait longer)"
            ) from None

    def receive_text(self, timeout: float | None = RECEIVE_TIMEOUT) -> str:
        message = self.receive(timeout)
        if not isinstance(message, str):
            raise TypeError(f"expected a text message, got bytes: {message[:80]!r}")
        return message

    def receive_bytes(self, timeout: float | None = RECEIVE_TIMEOUT) -> bytes:
        message = self.receive(timeout)
        if not isinstance(message, bytes):
            raise TypeError(f"expected a binary message, got text: {message[:80]!r}")
        return message

    def receive_json(self, timeout: float | None = RECEIVE_TIMEOUT) -> Any:
        message = self.receive(timeout)
        return _json.loads(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``; nothing happens if already closed."""
        if not self._ws.closed:
            self._portal.call(self._ws.close, code, reason)

    def __repr__(self) -> str:
        return f"<TestWebSocket close_code={self.close_code}>"


class _Resources:
    """What a client must release; kept apart from the client so GC can close it."""

    def __init__(self) -> None:
        self.portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self.portal: BlockingPortal | None = None
        self.lifespan_cm: AbstractContextManager[None] | None = None
        self.app: SiteApp | None = None
        self.tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.websockets: set[TestWebSocket] = set()

    def close(self) -> None:
        try:
            for ws in list(self.websockets):
                try:
                    ws.close(1001)
                except Exception:  # best effort while shutting down
                    pass
            self.websockets.clear()
            if self.lifespan_cm is not None:
                cm, self.lifespan_cm = self.lifespan_cm, None
                cm.__exit__(None, None, None)
        finally:
            if self.portal_cm is not None:
                cm2, self.portal_cm = self.portal_cm, None
                self.portal = None
                cm2.__exit__(None, None, None)
            if self.app is not None:
                app, self.app = self.app, None
                app.close()
            if self.tempdir is not None:
                tmp, self.tempdir = self.tempdir, None
                tmp.cleanup()


class TestClient:
    """Run the site at ``site_dir`` in process.

    Args:
        site_dir: the site folder.
        dev: answer 500s with tracebacks, as ``kitpy dev`` does (default: as ``serve``).
        backend: ``"asyncio"`` or ``"trio"``.
        base_url: scheme and host of requests (``http://testserver``).
        client: the peer address the app sees (``event.client``).
        state_dir: where durable storage lives (default: a temporary folder).
    """

    __test__ = False

    def __init__(
        self,
        site_dir: str | os.PathLike[str],
        *,
        dev: bool = False,
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
        base_url: str = "http://testserver",
        client: tuple[str, int] = ("testclient", 50000),
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        base = urlsplit(base_url)
        self._scheme = base.scheme or "http"
        self._host = base.netloc or "testserver"
        self._peer = client
        #: Cookies kept between requests, by name.
        self.cookies: dict[str, str] = {}
        res = self._res = _Resources()
        self._finalizer = weakref.finalize(self, res.close)
        try:
            if state_dir is None:
                res.tempdir = tempfile.TemporaryDirectory(prefix="kitpy-test-")
                state = Path(res.tempdir.name)
            else:
                state = Path(state_dir)
            res.app = load_app(Path(site_dir), dev=dev, state_dir=state)
            res.app.task_grace = min(res.app.task_grace, TASK_GRACE)
            res.portal_cm = anyio.from_thread.start_blocking_portal(backend, backend_options)
            res.portal = res.portal_cm.__enter__()
            lifespan = res.portal.wrap_async_context_manager(res.app.lifespan())
            lifespan.__enter__()
            res.lifespan_cm = lifespan
        except BaseException:
            self._finalizer()
            raise

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def app(self) -> SiteApp:
        if self._res.app is None:
            raise RuntimeError("the TestClient is closed")
        return self._res.app

    @property
    def portal(self) -> BlockingPortal:
        """The blocking portal running the app, to call async code from a test."""
        if self._res.portal is None:
            raise RuntimeError("the TestClient is closed")
        return self._res.portal

    def close(self) -> None:
        """Close open WebSockets, leave the app's lifespan, stop the event loop."""
        self._finalizer()

    def __enter__(self) -> TestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- HTTP --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = _UNSET,
        data: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        cookies: Mapping[str, str] | None = None,
        params: QueryInit = None,
        follow_redirects: bool = False,
    ) -> TestResponse:
        """Send one request and read its response whole."""
        request = self._build(method, path, json, data, content, headers, cookies, params)
        for _ in range(20):
            response = self.portal.call(self._send, request)
            self._keep_cookies(response.headers)
            location = response.headers.get("location")
            if not follow_redirects or response.status_code not in (301, 302, 303, 307, 308):
                return response
            if location is None:
                return response
            keep_body = response.status_code in (307, 308)
            next_method = request.method if keep_body or request.method == "HEAD" else "GET"
            request = self._build(
                next_method,
                _join(request.url, location),
                json if keep_body else _UNSET,
                data if keep_body else None,
                content if keep_body else None,
                headers,
                cookies,
                None,
            )
        raise RuntimeError(f"more than 20 redirects from {path}")

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)

    async def _send(self, request: Request) -> TestResponse:
        response = await self.app(request)
        content = await _read_body(response)
        return TestResponse(response.status, response.headers, content, str(request.url))

    def _build(
        self,
        method: str,
        path: str,
        json: Any,
        data: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
        content: bytes | str | None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
        cookies: Mapping[str, str] | None,
        params: QueryInit,
    ) -> Request:
        scheme, host = self._scheme, self._host
        if "://" in path:
            parts = urlsplit(path)
            scheme, host = parts.scheme, parts.netloc
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        if not path.startswith("/"):
            path = "/" + path
        if params:
            query = params if isinstance(params, str) else urlencode(list(_pairs(params)))
            path += ("&" if "?" in path else "?") + query
        given = Headers(headers)
        out = Headers()
        out.add("host", given.get("host", host))
        out.add("user-agent", "kitpy-testclient")
        body: bytes = b""
        if json is not _UNSET:
            body = _json.dumps(json, separators=(",", ":")).encode()
            out.add("content-type", "application/json")
        elif data is not None:
            body = urlencode(list(_pairs(data))).encode()
            out.add("content-type", "application/x-www-form-urlencoded")
        elif content is not None:
            body = content.encode() if isinstance(content, str) else bytes(content)
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            out.add("content-length", str(len(body)))
        jar = {**self.cookies, **(cookies or {})}
        if jar and "cookie" not in given:
            out.add("cookie", "; ".join(f"{k}={v}" for k, v in jar.items()))
        for name in given:
            if name == "host":
                continue
            if name in out:
                del out[name]
            for value in given.get_all(name):
                out.add(name, value)
        url = URL.from_target(scheme, out["host"], path)
        return Request(method, url, out, body, client=self._peer)

    def _keep_cookies(self, headers: Headers) -> None:
        for value in headers.get_all("set-cookie"):
            first, *attrs = value.split(";")
            name, sep, cookie = first.strip().partition("=")
            if not sep or not name:
                continue
            expired = False
            for attr in attrs:
                key, _, val = attr.strip().partition("=")
                if key.lower() == "max-age":
                    try:
                        expired = int(val) <= 0
                    except ValueError:
                        pass
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = unquote(cookie)

    # -- WebSocket ---------------------------------------------------------------------

    @contextmanager
    def websocket(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        subprotocols: Iterable[str] | None = None,
        cookies: Mapping[str, str] | None = None,
        params: QueryInit = None,
    ) -> Iterator[TestWebSocket]:
        """Upgrade ``path`` to a WebSocket, through the app and its hooks.

        Raises:
            WebSocketRejectedError: the app answered anything but a 101 with a WebSocket
                (``.status_code`` and ``.response`` say what).
        """
        upgrade = Headers(
            {
                "connection": "Upgrade",
                "upgrade": "websocket",
                "sec-websocket-version": "13",
                "sec-websocket-key": base64.b64encode(os.urandom(16)).decode(),
            }
        )
        protocols = list(subprotocols or [])
        if protocols:
            upgrade["sec-websocket-protocol"] = ", ".join(protocols)
        upgrade.update(headers)
        request = self._build("GET", path, _UNSET, None, None, upgrade.items(), cookies, params)
        response, ws = self.portal.call(self._upgrade, request)
        self._keep_cookies(response.headers)
        if ws is None:
            raise WebSocketRejectedError(response)
        session = TestWebSocket(self.portal, ws, response)
        self._res.websockets.add(session)
        try:
            yield session
        finally:
            self._res.websockets.discard(session)
            if self._res.portal is not None:
                session.close(1000)

    async def _upgrade(self, request: Request) -> tuple[TestResponse, WebSocket | None]:
        response = await self.app(request)
        ws = response.websocket
        if response.status != 101 or ws is None:
            content = await _read_body(response)
            return TestResponse(response.status, response.headers, content, str(request.url)), None
        ws.accept()
        chosen = response.headers.get("sec-websocket-protocol")
        ws.protocol = None if chosen is None else chosen.strip()  # as the server sets it
        return TestResponse(101, response.headers, b"", str(request.url)), ws


async def _read_body(response: Response) -> bytes:
    if response.stream is None:
        return response.body or b""
    stream = response.stream
    if isinstance(stream, AsyncIterable):
        return b"".join([bytes(chunk) async for chunk in stream])
    return b"".join(bytes(chunk) for chunk in stream)


def _pairs(values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Iterator[tuple[str, str]]:
    items = values.items() if isinstance(values, Mapping) else values
    for key, value in items:
        if isinstance(value, list | tuple):
            for one in value:
                yield key, str(one)
        else:
            yield key, str(value)


def _join(url: URL, location: str) -> str:
    if "://" in location:
        return location
    if location.startswith("/"):
        return f"{url.origin}{location}"
    base = url.raw_path.rsplit("/", 1)[0]
    return f"{url.origin}{base}/{location}"
