"""DurableObjectState: what an object sees as ``self.state``.

- ``id``: its :class:`~kitpy.objects.ids.ObjectId`;
- ``storage``: its storage, wrapped by :class:`GatedStorage` so that every awaited
  operation closes the input gate, writes are synced before a response or a
  WebSocket message leaves the object (the output gate), and ``set_alarm`` /
  ``delete_alarm`` also (re)arm the in-process timer;
- accepted WebSockets (``accept_websocket``, ``get_websockets``, ``get_tags``): a
  closed socket leaves the list at once, even with messages still queued;
- the auto-response (``set_websocket_auto_response``): a text message equal to the
  request is answered by the object system where the message is first seen, without
  an event, and its time is kept per socket;
- ``block_concurrency_while(work)`` and ``wait_until(coro)``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from kitpy.http.websocket import WebSocket, WebSocketDriver
from kitpy.objects.gate import Blocking, Gated, InputGate
from kitpy.objects.ids import ObjectId
from kitpy.storage.base import ListQuery, Storage, Transaction, alarm_time

__all__ = ("DurableObjectState", "GatedStorage", "ObjectHost")

T = TypeVar("T")

#: Cloudflare's limits on tags per accepted WebSocket and on one tag's length.
MAX_TAGS = 10
MAX_TAG_LENGTH = 256
#: Cloudflare's limit on the length of an auto-response's request and response.
MAX_AUTO_RESPONSE_LENGTH = 2048


class ObjectHost(Protocol):
    """What the registry provides to one live object (see registry.py)."""

    def spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` in a task the object system owns; the object stays alive meanwhile."""

    def websocket_ready(self, ws: WebSocket) -> None:
        """``ws`` has news: deliver its queued messages and close to the object's handlers."""

    def alarm_changed(self, when: float | None) -> None:
        """The object set (``when``) or deleted (None) its alarm."""

    def reset(self, error: BaseException) -> None:
        """Drop this instance: its ``block_concurrency_while`` work raised ``error``."""


class GatedStorage(Storage):
    """The object's :class:`~kitpy.storage.base.Storage`, with the gates applied.

    Every method delegates to the backend's storage. Around each *awaited* operation
    the input gate is held closed (module :mod:`kitpy.objects.gate`); writes return
    awaitables that hold the gate only if awaited. :meth:`flush` is the output gate:
    it syncs writes not yet known to be durable, and the object system calls it before
    a response or a WebSocket message leaves the object.
    """

    __slots__ = ("_gate", "_host", "_inner", "_synced", "_writes")

    def __init__(self, inner: Storage, gate: InputGate, host: ObjectHost) -> None:
        self._inner = inner
        self._gate = gate
        self._host = host
        self._writes = 0  # writes issued
        self._synced = 0  # writes known durable (or reported failed)

    def __repr__(self) -> str:
        return f"<GatedStorage {self._inner!r}>"

    def _wrote(self, ack: Awaitable[T]) -> Awaitable[T]:
        self._writes += 1
        return Gated(ack, self._gate)

    async def _get_one(self, key: str) -> Any | None:
        with self._gate.holding():
            return await self._inner.get(key)

    async def _get_many(self, keys: list[str]) -> dict[str, Any]:
        with self._gate.holding():
            return await self._inner.get(keys)

    def _put(self, entries: dict[str, Any]) -> Awaitable[None]:
        return self._wrote(self._inner.put(entries))

    def _delete_one(self, key: str) -> Awaitable[bool]:
        return self._wrote(self._inner.delete(key))

    def _delete_many(self, keys: list[str]) -> Awaitable[int]:
        return self._wrote(self._inner.delete(keys))

    async def _list(self, query: ListQuery) -> dict[str, Any]:
        with self._gate.holding():
            return await self._inner.list(
                prefix=query.prefix,
                start=query.start,
                end=query.end,
                limit=query.limit,
                reverse=query.reverse,
            )

    def delete_all(self) -> Awaitable[None]:
        """Delete every key of this object (its alarm stays)."""
        return self._wrote(self._inner.delete_all())

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with storage.transaction() as txn``: the gate stays closed throughout."""
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        with self._gate.holding():
            async with self._inner.transaction() as txn:
                yield txn

    async def get_alarm(self) -> float | None:
        """The alarm time in epoch seconds, or None."""
        with self._gate.holding():
            return await self._inner.get_alarm()

    def set_alarm(self, when: datetime | float) -> Awaitable[None]:
        """Set the object's one alarm (an aware datetime or epoch seconds); ``alarm()``
        runs then, also after a restart."""
        at = alarm_time(when)
        ack = self._inner.set_alarm(at)
        self._host.alarm_changed(at)
        return self._wrote(ack)

    def delete_alarm(self) -> Awaitable[None]:
        """Remove the object's alarm, if any."""
        ack = self._inner.delete_alarm()
        self._host.alarm_changed(None)
        return self._wrote(ack)

    async def sync(self) -> None:
        """Wait until every write issued so far is durable."""
        with self._gate.holding():
            await self.flush(force=True)

    @property
    def dirty(self) -> bool:
        """True while some write is not known to be durable."""
        return self._writes != self._synced

    async def flush(self, *, force: bool = False) -> None:
        """The output gate: sync if any write is pending; returns at once otherwise."""
        if not (force or self.dirty):
            return
        target = self._writes
        try:
            await self._inner.sync()
        finally:
            self._synced = max(self._synced, target)


class _SocketDriver(WebSocketDriver):
    """The driver of the sockets an object accepted: messages become its events.

    No task waits on an idle socket: the socket tells the host when it has news, and
    a delivery task runs only until it has drained what was queued. ``send()`` waits
    for the output gate: a message that acknowledges a write does not leave before
    the write is durable (docs/objects.md). The socket object stays the same
    (handlers compare identities), only its send waits.
    """

    __slots__ = ("_state",)

    def __init__(self, state: DurableObjectState) -> None:
        self._state = state

    def ready(self, ws: WebSocket) -> None:
        self._state._host.websocket_ready(ws)

    def closed(self, ws: WebSocket) -> None:
        self._state._forget(ws)

    def before_send(self, ws: WebSocket) -> Awaitable[None] | None:
        storage = self._state.storage
        return storage.flush() if storage.dirty else None


class DurableObjectState:
    """``self.state`` of a durable object: id, storage, accepted WebSockets."""

    def __init__(
        self, object_id: ObjectId, storage: Storage, gate: InputGate, host: ObjectHost
    ) -> None:
        self.id = object_id
        self.storage = GatedStorage(storage, gate, host)
        self._gate = gate
        self._host = host
        self._sockets: dict[WebSocket, tuple[str, ...]] = {}  # in accept order
        #: (request, response) of the auto-response, or None.
        self.auto_response: tuple[str, str] | None = None
        self._auto_times: dict[WebSocket, float] = {}  # epoch seconds of the last answer
        # The driver of every accepted socket: made once here, not once per socket.
        self._driver = _SocketDriver(self)

    def __repr__(self) -> str:
        return f"<DurableObjectState {self.id!r}>"

    # -- WebSockets -----------------------------------------------------------------------

    def accept_websocket(self, ws: WebSocket, tags: Iterable[str] | None = None) -> None:
        """Accept ``ws`` and hand it to the object: each message becomes a
        ``websocket_message(ws, message)`` event, its close a
        ``websocket_close(ws, code, reason)`` event.

        ``tags`` (at most 10 strings of at most 256 characters) select it in
        ``get_websockets(tag)``. Give the *server* end of a :class:`WebSocketPair`
        and return the client end in ``Response(status=101, websocket=client)``.
        """
        if not isinstance(ws, WebSocket):
            raise TypeError(f"accept_websocket() takes a WebSocket, got {type(ws).__name__}")
        if ws in self._sockets:
            raise ValueError("this WebSocket was already accepted by this object")
        checked = _check_tags(tags)
        ws.accept()  # raises if it is already closed
        self._sockets[ws] = checked
        ws.attach(self._driver)
        self._host.websocket_ready(ws)  # deliver what arrived before it was accepted

    def get_websockets(self, tag: str | None = None) -> list[WebSocket]:
        """Accepted sockets still open (in accept order), only those with ``tag`` if given."""
        return [
            ws
            for ws, tags in self._sockets.items()
            if not ws.closed and (tag is None or tag in tags)
        ]

    def get_tags(self, ws: WebSocket) -> list[str]:
        """The tags ``ws`` was accepted with."""
        try:
            return list(self._sockets[ws])
        except KeyError:
            raise ValueError("this WebSocket is not accepted by this object (or closed)") from None

    def _forget(self, ws: WebSocket) -> None:
        self._sockets.pop(ws, None)
        self._auto_times.pop(ws, None)

    # -- auto-response ----------------------------------------------------------------------

    def set_websocket_auto_response(
        self, request: str | None = None, response: str | None = None
    ) -> None:
        """Answer a text message equal to ``request`` with ``response``, on every socket
        this object accepted, without an event: the object's handlers do not run and
        its input gate is not consulted (heartbeats cost nothing).

        ``set_websocket_auto_response(None)`` (or no arguments) turns it off. Both
        strings are at most 2048 characters.
        """
        if request is None:
            if response is not None:
                raise TypeError("set_websocket_auto_response(None) takes no response")
            self.auto_response = None
            return
        for name, value in (("request", request), ("response", response)):
            if not isinstance(value, str):
                raise TypeError(
                    f"set_websocket_auto_response() takes str {name}, got {type(value).__name__}"
                )
            if len(value) > MAX_AUTO_RESPONSE_LENGTH:
                raise ValueError(
                    f"the auto-response {name} is at most {MAX_AUTO_RESPONSE_LENGTH} "
                    f"characters, got {len(value)}"
                )
        assert response is not None
        self.auto_response = (request, response)

    def get_websocket_auto_response(self) -> tuple[str, str] | None:
        """``(request, response)`` as set, or None."""
        return self.auto_response

    def get_websocket_auto_response_timestamp(self, ws: WebSocket) -> datetime | None:
        """When ``ws`` was last answered by the auto-response (aware, UTC), or None."""
        at = self._auto_times.get(ws)
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def auto_answer(self, ws: WebSocket, message: str | bytes) -> bool:
        """For the object system: answer ``message`` if it is the auto-response's
        request (True), else leave it for an event (False)."""
        auto = self.auto_response
        if auto is None or message != auto[0]:
            return False
        if not ws.closed:
            ws.send_nowait(auto[1])
            self._auto_times[ws] = time.time()
        return True

    @property
    def has_websockets(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    # -- concurrency ----------------------------------------------------------------------

    def block_concurrency_while(
        self, work: Awaitable[T] | Callable[[], Awaitable[T]]
    ) -> Awaitable[T]:
        """Run ``work`` (a coroutine, or an async function of no arguments) with the
        input gate closed: no other event starts until it is done.

        The gate closes at once, so this may be called without ``await`` from the
        constructor; ``await`` it to get the result. If ``work`` raises, the object is
        reset: its WebSockets are closed with 1011, waiting events fail, and the next
        event builds a fresh instance (as on Cloudflare).
        """
        if not inspect.isawaitable(work):
            if not callable(work):
                raise TypeError(
                    "block_concurrency_while() takes a coroutine or an async function, "
                    f"got {type(work).__name__}"
                )
        blocking: Blocking[T] = Blocking(self._gate)

        async def run() -> None:
            try:
                awaitable = work if inspect.isawaitable(work) else work()
                await blocking.run(lambda: awaitable)
                if blocking.error is not None:
                    self._host.reset(blocking.error)
            finally:
                blocking.set_error(RuntimeError("the object system stopped"))  # if unset
                blocking.finished()

        try:
            self._host.spawn(run)
        except BaseException:
            blocking.release()
            if inspect.iscoroutine(work):
                work.close()
            raise
        return blocking

    def wait_until(self, work: Coroutine[Any, Any, Any] | Awaitable[Any]) -> None:
        """Run ``work`` in the background; the object is not evicted until it ends.

        An exception it raises is logged.
        """
        if not inspect.isawaitable(work):
            raise TypeError(f"wait_until() takes an awaitable, got {type(work).__name__}")

        async def run() -> None:
            await work
            await self.storage.flush()

        try:
            self._host.spawn(run)
        except BaseException:
            if inspect.iscoroutine(work):
                work.close()
            raise


def _check_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list of str, not a str: use tags=[{tags!r}]")
    checked = tuple(tags)
    if len(checked) > MAX_TAGS:
        raise ValueError(f"a WebSocket takes at most {MAX_TAGS} tags, got {len(checked)}")
    for tag in checked:
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"each tag must be a non-empty str, got {tag!r}")
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"a tag is at most {MAX_TAG_LENGTH} characters, got {len(tag)}")
    return checked
