"""The object system: one live instance per (namespace, id), and every task it runs.

:class:`ObjectSystem` is what the runtime creates (one per site) and enters with
``async with system.run():``. Inside it:

- ``system.namespace(name)`` gives the :class:`~kitpy.objects.namespace.Namespace`
  the runtime puts in ``event.platform.env``;
- the first event for an id builds its instance, ``cls(state, env)``; later events
  reuse it. An instance with no event running or waiting, no open accepted WebSocket
  and no background task for ``idle_timeout`` seconds is evicted from memory; its
  storage stays, and the next event builds a fresh instance;
- every task -- stub fetches, WebSocket readers, alarm timers, ``wait_until`` work,
  the eviction sweep -- belongs to the task group of ``run()``. On exit accepted
  WebSockets are closed with 1001, the tasks are cancelled, and the storage backend is
  closed (``backend.aclose()`` flushes every pending write).

Events run in their own tasks, not in the caller's: a caller that gives up (its
client went away) does not cancel the object's work half-way, as on Cloudflare.

On a cluster node the system is given a :class:`Router`: an event for an object with
no live instance here goes through it (it runs the event here if this node owns the
object, else forwards it to the owner; events the owner receives come back with
``routed=False``). On one process there is no router and nothing changes.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import anyio
import anyio.abc

from kitpy.errors import HTTPError
from kitpy.http.request import Request
from kitpy.http.response import Response
from kitpy.http.results import to_response
from kitpy.http.websocket import WebSocket, WebSocketClosed
from kitpy.objects import rpc
from kitpy.objects.alarms import MAX_RETRIES, RETRY_DELAY, AlarmScheduler
from kitpy.objects.base import DurableObject
from kitpy.objects.gate import InputGate, ObjectResetError, Outcome, Ticket
from kitpy.objects.ids import ObjectId
from kitpy.objects.namespace import Namespace
from kitpy.objects.state import DurableObjectState
from kitpy.storage.base import StorageBackend

__all__ = ("ObjectSystem", "Router")

logger = logging.getLogger("kitpy.objects")

T = TypeVar("T")
_Key = tuple[str, str]  # (namespace, object id hex)

#: Default seconds an object stays in memory with nothing to do.
IDLE_TIMEOUT = 30.0
#: Close code and reason for accepted WebSockets at shutdown (RFC 6455 7.4.1).
GOING_AWAY = 1001
#: Close code for the sockets of an object that was reset ("internal error").
INTERNAL_ERROR = 1011
#: Close code for the sockets of an object whose node lost it ("service restart").
SERVICE_RESTART = 1012


class _Entry:
    """One live instance and its bookkeeping; the :class:`ObjectHost` of its state."""

    def __init__(self, system: ObjectSystem, object_id: ObjectId) -> None:
        self.system = system
        self.key: _Key = (object_id.namespace, str(object_id))
        self.gate = InputGate(f"{object_id.namespace}/{object_id}")
        storage = system._backend.storage(*self.key)
        self.state = DurableObjectState(object_id, storage, self.gate, self)
        self.tasks = 0  # readers, wait_until and block_concurrency_while tasks running
        self.scopes: set[anyio.CancelScope] = set()
        self.reading: set[WebSocket] = set()  # sockets with a delivery task running
        self.dead = False
        self.touched = anyio.current_time()
        cls = system._classes[object_id.namespace]
        self.instance: DurableObject = cls(self.state, system._env)

    @property
    def idle(self) -> bool:
        return not (self.gate.busy or self.tasks or self.state.has_websockets)

    # -- ObjectHost -----------------------------------------------------------------------

    def spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        self.tasks += 1

        async def run() -> None:
            try:
                if self.dead:
                    return
                with anyio.CancelScope() as scope:
                    self.scopes.add(scope)
                    try:
                        await work()
                    except ObjectResetError:
                        if not self.dead:
                            raise
                    except Exception:
                        logger.exception("a background task of %s/%s raised", *self.key)
                    finally:
                        self.scopes.discard(scope)
            finally:
                self.tasks -= 1
                self.touched = anyio.current_time()

        try:
            self.system._spawn(run)
        except BaseException:
            self.tasks -= 1
            raise

    def websocket_ready(self, ws: WebSocket) -> None:
        # No task waits on an idle socket: its driver (the state's) calls this when it
        # has news, and a delivery task runs only until it has drained what was queued.
        if ws in self.reading or self.dead:
            return
        first: str | bytes | None = None
        if self.state.auto_response is not None:
            # Where an incoming message is first seen: the auto-response is answered
            # here, with no task and no event; only another message starts a reader.
            try:
                while (first := ws.receive_nowait()) is not None:
                    if not self.state.auto_answer(ws, first):
                        break
                else:
                    return
            except WebSocketClosed:
                first = None  # the reader finds the close again and delivers it
        self.reading.add(ws)
        try:
            self.spawn(lambda: self._read(ws, first))
        except BaseException:
            self.reading.discard(ws)
            raise

    def alarm_changed(self, when: float | None) -> None:
        if when is None:
            self.system._alarms.delete(*self.key)
        else:
            self.system._alarms.set(*self.key, when)

    def reset(self, error: BaseException) -> None:
        logger.error(
            "durable object %s/%s is reset: block_concurrency_while() raised",
            *self.key,
            exc_info=error,
        )
        self.kill(error, INTERNAL_ERROR, "durable object reset")

    # -- lifecycle ------------------------------------------------------------------------

    def kill(self, error: BaseException, code: int, reason: str) -> None:
        """Forget this instance: close its sockets, fail its waiting events, stop its tasks."""
        if self.dead:
            return
        self.dead = True
        if self.system._entries.get(self.key) is self:
            del self.system._entries[self.key]
        self.gate.break_(error)
        for scope in list(self.scopes):
            scope.cancel()
        for ws in self.state.get_websockets():
            ws.close_now(code, reason)

    # -- events ---------------------------------------------------------------------------

    async def event(self, handler: Callable[[], Awaitable[T]], ticket: Ticket | None = None) -> T:
        """Run ``handler`` as one event of this object, then apply the output gate."""
        try:
            async with self.gate.event(ticket):
                try:
                    result = await handler()
                except Exception:
                    await self._flush_quietly()
                    raise
                await self.state.storage.flush()
                return result
        finally:
            self.touched = anyio.current_time()

    async def _flush_quietly(self) -> None:
        try:
            await self.state.storage.flush()
        except Exception:
            logger.exception("storage of %s/%s failed to sync", *self.key)

    async def _read(self, ws: WebSocket, first: str | bytes | None) -> None:
        """Deliver ``first`` and ``ws``'s queued messages one at a time, in order, then
        its close; an auto-response's request is answered without an event.

        Returns once nothing is queued; the socket's driver starts the next run. Once
        the close is taken the socket is CLOSED and tells of nothing more, so the close
        is delivered once.
        """
        obj = self.instance
        state = self.state
        try:
            while True:
                if first is None:
                    try:
                        queued = ws.receive_nowait()
                    except WebSocketClosed as closed:
                        code, reason = closed.code, closed.reason
                        break
                    if queued is None:
                        return  # `reading` is cleared below with no await in between
                    if state.auto_response is not None and state.auto_answer(ws, queued):
                        continue
                    message = queued
                else:
                    message, first = first, None
                await self._socket_event(ws, functools.partial(obj.websocket_message, ws, message))
        finally:
            self.reading.discard(ws)
        await self._socket_event(ws, lambda: obj.websocket_close(ws, code, reason))

    async def _socket_event(self, ws: WebSocket, handler: Callable[[], Awaitable[None]]) -> None:
        if self.dead:
            return  # reset or shut down: nothing is delivered to the old instance

        async def guarded() -> None:
            try:
                await handler()
            except Exception as exc:
                # One socket's failing handler must not stop its reader, its siblings
                # or the server: hand it to websocket_error (which logs by default).
                try:
                    await self.instance.websocket_error(ws, exc)
                except Exception:
                    logger.exception(
                        "%s.websocket_error() raised", type(self.instance).__qualname__
                    )

        try:
            await self.event(guarded)
        except ObjectResetError:
            raise
        except Exception:
            # The output gate failed (a storage error): log it and keep reading.
            logger.exception("%s/%s: a WebSocket event failed", *self.key)


class Router(Protocol):
    """Where the events of objects with no live instance here go (a cluster node)."""

    async def fetch(self, object_id: ObjectId, request: Request) -> Response: ...
    async def call(self, object_id: ObjectId, payload: bytes) -> bytes: ...
    async def alarm(self, namespace: str, object_id: str) -> None: ...
    def released(self, namespace: str, object_id: str) -> None:
        """An idle instance left memory here."""

    def serving(self) -> bool:
        """False once this node may no longer own anything (its lease deadline passed)."""


class ObjectSystem:
    """Every durable object of a site: bindings, live instances, alarms, tasks.

    Args:
        backend: the site's storage (one for every namespace).
        classes: binding name -> DurableObject subclass (``[objects]`` of kitpy.toml).
        env: what each object receives as ``env`` (the runtime's platform env).
        idle_timeout: seconds without activity before an instance leaves memory.
        alarm_retry_delay: first retry delay of a failing ``alarm()``; doubles each time.
        alarm_max_retries: retries of a failing ``alarm()`` before it is dropped.
        router: on a cluster node, where events of objects not live here go.
    """

    def __init__(
        self,
        backend: StorageBackend,
        classes: Mapping[str, type[DurableObject]],
        env: Any,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        alarm_retry_delay: float = RETRY_DELAY,
        alarm_max_retries: int = MAX_RETRIES,
        router: Router | None = None,
    ) -> None:
        for name, cls in classes.items():
            if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
                raise TypeError(
                    f"durable object binding {name!r}: {cls!r} is not a subclass of "
                    "kitpy.DurableObject; define `class X(DurableObject): ...`"
                )
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
        self._backend = backend
        self._classes = dict(classes)
        self._env = env
        self._idle_timeout = idle_timeout
        self._entries: dict[_Key, _Entry] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._alarms = AlarmScheduler(
            self, retry_delay=alarm_retry_delay, max_retries=alarm_max_retries
        )
        self._tg: anyio.abc.TaskGroup | None = None
        self._router = router

    @property
    def bindings(self) -> Mapping[str, type[DurableObject]]:
        """Binding name -> class."""
        return self._classes

    def namespace(self, name: str) -> Namespace:
        """The namespace bound as ``name`` (its ids, stubs)."""
        if name not in self._classes:
            bound = ", ".join(sorted(self._classes)) or "none"
            raise KeyError(f"no durable object binding named {name!r} (bound: {bound})")
        namespace = self._namespaces.get(name)
        if namespace is None:
            namespace = self._namespaces[name] = Namespace(name, self)
        return namespace

    def run(self) -> AbstractAsyncContextManager[None]:
        """Own every task of the objects while the ``async with`` block runs."""
        return self._run()

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        if self._tg is not None:
            raise RuntimeError("this ObjectSystem is already running")
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                try:
                    await self._rearm_alarms()
                    tg.start_soon(self._sweep)
                    yield
                except Exception as exc:
                    # Raised below, outside the task group, so the caller gets it as
                    # is rather than wrapped in an ExceptionGroup.
                    failure = exc
                finally:
                    self._tg = None
                    for entry in list(self._entries.values()):
                        entry.kill(RuntimeError("the server is shutting down"), GOING_AWAY, "")
                    tg.cancel_scope.cancel()
        finally:
            self._tg = None
            self._entries.clear()
            await self._backend.aclose()
        if failure is not None:
            raise failure

    # -- tasks ----------------------------------------------------------------------------

    def _check_running(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError(
                "durable objects are used outside ObjectSystem.run(); "
                "enter `async with system.run():` first"
            )
        return self._tg

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        tg = self._check_running()

        async def task() -> None:
            await work()

        tg.start_soon(task)

    def spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """For the alarm scheduler: a task that is cancelled at shutdown."""
        self._spawn(work)

    async def _sweep(self) -> None:
        """Evict idle instances, checking a few times per ``idle_timeout``."""
        interval = max(self._idle_timeout / 4, 0.005)
        while True:
            await anyio.sleep(interval)
            now = anyio.current_time()
            for entry in list(self._entries.values()):
                if entry.idle and now - entry.touched >= self._idle_timeout:
                    del self._entries[entry.key]
                    entry.dead = True
                    if self._router is not None:
                        self._router.released(*entry.key)

    async def _rearm_alarms(self) -> None:
        for namespace, object_id, when in await self._backend.pending_alarms():
            if namespace not in self._classes:
                logger.warning(
                    "an alarm of %s/%s is stored, but no binding %r exists; not armed",
                    namespace,
                    object_id,
                    namespace,
                )
                continue
            self._alarms.set(namespace, object_id, when)

    # -- instances and events -------------------------------------------------------------

    def _entry(self, object_id: ObjectId) -> _Entry:
        key = (object_id.namespace, str(object_id))
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(self, object_id)
            if not entry.dead:  # block_concurrency_while in __init__ may have failed
                self._entries[key] = entry
        return entry

    def is_live(self, namespace: str, object_id: str) -> bool:
        """True while an instance of the object is in memory here."""
        return (namespace, object_id) in self._entries

    def _routes(self, namespace: str, object_id: str, routed: bool) -> Router | None:
        """The router to send this event through, or None to run it here."""
        router = self._router
        if router is None or not routed:
            return None
        if (namespace, object_id) in self._entries:
            if router.serving():
                return None
            # Paused past its lease (SIGSTOP, a partition): another node may own the
            # object now, so the instance here is stale. Drop it before it answers
            # anything, and let the router find the owner (or claim it again).
            self.evict(namespace, object_id, SERVICE_RESTART, "this node lost its lease")
        return router

    def evict(self, namespace: str, object_id: str, code: int, reason: str) -> None:
        """Drop the live instance (this node lost the object): its sockets get ``code``."""
        entry = self._entries.get((namespace, object_id))
        if entry is not None:
            entry.kill(RuntimeError(f"{namespace}/{object_id}: {reason}"), code, reason)

    async def ensure_alarm(self, namespace: str, object_id: str) -> None:
        """Arm the stored alarm of an object (owned here) unless a timer has it already."""
        if self._alarms.scheduled(namespace, object_id) is None:
            when = await self._backend.storage(namespace, object_id).get_alarm()
            if when is not None and self._alarms.scheduled(namespace, object_id) is None:
                self._alarms.set(namespace, object_id, when)

    def live_instance(self, object_id: ObjectId) -> DurableObject | None:
        """The instance in memory for ``object_id``, or None (for tests and tools)."""
        entry = self._entries.get((object_id.namespace, str(object_id)))
        return None if entry is None else entry.instance

    def scheduled_alarm(self, object_id: ObjectId) -> float | None:
        """When the in-process timer of ``object_id``'s alarm fires, or None."""
        return self._alarms.scheduled(object_id.namespace, str(object_id))

    def object_class(self, namespace: str) -> type[DurableObject]:
        """The class bound as ``namespace`` (stubs check RPC names against it)."""
        return self._classes[namespace]

    async def fetch(
        self, object_id: ObjectId, request: Request, *, routed: bool = True
    ) -> Response:
        """Deliver ``request`` to the object's ``fetch`` and return its Response as is.

        A response-shaped dict is converted with the endpoint rules
        (:func:`kitpy.http.results.to_response`).
        """
        if self._router is not None and routed:  # a cluster node; one process skips this
            router = self._routes(object_id.namespace, str(object_id), routed)
            if router is not None:
                return await router.fetch(object_id, request)
        where = f"{self.object_class(object_id.namespace).__qualname__}.fetch()"

        async def handler(instance: DurableObject) -> Response:
            response = await instance.fetch(request)
            if isinstance(response, dict):
                return to_response(response, where)
            if not isinstance(response, Response):
                raise TypeError(
                    f"{where} must return a Response or a response-shaped dict, "
                    f"got {type(response).__name__}"
                )
            return response

        return await self._deliver(object_id, handler)

    async def call(self, object_id: ObjectId, payload: bytes, *, routed: bool = True) -> bytes:
        """Run one RPC call (bytes of :func:`kitpy.objects.rpc.encode_call`) as an event
        of the object; return its outcome (bytes of :mod:`kitpy.objects.rpc`).

        Like ``fetch``, the call passes the input gate and its outcome leaves only
        after the writes it issued are durable. Whatever goes wrong with the call
        itself -- a malformed payload, a name that is not callable, the method
        raising, a result that cannot cross -- is encoded in the outcome, not raised;
        the object's log has the traceback of an unexpected exception.
        """
        if self._router is not None and routed:  # a cluster node; one process skips this
            router = self._routes(object_id.namespace, str(object_id), routed)
            if router is not None:
                return await router.call(object_id, payload)
        cls = self.object_class(object_id.namespace)
        try:
            name, args, kwargs = rpc.decode_call(payload)
            is_async = rpc.rpc_method(cls, name)[1]
        except (rpc.CallError, AttributeError) as exc:
            return rpc.encode_error(exc)

        async def handler(instance: DurableObject) -> bytes:
            method = getattr(instance, name)
            if is_async:
                result = await method(*args, **kwargs)
            else:
                result = method(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            return rpc.encode_result(result, f"{cls.__qualname__}.{name}()")

        try:
            return await self._deliver(object_id, handler)
        except HTTPError as exc:
            return rpc.encode_error(exc)
        except Exception as exc:
            logger.error(
                "%s/%s: %s.%s() raised",
                object_id.namespace,
                object_id,
                cls.__qualname__,
                name,
                exc_info=exc,
            )
            return rpc.encode_error(exc)

    async def _deliver(
        self, object_id: ObjectId, handler: Callable[[DurableObject], Awaitable[T]]
    ) -> T:
        """Run ``handler(instance)`` as one event of the object, in a task of the system.

        The event takes its place in the object's queue as soon as this coroutine
        starts, before the task that runs it is spawned: calls are delivered in the
        order they start, whatever order the scheduler runs those tasks in.
        """
        self._check_running()
        entry = self._entry(object_id)
        ticket = entry.gate.reserve()  # the order of calls is the order of delivery
        outcome: Outcome[T] = Outcome()

        async def deliver() -> T:
            return await entry.event(lambda: handler(entry.instance), ticket)

        try:
            self._spawn(lambda: outcome.run(deliver))
        except BaseException:
            entry.gate.cancel(ticket)
            raise
        return await outcome

    async def run_alarm(self, namespace: str, object_id: str, *, routed: bool = True) -> None:
        """Deliver one alarm event (for the scheduler)."""
        router = self._routes(namespace, object_id, routed)
        if router is not None:
            await router.alarm(namespace, object_id)  # its owner fires it
            return
        entry = self._entry(ObjectId(namespace, object_id))
        if type(entry.instance).alarm is DurableObject.alarm:
            logger.error(
                "%s/%s: an alarm fired but %s has no alarm() method; it is deleted",
                namespace,
                object_id,
                type(entry.instance).__qualname__,
            )
            return
        await entry.event(entry.instance.alarm)

    def clear_alarm(self, namespace: str, object_id: str) -> Awaitable[None]:
        """Delete a fired alarm from storage (for the scheduler).

        On a cluster node, an alarm handed to its owner is the owner's to delete.
        """
        if self._routes(namespace, object_id, True) is not None:
            return _nothing()
        return self._backend.storage(namespace, object_id).delete_alarm()


async def _nothing() -> None:
    return None
