"""One HTTP connection: bytes from the stream -> kitpy.protocol -> the app -> bytes back.

The loop runs in the connection's own task and handles requests one after another
(HTTP/1.1 pipelining answers in order by construction): no task is spawned per
request. The request body is read from the stream by the handler itself, through
:class:`_RequestBody`, only when and as fast as it asks for it.

Timeouts use one cancel scope around the whole connection, cancelled once
:meth:`HTTP11Protocol.deadline` passes while a request head is awaited (never while
the application runs); request body reads have their own inactivity timeout. On
Trio the scope's deadline follows the protocol's. On asyncio a timer of the
connection's own checks the deadline when it fires and, when it has not passed
(another request came meanwhile), sets itself again for the new one: a keep-alive
connection reschedules no timer per request, only about once per keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from enum import Enum, auto
from typing import Any

import anyio
import anyio.abc

from kitpy.errors import HTTPError
from kitpy.http.request import Request
from kitpy.http.response import Response
from kitpy.http.url import URL
from kitpy.protocol.events import NEED_DATA, BodyData, BodyEnd, ProtocolError, RequestHead
from kitpy.protocol.http11 import Framing, HTTP11Protocol, best_reader, error_response
from kitpy.protocol.limits import DEFAULT_LIMITS, Limits
from kitpy.protocol.websocket import FrameCache, accept_upgrade, origin_allowed, upgrade_problem
from kitpy.server.accesslog import StderrLog, client_label, format_line
from kitpy.server.requestid import REQUEST_ID, new_request_id, request_id_for
from kitpy.server.shutdown import ConnectionTracker
from kitpy.server.stream import FastStream
from kitpy.server.websocket import CallbackDriver, TaskDriver, websocket_driver
from kitpy.types import App

__all__ = ("ConnectionState", "handle_connection")

logger = logging.getLogger("kitpy.server")

#: Bytes asked of the stream per read.
RECEIVE_SIZE = 64 * 1024
#: After a response that closes the connection (a 413, 431 or 400, ``Connection:
#: close``) or a failing WebSocket close (1002, 1007, 1009...), the sending side is
#: shut down and what the client still sends is read and discarded, for at most this
#: long and this many bytes (a lingering close, as nginx does): closing a socket with
#: unread data makes the kernel answer with a reset, and the client may lose the
#: answer it had not read yet.
LINGER_TIMEOUT = 3.0
LINGER_BYTES = 256 * 1024 * 1024
#: Seconds a connection accepted just before a shutdown gets to send its first request
#: (it connected while the server still listened; closing it at once would reset it).
FRESH_GRACE = 0.25

_STREAM_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
_TEXT = "text/plain; charset=utf-8"
#: The request-head reader: httptools' C parser with ``kitpy[fast]``, else the plain one.
HEAD_READER: bool | str = best_reader()


class ConnectionState(Enum):
    """What a connection is doing, for graceful shutdown."""

    #: Waiting for the first byte of a request.
    IDLE = auto()
    #: Reading a request, running the app, or writing the response.
    BUSY = auto()
    #: Upgraded to a WebSocket.
    WEBSOCKET = auto()


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(message + "\n", status, headers)
    response.headers["content-type"] = _TEXT
    return response


_perf_counter = time.perf_counter
_DONE = Framing.DONE
_IDLE = ConnectionState.IDLE
_BUSY = ConnectionState.BUSY


class _RequestBody:
    """The request body as an async iterator reading the connection on demand.

    Raises :class:`HTTPError` 413 once the body passes ``max_body_bytes``, 400 when it
    is malformed or the client goes away, 408 when it stalls for ``header_timeout`` or
    is not whole ``body_timeout`` after the first read.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._connection.read_body()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _Connection:
    __slots__ = (
        "access_log",
        "allowed_origins",
        "app",
        "awaiting_head",
        "body_deadline",
        "body_sent",
        "broken",
        "client",
        "close_code",
        "draining",
        "driver",
        "fast",
        "frames",
        "fresh",
        "handshake",
        "limits",
        "linger",
        "loop",
        "protocol",
        "record",
        "request_id",
        "scheme",
        "scope",
        "state",
        "stream",
        "timer",
        "timer_at",
        "tracker",
        "who",
    )

    def __init__(
        self,
        app: App,
        stream: anyio.abc.ByteStream,
        *,
        client: tuple[str, int] | None,
        scheme: str,
        limits: Limits,
        access_log: Callable[[str], None] | None,
        allowed_origins: Sequence[str] | None,
        tracker: ConnectionTracker | None,
        frames: FrameCache | None,
    ) -> None:
        self.app = app
        self.stream = stream
        #: ``stream`` when it is a :class:`FastStream` (asyncio), which can write
        #: without a coroutine.
        self.fast = stream if isinstance(stream, FastStream) else None
        self.client = client
        self.scheme = scheme
        self.limits = limits
        self.access_log = access_log
        #: The access log's :meth:`StderrLog.hold` when it has one (takes the fields of
        #: a line, formatted when written), and the client as the log names it.
        self.record = access_log.hold if isinstance(access_log, StderrLog) else None
        self.who = client_label(client)
        self.allowed_origins = allowed_origins
        self.tracker = tracker
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # Trio
            self.loop = None
        self.protocol = HTTP11Protocol(
            limits, anyio.current_time if self.loop is None else self.loop.time, fast=HEAD_READER
        )
        #: asyncio: the head-deadline timer (see the module docstring), and whether the
        #: connection is waiting for a request head.
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf
        self.awaiting_head = False
        self.state = ConnectionState.IDLE
        self.scope = anyio.CancelScope()
        self.draining = False
        self.broken = False
        self.linger = False
        self.frames = frames
        #: Drives the WebSocket once the connection is upgraded, and the 101 it sends.
        self.driver: TaskDriver | CallbackDriver | None = None
        self.handshake = b""
        self.close_code = 1001
        #: Body bytes of the streamed response written so far (for the access log).
        self.body_sent = 0
        #: When the request body must have arrived (``anyio`` time); set by the first
        #: read that waits for the client.
        self.body_deadline: float | None = None
        #: The id of the current request (``X-Request-Id``; see kitpy.server.requestid).
        self.request_id = ""
        #: No request has started on this connection yet.
        self.fresh = True

    # -- shutdown (called by the tracker, from another task) ---------------------------------

    def shutdown(self, close_code: int) -> None:
        self.draining = True
        self.close_code = close_code
        if self.state is ConnectionState.IDLE and self.fresh:
            # Its first request may be on the way: answer it (with Connection: close).
            self.scope.deadline = min(self.scope.deadline, anyio.current_time() + FRESH_GRACE)
        elif self.state is ConnectionState.IDLE:
            self.scope.cancel()
        elif self.driver is not None:
            self.driver.shutdown(close_code)

    def cancel(self) -> None:
        self.scope.cancel()

    # -- I/O helpers ---------------------------------------------------------------------

    async def receive(self) -> bytes:
        try:
            return await self.stream.receive(RECEIVE_SIZE)
        except _STREAM_ERRORS:
            return b""

    async def send(self, data: bytes) -> bool:
        if self.broken:
            return False
        try:
            await self.stream.send(data)
        except _STREAM_ERRORS:
            self.broken = True
            return False
        return True

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        if self.tracker is not None:
            self.tracker.add(self)
        try:
            with self.scope:
                await self._serve()
                if self.driver is not None:
                    # Upgraded: the HTTP frames are gone, so an idle socket holds none
                    # of them (or the request head and response they saw).
                    await self.driver.run(self._take_handshake())
        finally:
            driver = self.driver
            if driver is not None and driver.broken:
                self.broken = True
            elif driver is not None and driver.linger:
                self.linger = True  # the socket was failed: let the client read the close
            self._stop_timer()
            if self.tracker is not None:
                self.tracker.discard(self)
            with anyio.CancelScope(shield=True):
                await self._close()

    def _take_handshake(self) -> bytes:
        handshake, self.handshake = self.handshake, b""
        return handshake

    async def _serve(self) -> None:
        protocol = self.protocol
        scope = self.scope
        stream = self.stream
        trio = self.loop is None
        # Whether the protocol may have an event before the next read: at first (the
        # stream may be at its end already), then when bytes of the next request came
        # with the previous one (pipelining). Else reading comes first, and
        # next_event() is asked once per request.
        ready = True
        while not self.draining:
            self.state = _IDLE
            try:
                event = protocol.next_event() if ready else NEED_DATA
                if event is NEED_DATA:
                    if trio:
                        scope.deadline = protocol.deadline()
                    else:
                        self.awaiting_head = True
                        if self.timer is None:
                            # A timer already set fires by the new deadline (deadlines
                            # only move later) and sets itself again for it.
                            self._arm_timer(protocol.deadline())
                    try:
                        while True:
                            try:
                                data = await stream.receive(RECEIVE_SIZE)
                            except _STREAM_ERRORS:
                                data = b""
                            protocol.receive_data(data)
                            event = protocol.next_event()
                            if event is not NEED_DATA:
                                break
                            if data:  # part of a head: now the header timeout runs
                                self.state = _BUSY
                                if trio:
                                    scope.deadline = protocol.deadline()
                    finally:
                        self.awaiting_head = False
                    if trio:
                        scope.deadline = math.inf
            except ProtocolError as exc:
                await self._protocol_error(exc, time.perf_counter())
                return
            if type(event) is not RequestHead:
                return  # the client closed between requests
            self.state = _BUSY
            self.fresh = False
            if not await self._handle(event):
                return
            ready = protocol.start_next_cycle()

    def _arm_timer(self, when: float) -> None:
        """Have :meth:`_on_timer` run by ``when`` (asyncio); a timer due earlier will do."""
        if self.timer is not None:
            if self.timer_at <= when:
                return
            self.timer.cancel()
        assert self.loop is not None
        self.timer_at = when
        self.timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = math.inf
        if not self.awaiting_head:
            return  # busy with a request: armed again when the next head is awaited
        deadline = self.protocol.deadline()
        assert self.loop is not None
        if self.loop.time() >= deadline:
            self.scope.cancel()
        else:
            self._arm_timer(deadline)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def _protocol_error(self, exc: ProtocolError, started: float) -> None:
        assert exc.status is not None
        head = self.protocol.head
        self.request_id = request_id = request_id_for(_raw_header(head, b"x-request-id"))
        REQUEST_ID.set(request_id)
        data = error_response(exc.status, exc.message, request_id=request_id)
        await self.send(data)
        self.linger = True
        if self.access_log is not None:
            if head is not None:
                method, target, version = head.method, head.target, head.http_version
            else:
                method, target, version = "-", "-", "1.1"
            self._log(method, target, version, exc.status, 0, started)

    def _log(
        self, method: str, target: str, version: str, status: int, size: int, started: float
    ) -> None:
        duration = _perf_counter() - started
        try:
            if self.record is not None:
                self.record(
                    (self.who, method, target, version, status, size, duration, self.request_id)
                )
            else:
                assert self.access_log is not None
                self.access_log(
                    format_line(
                        self.client,
                        method,
                        target,
                        version,
                        status,
                        size,
                        duration,
                        self.request_id,
                    )
                )
        except Exception:
            logger.exception("the access log failed")

    async def _handle(self, head: RequestHead) -> bool:
        """Answer one request; True when the connection may carry another."""
        started = _perf_counter()
        for name, value in head.headers:  # _raw_header(head, b"x-request-id"), inline
            if name == b"x-request-id":
                request_id = request_id_for(value)
                break
        else:
            request_id = new_request_id()
        self.request_id = request_id
        REQUEST_ID.set(request_id)  # for the log lines written while handling it
        protocol = self.protocol
        response: Response | None = None
        if head.upgrade is not None and "websocket" in head.upgrade:
            origin = _header(head, b"origin")
            if not origin_allowed(origin, head.host, self.allowed_origins):
                logger.warning("WebSocket upgrade refused: Origin %r is not allowed", origin)
                response = _plain(403, "WebSocket origin not allowed")
        if response is None:
            request = self._request(head)
            try:  # the app, in this coroutine: one frame less per request
                response = await self.app(request)
            except HTTPError as exc:
                response = _plain(exc.status, exc.message, exc.headers)
            except Exception:
                logger.exception("the app failed on %s %s", head.method, head.target)
                response = _plain(500, "Internal Server Error")
            else:
                if not isinstance(response, Response):
                    logger.error(
                        "the app answered %s %s with %r, not a Response",
                        head.method,
                        head.target,
                        type(response).__name__,
                    )
                    response = _plain(500, "Internal Server Error")
        status = response.status
        if status < 200:
            if status == 101:
                if self._upgrade(head, response, started):
                    return False  # run() drives the socket
            else:
                logger.error(
                    "the app answered %s with status %s: not a final response", head.target, status
                )
            response = _plain(500, "Internal Server Error")
            status = 500
        if self.draining:
            protocol.keep_alive = False
        body = response.body
        try:
            # The header pairs themselves, not a copy: the writer only reads them.
            data, framing = protocol.encode_response(
                status, response.headers._items, body, request_id
            )
        except (UnicodeEncodeError, ValueError) as exc:
            logger.error("cannot encode the response headers for %s: %s", head.target, exc)
            _close_stream(response.stream)
            status = 500
            data, framing = protocol.encode_response(
                500, [("content-type", _TEXT)], b"Internal Server Error\n", request_id
            )
            body = b""
        if framing is _DONE:
            # The body bytes written: none for HEAD, 204 and 304 (the writer drops them).
            size = (
                0
                if body is None or head.method == "HEAD" or status == 304 or status == 204
                else len(body)
            )
            if response.stream is not None:
                _close_stream(response.stream)
            try:  # self.send() without its coroutine, and the write without one on asyncio
                fast = self.fast
                if fast is None:
                    await self.stream.send(data)
                else:
                    rest = fast.start_send(data)
                    if rest is not None:
                        await rest
            except _STREAM_ERRORS:
                self.broken = True
                return False
        else:
            if not await self.send(data):
                _close_stream(response.stream)
                return False
            sent = await self._send_stream(response.stream)
            if sent is None:
                if self.access_log is not None:
                    size = self.body_sent  # what was written before the stream stopped
                    self._log(head.method, head.target, head.http_version, status, size, started)
                return False
            size = sent
        record = self.record
        if record is not None:
            record(
                (
                    self.who,
                    head.method,
                    head.target,
                    head.http_version,
                    status,
                    size,
                    _perf_counter() - started,
                    request_id,
                )
            )
        elif self.access_log is not None:
            self._log(head.method, head.target, head.http_version, status, size, started)
        if not protocol.keep_alive:
            self.linger = True
            return False
        if not protocol.body_done:
            return await self._drain()
        return True

    def _request(self, head: RequestHead) -> Request:
        """The request the app gets for ``head`` (its body read on demand)."""
        protocol = self.protocol
        if not protocol.body_done:
            self.body_deadline = None
        target = head.target
        return Request.from_wire(
            head.method,
            URL.from_target(self.scheme, head.host, target)
            if target.startswith("/")
            else _url(self.scheme, head),
            head.headers,
            None if protocol.body_done else _RequestBody(self),
            client=self.client,
        )

    def _upgrade(self, head: RequestHead, response: Response, started: float) -> bool:
        """Accept a WebSocket handshake: :attr:`driver` runs it; False if it is invalid."""
        end = response.websocket
        problem = upgrade_problem(head)
        if end is None:
            problem = "a 101 response needs a websocket end"
        elif problem is None and not self.protocol.body_done:
            problem = "a WebSocket handshake has no body"
        if problem is None:
            assert end is not None
            try:
                headers = [(n, v) for n, v in response.headers.items() if n != "x-request-id"]
                headers.append(("x-request-id", self.request_id))
                handshake, protocol, subprotocol = accept_upgrade(
                    head,
                    headers,
                    self.limits,
                    anyio.current_time,
                    trailing_data=self.protocol.trailing_data,
                    frames=self.frames,
                )
            except (ValueError, UnicodeEncodeError) as exc:
                problem = str(exc)
        if problem is not None:
            logger.error("the app answered %s with 101, but %s", head.target, problem)
            if end is not None:
                end.close_now(1011, "WebSocket handshake failed")
            return False
        assert end is not None
        self.state = ConnectionState.WEBSOCKET
        self._stop_timer()
        self.protocol.release()  # HTTP is over on this connection; keep no parser per socket
        driver = websocket_driver(self.stream, protocol, end, self.limits, self.scope, subprotocol)
        self.driver = driver
        self.handshake = handshake
        if self.access_log is not None:
            self._log(head.method, head.target, head.http_version, 101, 0, started)
        if self.draining:
            driver.shutdown(self.close_code)
        return True

    # -- bodies --------------------------------------------------------------------------

    async def read_body(self) -> bytes | None:
        """The next request body chunk, None at its end (see :class:`_RequestBody`)."""
        protocol = self.protocol
        if protocol.body_done:
            return None
        if protocol.waiting_for_continue:
            if not await self.send(protocol.continue_response()):
                raise HTTPError(400, "the client went away")
        while True:
            try:
                event = protocol.next_event()
            except ProtocolError as exc:
                assert exc.status is not None
                protocol.keep_alive = False
                raise HTTPError(exc.status, exc.message) from None
            if isinstance(event, BodyData):
                return event.data
            if isinstance(event, BodyEnd):
                return None
            if event is NEED_DATA:
                limits = self.limits
                now = anyio.current_time()
                deadline = self.body_deadline
                if deadline is None:
                    deadline = self.body_deadline = now + limits.body_timeout
                data = b""
                with anyio.move_on_at(min(now + limits.header_timeout, deadline)) as stalled:
                    data = await self.receive()
                if not data:
                    protocol.keep_alive = False
                    if stalled.cancelled_caught:
                        if anyio.current_time() >= deadline:
                            raise HTTPError(408, "the request body took too long")
                        raise HTTPError(408, "the request body stalled")
                    raise HTTPError(400, "the client closed before sending the whole body")
                protocol.receive_data(data)
                continue
            protocol.keep_alive = False
            raise HTTPError(400, "the request body ended early")

    async def _drain(self) -> bool:
        """Read and drop the rest of an unread request body (bounded by the protocol)."""
        try:
            while await self.read_body() is not None:
                pass
        except HTTPError:
            return False
        return self.protocol.keep_alive

    async def _send_stream(self, body: AsyncIterable[bytes] | Iterable[bytes] | None) -> int | None:
        """Stream a response body; its size, or None when the connection must close.

        :attr:`body_sent` counts the bytes written, also when the stream stops early.
        """
        protocol = self.protocol
        self.body_sent = 0
        try:
            if isinstance(body, AsyncIterable):
                if protocol.body_done:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._watch_disconnect, tg.cancel_scope)
                        await self._send_async(body)
                        tg.cancel_scope.cancel()
                else:
                    await self._send_async(body)
            elif body is not None:
                # A plain iterator runs in this task: the runtime wraps blocking ones.
                for chunk in body:
                    await self._send_chunk(chunk)
            if self.broken:
                return None
            end = protocol.encode_end()
            if end and not await self.send(end):
                return None
        except _Abort:
            return None
        except ValueError as exc:
            logger.error("bad streamed response: %s", exc)
            return None
        except Exception:
            logger.exception("the response stream failed")
            return None
        finally:
            _close_stream(body)
        if self.broken:
            return None
        return self.body_sent

    async def _send_async(self, body: AsyncIterable[bytes]) -> None:
        iterator = body.__aiter__()
        try:
            async for chunk in iterator:
                await self._send_chunk(chunk)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def _send_chunk(self, chunk: Any) -> None:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        elif not isinstance(chunk, bytes):
            if isinstance(chunk, bytearray | memoryview):
                chunk = bytes(chunk)
            else:
                raise TypeError(
                    f"a streamed response body yields bytes, not {type(chunk).__name__}"
                )
        if not chunk:
            return
        if not await self.send(self.protocol.encode_body(chunk)):
            raise _Abort
        self.body_sent += len(chunk)

    async def _watch_disconnect(self, scope: anyio.CancelScope) -> None:
        """While a response streams, notice a client that goes away."""
        data = await self.receive()
        protocol = self.protocol
        protocol.receive_data(data)  # a pipelined request is kept for later; b"" is EOF
        if data or protocol.body_complete:
            # A client that has the whole response may close: the response went out
            # (the rest of the stream runs to its end, the connection closes after).
            return
        self.broken = True
        scope.cancel()

    # -- closing -------------------------------------------------------------------------

    async def _close(self) -> None:
        stream = self.stream
        if self.linger and not self.broken:
            try:
                await stream.send_eof()
            except (*_STREAM_ERRORS, NotImplementedError):
                pass
            else:
                # Read until the client closes, so our close does not reset the
                # connection while it still reads the response.
                with anyio.move_on_after(LINGER_TIMEOUT):
                    discarded = 0
                    while discarded < LINGER_BYTES:
                        data = await self.receive()
                        if not data:
                            break
                        discarded += len(data)
        try:
            await stream.aclose()
        except _STREAM_ERRORS:
            pass


class _Abort(Exception):
    """The client went away while a response streamed."""


def _close_stream(body: object) -> None:
    close = getattr(body, "close", None)
    if close is not None and callable(close) and not isinstance(body, AsyncIterable):
        try:
            close()
        except Exception:
            logger.exception("closing a response stream failed")


def _raw_header(head: RequestHead | None, name: bytes) -> bytes | None:
    if head is not None:
        for key, value in head.headers:
            if key == name:
                return value
    return None


def _header(head: RequestHead, name: bytes) -> str | None:
    value = _raw_header(head, name)
    return None if value is None else value.decode("latin-1")


def _url(scheme: str, head: RequestHead) -> URL:
    target = head.target
    if target.startswith("/"):
        return URL.from_target(scheme, head.host, target)
    if "://" in target:  # absolute-form (RFC 9112 section 3.2.2)
        return URL(target)
    return URL.from_target(scheme, head.host, "/")  # "*" (OPTIONS) and authority-form


async def handle_connection(
    app: App,
    stream: anyio.abc.ByteStream,
    *,
    client: tuple[str, int] | None,
    scheme: str = "http",
    limits: Limits = DEFAULT_LIMITS,
    access_log: Callable[[str], None] | None = None,
    allowed_origins: Sequence[str] | None = None,
    tracker: ConnectionTracker | None = None,
    frames: FrameCache | None = None,
) -> None:
    """Serve HTTP/1.1 (and WebSockets) on ``stream`` until either side closes it.

    Any :class:`anyio.abc.ByteStream` works, so tests can drive this in memory. The
    stream is closed on return. ``tracker`` registers the connection for a graceful
    shutdown; ``frames`` is the server's cache that frames a broadcast once.
    """
    connection = _Connection(
        app,
        stream,
        client=client,
        scheme=scheme,
        limits=limits,
        access_log=access_log,
        allowed_origins=allowed_origins,
        tracker=tracker,
        frames=frames,
    )
    await connection.run()
