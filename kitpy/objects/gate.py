"""The input gate: when an event may start running in a durable object.

Theory of operation
-------------------
An *event* is one delivery to an object: a ``fetch`` from a stub, one WebSocket
message, one WebSocket close, one alarm. Each runs in its own task. The gate decides
when an event may *start*; once started it runs to completion, as a coroutine, and
can interleave with other started events at its await points.

Cloudflare's promise (docs/objects.md, "Consistency": while an object awaits its own
storage, no other event of that object starts) is not "one event at a time, full stop".
It is:

1. While the object awaits an operation on its own storage, the gate is *closed*: no
   new event starts. So ``value = await storage.get("n"); storage.put("n", value + 1)``
   cannot be interleaved with another event's read of ``n``: the get closes the gate,
   and when it completes its continuation runs first -- up to the next await --
   before anything else is admitted.
2. While the object awaits anything else (a ``stub.fetch`` to another object, an
   HTTP call, ``anyio.sleep``) the gate is *open*: the next event may start and run
   until *it* awaits. This is what keeps an object that calls out from stalling every
   client, and what lets an object ``fetch`` itself without deadlock.
3. ``state.block_concurrency_while(work)`` closes the gate until ``work`` finishes,
   whatever ``work`` awaits: initialisation in a constructor, or a critical section
   that must span a non-storage await.
4. Waiting events are admitted in arrival order (FIFO). Each admitted event runs
   synchronously until its first await before the next one is considered, so if that
   await is a storage operation, the next one waits again.

How it is built. The gate is counters, not a lock: ``_storage`` counts storage
operations being awaited (the object's storage wrapper calls :meth:`InputGate.hold`
and :meth:`InputGate.release` around each await, see :mod:`kitpy.objects.state`),
``_blocked`` counts ``block_concurrency_while`` calls running. The gate is open when
both are zero. An event that arrives while the gate is open and nobody is queued
starts at once, without yielding. Otherwise it queues; whenever the gate opens, the
head of the queue is woken, re-checks (the gate may have closed again before it got
to run), and on entering wakes the next one. Everything runs on one event loop, so
there are no locks: the state only changes between await points.

Writes (``put``/``delete``) are not awaited by the gate unless the caller awaits
them: the storage engine makes them visible to reads at once (read-your-writes) and
commits them together. What a response or message acknowledges is protected by the
*output gate* instead: before a ``fetch`` response leaves the object, and before a
message goes out on an accepted WebSocket, the object's pending writes are synced
(see :class:`kitpy.objects.state.GatedStorage`).

Limits, where Python differs from Cloudflare's isolates:

- Cloudflare also holds back *completions* of an event's non-storage I/O while the
  gate is closed. kitpy cannot intercept arbitrary awaits, so an event already
  running that wakes from ``sleep`` or an HTTP call continues even while another
  event awaits storage. Only event *starts* are gated.
- A ``block_concurrency_while`` whose work waits for another event of the same object
  (for example by ``fetch``-ing its own stub) deadlocks, as it would on Cloudflare.
- Storage operations from tasks that are not events (``wait_until`` tasks) close the
  gate like any other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, TypeVar

import anyio

from kitpy.errors import KitpyError

__all__ = ("Blocking", "Gated", "InputGate", "ObjectResetError", "Outcome", "Ticket")

T = TypeVar("T")


class ObjectResetError(KitpyError):
    """The object was reset (its ``block_concurrency_while`` work raised) before this
    event could run; the next event gets a fresh instance."""

    def __init__(self, name: str, cause: BaseException | None = None) -> None:
        detail = f": {cause!r}" if cause is not None else ""
        super().__init__(f"durable object {name} was reset{detail}")


class Ticket:
    """A place in an input gate's queue."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()


class InputGate:
    """Admits one object's events as described in the module docstring."""

    def __init__(self, name: str = "object") -> None:
        self._name = name
        self._storage = 0  # storage operations being awaited
        self._blocked = 0  # block_concurrency_while calls running
        self._running = 0  # events admitted and not finished
        self._queue: deque[Ticket] = deque()
        self._broken: BaseException | None = None

    @property
    def is_open(self) -> bool:
        """True when a new event may start now."""
        return self._storage == 0 and self._blocked == 0

    @property
    def busy(self) -> bool:
        """True while any event runs or waits, or storage or a block is in progress."""
        return bool(self._running or self._queue or self._storage or self._blocked)

    # -- events -------------------------------------------------------------------------

    def reserve(self) -> Ticket:
        """Take a place in the queue now; pass it to :meth:`event` later.

        A stub's fetch reserves when it is called, then runs the event in another
        task: events are admitted in the order of the calls, whatever order the
        scheduler starts those tasks in (Trio shuffles them on purpose).
        """
        self._check_broken()
        ticket = Ticket()
        self._queue.append(ticket)
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Give up a reserved place that will not be used."""
        if ticket in self._queue:
            self._queue.remove(ticket)
            self._wake_head()

    @asynccontextmanager
    async def event(self, ticket: Ticket | None = None) -> AsyncIterator[None]:
        """Run the body as one event: wait for admission, then count it as running."""
        await self._admit(ticket)
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1

    async def _admit(self, ticket: Ticket | None) -> None:
        if ticket is None:
            self._check_broken()
            if self.is_open and not self._queue:
                return  # start at once, without yielding: arrival order is kept
            ticket = self.reserve()
        try:
            while not (self.is_open and self._queue[0] is ticket):
                await ticket.event.wait()
                self._check_broken()
                if self.is_open and self._queue[0] is ticket:
                    break
                # The gate closed again before this task got to run: wait for the
                # next opening. (Only the head is ever woken, so FIFO holds.)
                ticket.event = anyio.Event()
            self._check_broken()
        except BaseException:
            self.cancel(ticket)
            raise
        self._queue.popleft()
        # The gate is still open: the next event may also start, after this one has
        # run up to its first await (it is scheduled after us).
        self._wake_head()

    def _wake_head(self) -> None:
        if self._queue and (self.is_open or self._broken is not None):
            self._queue[0].event.set()

    def _check_broken(self) -> None:
        if self._broken is not None:
            raise ObjectResetError(self._name, self._broken) from self._broken

    # -- what closes the gate --------------------------------------------------------------

    def hold(self) -> None:
        """A storage operation is being awaited: close the gate."""
        self._storage += 1

    def release(self) -> None:
        """That storage operation completed."""
        self._storage -= 1
        if self._storage == 0:
            self._wake_head()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the gate closed for the ``with`` block (around one storage await)."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    def block(self) -> None:
        """``block_concurrency_while`` started: close the gate until :meth:`unblock`."""
        self._blocked += 1

    def unblock(self) -> None:
        self._blocked -= 1
        if self._blocked == 0:
            self._wake_head()

    def break_(self, error: BaseException) -> None:
        """The object was reset: every waiting and future event fails."""
        self._broken = error
        for ticket in self._queue:
            ticket.event.set()


class Gated(Generic[T]):
    """An awaitable that holds ``gate`` closed while it is awaited (not a coroutine, so
    dropping it un-awaited is fine: the write still happens)."""

    __slots__ = ("_gate", "_inner")

    def __init__(self, inner: Awaitable[T], gate: InputGate) -> None:
        self._inner = inner
        self._gate = gate

    def __await__(self) -> Generator[Any, None, T]:
        self._gate.hold()
        try:
            return (yield from self._inner.__await__())
        finally:
            self._gate.release()


class Outcome(Generic[T]):
    """The result of work running in another task, awaitable once or many times.

    Not a coroutine: a caller that drops it (``block_concurrency_while`` called from a
    constructor without ``await``) gets no warning.
    """

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        """The exception the work raised, once done (None if it succeeded)."""
        return self._error

    def set_result(self, value: T) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def set_error(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def run(self, work: Callable[[], Awaitable[T]]) -> None:
        """Run ``work`` and keep its result or exception (cancellation propagates)."""
        try:
            value = await work()
        except Exception as exc:
            self.set_error(exc)
        except BaseException:
            self.set_error(RuntimeError("the object system stopped before this completed"))
            raise
        else:
            self.set_result(value)

    def __await__(self) -> Generator[Any, None, T]:
        return self._get().__await__()

    async def _get(self) -> T:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Blocking(Outcome[T]):
    """The awaitable of ``block_concurrency_while``: keeps the gate closed until the
    work is done *and* the event that awaits it has resumed.

    When the work finishes and some task awaits this, that task reopens the gate as
    it resumes, so its continuation runs before any queued event starts -- the same
    rule as for a storage read. When nobody awaits it (a constructor's call), the
    gate reopens as soon as the work is done.
    """

    __slots__ = ("_gate", "_released", "_waiting")

    def __init__(self, gate: InputGate) -> None:
        super().__init__()
        self._gate = gate
        self._waiting = 0
        self._released = False
        gate.block()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._gate.unblock()

    def finished(self) -> None:
        """The work is over (its outcome is set): reopen unless an awaiter will."""
        if self._waiting == 0:
            self.release()

    async def _get(self) -> T:
        self._waiting += 1
        try:
            await self._done.wait()
        finally:
            self._waiting -= 1
            if self.done:
                self.release()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
