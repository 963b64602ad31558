"""serve(app, host, port, limits): listeners, the connections' tasks, the lifecycle.

Lifecycle: bind, enter ``app.lifespan()``, accept connections (at most
``max_connections`` at once: the accept loop waits for a free slot, so further
clients wait in the listen backlog), and on a stop request shut down gracefully
(see :mod:`kitpy.server.shutdown`), then leave the lifespan.

:func:`serve` stops when it is cancelled, and still drains gracefully: the serving
part runs in a shielded scope while a watcher task outside it turns the
cancellation into a stop request. :func:`run` is the blocking entry point the CLI
uses, with SIGINT/SIGTERM handling.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from kitpy.protocol.limits import DEFAULT_LIMITS, Limits
from kitpy.protocol.websocket import FrameCache
from kitpy.server.accesslog import print_to_stderr
from kitpy.server.connection import handle_connection
from kitpy.server.shutdown import ConnectionTracker, watch_signals
from kitpy.server.stream import accept_fast, running_asyncio
from kitpy.types import App

__all__ = ("run", "serve")

logger = logging.getLogger("kitpy.server")

Address = tuple[str, int]
_BACKENDS = ("asyncio", "trio")


def _address(raw: Any) -> Address | None:
    if isinstance(raw, tuple) and len(raw) >= 2:
        return str(raw[0]), int(raw[1])
    return None


@contextmanager
def _unwrap_groups() -> Iterator[None]:
    """Re-raise a task group's lone error as itself (``OSError: address in use``)."""
    try:
        yield
    except BaseExceptionGroup as group:
        errors = _leaves(group)
        if len(errors) == 1:
            raise errors[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


#: Connections accepted at once when several wait (asyncio).
ACCEPT_BATCH = 64


def _release(slots: anyio.Semaphore, count: int) -> None:
    for _ in range(count):
        slots.release()


class _Server:
    """One listening server; stop it with :meth:`request_stop` (graceful) or :meth:`force_stop`."""

    def __init__(
        self,
        app: App,
        *,
        limits: Limits,
        allowed_origins: Sequence[str] | None,
        access_log: Callable[[str], None] | None,
        shutdown_close_code: int,
    ) -> None:
        self.app = app
        self.limits = limits
        self.allowed_origins = list(allowed_origins) if allowed_origins is not None else None
        self.access_log = access_log
        self.shutdown_close_code = shutdown_close_code
        self.tracker = ConnectionTracker()
        #: Frames the last message sent, so a broadcast to many sockets is framed once.
        self.frames = FrameCache()
        self._stop = anyio.Event()
        self._slots = anyio.Semaphore(limits.max_connections)
        self._connections: anyio.CancelScope | None = None
        #: asyncio: the connections' tasks, made plainly. An anyio task (its handle,
        #: cancel scope and event) costs about 3 KiB more per connection, held for as
        #: long as an idle WebSocket lives; they are cancelled through the tracker.
        self._tasks: set[asyncio.Task[None]] = set()

    def request_stop(self) -> None:
        """Begin a graceful shutdown."""
        self._stop.set()

    def force_stop(self) -> None:
        """Stop now: cancel every connection."""
        self._stop.set()
        if self._connections is not None:
            self._connections.cancel()
        self.tracker.cancel_all()

    async def run(
        self,
        host: str,
        port: int,
        *,
        on_ready: Callable[[list[Address]], None] | None = None,
        sockets: Sequence[socket.socket] | None = None,
        task_status: anyio.abc.TaskStatus[list[Address]] = anyio.TASK_STATUS_IGNORED,
        reuse_port: bool = False,
    ) -> None:
        """Serve until :meth:`request_stop`, then drain and return.

        With ``sockets`` (already listening, e.g. inherited from ``kitpy dev``'s
        supervisor) ``host`` and ``port`` are not bound; the sockets are closed here
        on the way out, which leaves other holders of the same socket listening.
        ``reuse_port`` sets SO_REUSEPORT on the sockets bound here, so several
        processes share the port (``kitpy serve --workers``).
        """
        if sockets is None:
            multi = await anyio.create_tcp_listener(
                local_host=host, local_port=port, reuse_port=reuse_port
            )
            # create_tcp_listener only makes SocketListeners (one per address family).
            listeners = [cast(anyio.abc.SocketListener, item) for item in multi.listeners]
        else:
            listeners = [await anyio.abc.SocketListener.from_socket(sock) for sock in sockets]
        try:
            addresses = [
                address
                for listener in listeners
                if (address := _address(listener.extra(SocketAttribute.local_address)))
            ]
            async with self.app.lifespan():
                async with anyio.create_task_group() as connections:
                    self._connections = connections.cancel_scope
                    async with anyio.create_task_group() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept_loop, listener, connections)
                        task_status.started(addresses)
                        if on_ready is not None:
                            on_ready(addresses)
                        await self._stop.wait()
                        accepting.cancel_scope.cancel()
                    for listener in listeners:
                        await listener.aclose()
                    self.tracker.begin_shutdown(self.shutdown_close_code)
                    with anyio.move_on_after(self.limits.shutdown_timeout):
                        await self.tracker.wait_empty()
                    if len(self.tracker):
                        logger.warning(
                            "%d connection(s) still open after %.1f s: closing them",
                            len(self.tracker),
                            self.limits.shutdown_timeout,
                        )
                    connections.cancel_scope.cancel()
                    self.tracker.cancel_all()
                    with anyio.CancelScope(shield=True):
                        while self._tasks:
                            await asyncio.wait(list(self._tasks))
        finally:
            with anyio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        connections: anyio.abc.TaskGroup,
    ) -> None:
        slots = self._slots
        # On asyncio, connections get kitpy's FastStream (see kitpy.server.stream),
        # accepted in batches.
        fast = running_asyncio()
        loop = asyncio.get_running_loop() if fast else None
        tasks = self._tasks
        while True:
            await slots.acquire()
            taken = 1
            while fast and taken < ACCEPT_BATCH and slots.value > 0:
                slots.acquire_nowait()
                taken += 1
            try:
                if fast:
                    streams: list[anyio.abc.SocketStream] = list(await accept_fast(listener, taken))
                else:
                    streams = [await listener.accept()]
            except anyio.ClosedResourceError:
                _release(slots, taken)
                return
            except OSError as exc:  # EMFILE and friends: wait, do not spin
                _release(slots, taken)
                logger.error("accept() failed: %s", exc)
                await anyio.sleep(0.1)
                continue
            except BaseException:
                _release(slots, taken)
                raise
            _release(slots, taken - len(streams))
            for stream in streams:
                if loop is not None:
                    task = loop.create_task(self._connection(stream))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    connections.start_soon(self._connection, stream)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        try:
            try:
                client = _address(stream.extra(SocketAttribute.remote_address))
            except (OSError, anyio.TypedAttributeLookupError):
                client = None
            await handle_connection(
                self.app,
                stream,
                client=client,
                limits=self.limits,
                access_log=self.access_log,
                allowed_origins=self.allowed_origins,
                tracker=self.tracker,
                frames=self.frames,
            )
        except Exception:
            logger.exception("a connection failed")
        finally:
            self._slots.release()

    async def run_until_cancelled(
        self,
        host: str,
        port: int,
        *,
        on_ready: Callable[[list[Address]], None] | None,
        task_status: anyio.abc.TaskStatus[list[Address]],
    ) -> None:
        """:meth:`run`, stopping gracefully (shielded) when the caller is cancelled."""

        async def watch_cancel() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                self.request_stop()

        with _unwrap_groups():
            async with anyio.create_task_group() as watcher:
                watcher.start_soon(watch_cancel)
                with anyio.CancelScope(shield=True):
                    await self.run(host, port, on_ready=on_ready, task_status=task_status)
                watcher.cancel_scope.cancel()


async def serve(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits = DEFAULT_LIMITS,
    allowed_origins: Sequence[str] | None = None,
    access_log: Callable[[str], None] | None = print_to_stderr,
    shutdown_close_code: int = 1001,
    on_ready: Callable[[list[Address]], None] | None = None,
    task_status: anyio.abc.TaskStatus[list[Address]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled, then shut down gracefully.

    ``task_status.started(addresses)`` and ``on_ready(addresses)`` report the bound
    ``(host, port)`` pairs once listening (port 0 picks a free port). Cancellation
    drains like a signal: no new connections, requests in flight finish (within
    ``limits.shutdown_timeout``), WebSockets close with ``shutdown_close_code``, and
    ``app.lifespan()`` is left before this returns (re-raising the cancellation).
    """
    server = _Server(
        app,
        limits=limits,
        allowed_origins=allowed_origins,
        access_log=access_log,
        shutdown_close_code=shutdown_close_code,
    )
    await server.run_until_cancelled(host, port, on_ready=on_ready, task_status=task_status)


def run(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits = DEFAULT_LIMITS,
    backend: str = "asyncio",
    allowed_origins: Sequence[str] | None = None,
    access_log: Callable[[str], None] | None = print_to_stderr,
    shutdown_close_code: int = 1001,
    on_ready: Callable[[list[Address]], None] | None = None,
    sockets: Sequence[socket.socket] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down gracefully and return.

    ``backend`` is ``"asyncio"`` (with uvloop when it is installed) or ``"trio"``. A
    second signal during the shutdown closes every connection at once. ``sockets``:
    listening sockets to accept on instead of binding ``host:port``. ``reuse_port``
    lets other processes listen on the same port (``kitpy serve --workers``). See
    :func:`serve` for the other arguments. Every object made before the call is
    frozen out of the garbage collector's passes (:func:`gc.freeze`): the
    application is loaded by then and lives as long as the process.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
    options: dict[str, Any] = {}
    if backend == "asyncio" and importlib.util.find_spec("uvloop") is not None:
        options["use_uvloop"] = True
    # The site is loaded: what exists now (modules, routes, the app) lives as long as
    # the process. Frozen, it is left out of every later collection, so the full ones
    # that run now and then while serving are shorter (the tail latency).
    gc.collect()
    gc.freeze()

    async def main() -> None:
        server = _Server(
            app,
            limits=limits,
            allowed_origins=allowed_origins,
            access_log=access_log,
            shutdown_close_code=shutdown_close_code,
        )
        with _unwrap_groups():
            async with anyio.create_task_group() as tg:
                await tg.start(watch_signals, server.request_stop, server.force_stop)
                await server.run(
                    host, port, on_ready=on_ready, sockets=sockets, reuse_port=reuse_port
                )
                tg.cancel_scope.cancel()

    anyio.run(main, backend=backend, backend_options=options)
