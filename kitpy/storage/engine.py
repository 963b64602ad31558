"""The commit engine: group commit and read-your-writes, in front of any driver.

Theory of operation
-------------------

A backend is an :class:`Engine` in front of a :class:`~kitpy.storage.driver.Driver`.
The driver is a plain, synchronous store (SQLite, or dicts); the engine owns every
rule that callers can observe, so the memory backend is a faithful stand-in for the
SQLite one. The per-object views (:mod:`kitpy.storage.views`) turn calls into ops
and hand them here.

Writes. ``put``/``delete``/``delete_all``/``set_alarm``/``delete_alarm`` are plain
functions. They validate, and :meth:`Engine.submit` appends their ops to the
engine's one *open batch* and returns an :class:`Ack`, a small awaitable (not a
coroutine: nothing warns when it is dropped un-awaited). Ops issued with no
``await`` between them therefore land in the same batch, and a batch is applied by
the driver in one transaction: all or nothing.

Commits. There is no background task, so nothing outlives ``aclose()``. The first
task to await an ack of the open batch *claims* it: it waits for the batch in flight
(if any), yields once so that the tasks already runnable (typically the writers just
woken by the previous commit) add their writes too, then swaps in a fresh open batch
and applies the old one in a worker thread (``anyio.to_thread.run_sync``; one commit
at a time per engine, so one thread per database), marks it done and wakes every
waiter. Other waiters just wait for their batch to be done. Writes issued while a
commit runs collect in the next open batch, so one fsync serves every write issued
meanwhile: a hundred concurrent writers share a commit instead of queueing for one
each. The commit itself runs shielded from cancellation, so a batch's outcome is
always known and reported; a claimant cancelled before it started hands the batch
back, waking the other waiters so that one of them claims it. A failed commit
resolves its waiters with a :class:`StorageError` and leaves the engine ready for
the next batch (no dead flusher). Writes nobody awaits are committed by the next
awaited write, ``sync()`` or ``aclose()``; a caller that wants them durable before
it answers (an output gate) awaits ``sync()``, which also reports a failed write of
that object that nobody awaited.

Reads see the caller's own writes. Every op not yet committed is also recorded in
the *overlay*: per object, the latest pending value (or tombstone) of each key with
the sequence number of its op, a pending ``delete_all`` and a pending alarm. A read
takes what it needs from the overlay synchronously, then asks the driver (in a
thread) only for the rest and merges. When a batch finishes, committed or failed,
entries whose sequence number it covers leave the overlay: after success the store
has them, after failure they never happened.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from kitpy.errors import StorageError
from kitpy.storage.driver import Driver, Op, OpKind

__all__ = ("Ack", "Engine", "Owner")

T = TypeVar("T")
R = TypeVar("R")
Owner = tuple[str, str]  # (namespace, object_id)


def _in_range(key: str, low: str | None, high: str | None) -> bool:
    return (low is None or key >= low) and (high is None or key < high)


class _Batch:
    """Ops committed together; ``done`` once committed or failed."""

    __slots__ = ("claimed", "done", "error", "event", "last_seq", "ops", "results")

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.claimed = False  # a waiter has taken on committing it
        self.last_seq = 0
        self.done = False
        self.results: list[int] = []
        self.error: StorageError | None = None
        self.event: anyio.Event | None = None  # made by the first waiter, in the loop


class _Pending:
    """One object's ops not yet committed: the overlay that reads merge."""

    __slots__ = ("alarm", "cleared", "kv")

    def __init__(self) -> None:
        self.cleared: int | None = None  # sequence number of a pending delete_all
        self.kv: dict[str, tuple[int, str | None]] = {}  # key -> (seq, JSON or tombstone)
        self.alarm: tuple[int, float | None] | None = None

    def empty(self) -> bool:
        return self.cleared is None and not self.kv and self.alarm is None


class Ack(Generic[T]):
    """Awaitable completion of a write: returns once its batch is durable.

    A plain object with ``__await__``, not a coroutine, so dropping it un-awaited is
    not an error (the write is still committed with its batch).
    """

    __slots__ = ("_batch", "_engine", "_owner", "_reduce", "_start", "_stop")

    def __init__(
        self,
        engine: Engine,
        owner: Owner,
        batch: _Batch,
        start: int,
        stop: int,
        reduce: Callable[[list[int]], T],
    ) -> None:
        self._engine = engine
        self._owner = owner
        self._batch = batch
        self._start = start
        self._stop = stop
        self._reduce = reduce

    def __await__(self) -> Generator[Any, None, T]:
        batch = self._batch
        if batch.done and batch.error is None:
            results = batch.results
        else:
            results = yield from self._engine.wait(batch, self._owner).__await__()
        return self._reduce(results[self._start : self._stop])


class Engine:
    """Group commit and the read overlay in front of one driver (see module doc)."""

    def __init__(self, driver: Driver, *, offload: bool, label: str) -> None:
        self._driver = driver
        self._offload = offload  # run driver calls in a worker thread
        self._label = label
        self._open = _Batch()
        self._inflight: _Batch | None = None
        self._seq = 0
        self._overlay: dict[Owner, _Pending] = {}
        self._unreported: dict[Owner, StorageError] = {}
        self._closed = False
        self.commits = 0  # batches committed: one transaction (one fsync) each

    # -- writes -------------------------------------------------------------------

    def submit(self, owner: Owner, ops: list[Op], reduce: Callable[[list[int]], T]) -> Ack[T]:
        """Add ``ops`` to the open batch and the overlay; the ack completes at commit."""
        self._check_open()
        batch = self._open
        start = len(batch.ops)
        for op in ops:
            self._seq += 1
            batch.ops.append(op)
            self._record(owner, op, self._seq)
        batch.last_seq = self._seq
        return Ack(self, owner, batch, start, len(batch.ops), reduce)

    def _record(self, owner: Owner, op: Op, seq: int) -> None:
        pending = self._overlay.get(owner)
        if pending is None:
            pending = self._overlay[owner] = _Pending()
        kind = op.kind
        if kind is OpKind.PUT:
            pending.kv[op.key] = (seq, op.value)
        elif kind is OpKind.DELETE:
            pending.kv[op.key] = (seq, None)
        elif kind is OpKind.DELETE_ALL:
            pending.cleared = seq
            pending.kv.clear()
        elif kind is OpKind.SET_ALARM:
            pending.alarm = (seq, op.at)
        else:
            pending.alarm = (seq, None)

    def _settle(self, batch: _Batch) -> None:
        """Drop the overlay entries ``batch`` covers: committed, or failed for good."""
        last = batch.last_seq
        for op in batch.ops:
            owner = (op.namespace, op.object_id)
            pending = self._overlay.get(owner)
            if pending is None:
                continue
            entry = pending.kv.get(op.key)
            if entry is not None and entry[0] <= last:
                del pending.kv[op.key]
            if pending.cleared is not None and pending.cleared <= last:
                pending.cleared = None
            if pending.alarm is not None and pending.alarm[0] <= last:
                pending.alarm = None
            if pending.empty():
                del self._overlay[owner]

    async def wait(self, batch: _Batch, owner: Owner | None) -> list[int]:
        """Wait until ``batch`` is done; its first waiter drives its commit."""
        while not batch.done:
            if batch is self._open and not batch.claimed:
                await self._drive(batch)
            else:
                await self._done_event(batch).wait()
        if batch.error is not None:
            if owner is not None:
                self._unreported.pop(owner, None)
            raise StorageError(*batch.error.args) from batch.error.__cause__
        return batch.results

    async def _drive(self, batch: _Batch) -> None:
        """Commit the open ``batch`` once the batch in flight is done."""
        batch.claimed = True
        try:
            while self._inflight is not None:
                await self._done_event(self._inflight).wait()
            # Let the tasks that are ready to run (typically the writers just woken by
            # the previous commit) add to the batch first: one commit for all of them,
            # rather than one for the first and another for the rest.
            await anyio.lowlevel.checkpoint()
        except BaseException:
            # Cancelled before committing: wake the other waiters, one of them drives.
            batch.claimed = False
            event, batch.event = batch.event, None
            if event is not None:
                event.set()
            raise
        await self._commit_open()  # only its claimant commits the open batch: still it

    @staticmethod
    def _done_event(batch: _Batch) -> anyio.Event:
        if batch.event is None:
            batch.event = anyio.Event()
        return batch.event

    async def _commit_open(self) -> None:
        batch = self._open
        self._open = _Batch()
        self._inflight = batch
        try:
            # Shielded: once the ops are taken, their outcome must be known and
            # reported, whatever happens to the task that happens to drive it.
            with anyio.CancelScope(shield=True):
                batch.results = await self._call(self._driver.apply, batch.ops)
            self.commits += 1
        except StorageError as exc:
            batch.error = exc
        except Exception as exc:
            batch.error = StorageError(f"{self._label}: commit failed: {exc!r}")
            batch.error.__cause__ = exc
        finally:
            if batch.error is None and len(batch.results) != len(batch.ops):
                batch.error = StorageError(f"{self._label}: commit was interrupted")
            if batch.error is not None:
                for op in batch.ops:
                    self._unreported[(op.namespace, op.object_id)] = batch.error
            batch.done = True
            self._inflight = None
            self._settle(batch)
            if batch.event is not None:
                batch.event.set()

    async def sync(self, owner: Owner | None) -> None:
        """Wait until every write issued so far is committed; raise if one failed."""
        batch = self._open if self._open.ops else self._inflight
        if batch is not None:
            await self.wait(batch, owner)
        if owner is not None:
            error = self._unreported.pop(owner, None)
            if error is not None:
                raise StorageError(*error.args) from error.__cause__

    async def aclose(self) -> None:
        """Commit everything pending, then close the driver; idempotent."""
        if self._closed:
            return
        failure: StorageError | None = None
        with anyio.CancelScope(shield=True):
            while not self._closed and (self._open.ops or self._inflight is not None):
                batch = self._open if self._open.ops else self._inflight
                assert batch is not None
                try:
                    await self.wait(batch, None)
                except StorageError as exc:
                    failure = failure or exc
            if self._closed:  # a concurrent aclose() got there first
                return
            self._closed = True
            try:
                await self._call(self._driver.close)
            except Exception as exc:
                failure = failure or StorageError(f"{self._label}: close failed: {exc!r}")
        if failure is not None:
            raise failure

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self._label} is closed")

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        if self._offload:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args))
        await anyio.lowlevel.checkpoint()
        return fn(*args)

    # -- reads --------------------------------------------------------------------

    async def get(
        self, owner: Owner, keys: Sequence[str], layer: dict[str, str | None] | None
    ) -> dict[str, str]:
        """JSON text of the keys found: ``layer`` (a transaction) over overlay over store."""
        self._check_open()
        pending = self._overlay.get(owner)
        found: dict[str, str | None] = {}
        missing: list[str] = []
        for key in keys:
            if layer is not None and key in layer:
                found[key] = layer[key]
            elif pending is not None and key in pending.kv:
                found[key] = pending.kv[key][1]
            elif pending is not None and pending.cleared is not None:
                found[key] = None
            else:
                found[key] = None
                missing.append(key)
        if missing:
            stored = await self._call(self._driver.get, owner[0], owner[1], missing)
            found.update(stored)
        return {key: value for key, value in found.items() if value is not None}

    async def scan(
        self,
        owner: Owner,
        low: str | None,
        high: str | None,
        limit: int | None,
        reverse: bool,
        layer: dict[str, str | None] | None,
    ) -> list[tuple[str, str]]:
        """Keys in ``[low, high)`` with their JSON text, merged as :meth:`get` does."""
        self._check_open()
        if low is not None and high is not None and low >= high:
            return []
        pending = self._overlay.get(owner)
        changes: dict[str, str | None] = {}
        if pending is not None:
            for key, (_, value) in pending.kv.items():
                if _in_range(key, low, high):
                    changes[key] = value
        if layer is not None:
            changes.update(
                (key, value) for key, value in layer.items() if _in_range(key, low, high)
            )
        if pending is not None and pending.cleared is not None:
            rows: list[tuple[str, str]] = []
        else:
            # Each change can hide at most one stored row: ask for that many more.
            fetch = None if limit is None else limit + len(changes)
            rows = await self._call(
                self._driver.scan, owner[0], owner[1], low, high, fetch, reverse
            )
        if not changes:
            return rows[:limit] if limit is not None else rows
        merged = dict(rows)
        for key, value in changes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        ordered = sorted(merged, reverse=reverse)
        if limit is not None:
            ordered = ordered[:limit]
        return [(key, merged[key]) for key in ordered]

    async def get_alarm(self, owner: Owner) -> float | None:
        self._check_open()
        pending = self._overlay.get(owner)
        if pending is not None and pending.alarm is not None:
            return pending.alarm[1]
        return await self._call(self._driver.get_alarm, owner[0], owner[1])

    async def alarms(self) -> list[tuple[str, str, float]]:
        self._check_open()
        changes = {
            owner: pending.alarm[1]
            for owner, pending in self._overlay.items()
            if pending.alarm is not None
        }
        stored = await self._call(self._driver.alarms)
        merged: dict[Owner, float | None] = {(ns, oid): at for ns, oid, at in stored}
        merged.update(changes)
        alarms = [(ns, oid, at) for (ns, oid), at in merged.items() if at is not None]
        return sorted(alarms, key=lambda alarm: (alarm[2], alarm[0], alarm[1]))
