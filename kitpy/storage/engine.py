"""Group commit and read-your-writes, shared by the SQLite and the memory backend.

Theory of operation
-------------------

A backend is an :class:`Engine` in front of a :class:`Driver`. The driver is a plain,
synchronous store (SQLite, or dicts); the engine owns every rule that callers can
observe, so the memory backend is a faithful stand-in for the SQLite one.

Writes. ``put``/``delete``/``delete_all``/``set_alarm``/``delete_alarm`` are plain
functions. They validate, append their ops to the engine's one *open batch* and
return an :class:`Ack`, a small awaitable (not a coroutine: nothing warns when it is
dropped un-awaited). Ops issued with no ``await`` between them therefore land in the
same batch, and a batch is applied by the driver in one transaction: all or nothing.

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
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, auto
from typing import Any, Generic, Protocol, TypeVar, overload

import anyio
import anyio.lowlevel

from kitpy.errors import StorageError
from kitpy.storage.base import (
    Transaction,
    alarm_time,
    check_key,
    check_keys,
    check_name,
    encode_value,
)

__all__ = (
    "Ack",
    "Driver",
    "Engine",
    "EngineBackend",
    "ObjectStorage",
    "Op",
    "OpKind",
    "key_range",
    "range_sql",
)

T = TypeVar("T")
R = TypeVar("R")
Owner = tuple[str, str]  # (namespace, object_id)

_MISSING: Any = object()


class OpKind(Enum):
    """What one write does."""

    PUT = auto()
    DELETE = auto()
    DELETE_ALL = auto()
    SET_ALARM = auto()
    DELETE_ALARM = auto()


@dataclass(slots=True)
class Op:
    """One write, as the driver applies it. ``value`` is JSON text (PUT only).

    ``epoch``: the ownership epoch of the view that issued it (0 where there is none);
    a fencing driver refuses it once that epoch is no longer this node's.
    """

    kind: OpKind
    namespace: str
    object_id: str
    key: str = ""
    value: str = ""
    at: float = 0.0
    epoch: int = 0


class Driver(Protocol):
    """A synchronous store. The SQLite driver's methods run in worker threads."""

    def apply(self, ops: Sequence[Op]) -> list[int]:
        """Apply ``ops`` in order, atomically; per op the number of rows it removed."""

    def get(self, namespace: str, object_id: str, keys: Sequence[str]) -> dict[str, str]:
        """JSON text of the keys found."""

    def scan(
        self,
        namespace: str,
        object_id: str,
        low: str | None,
        high: str | None,
        limit: int | None,
        reverse: bool,
    ) -> list[tuple[str, str]]:
        """``(key, JSON text)`` with ``low <= key < high`` in key order (or reversed)."""

    def get_alarm(self, namespace: str, object_id: str) -> float | None:
        """The stored alarm of one object."""

    def alarms(self) -> list[tuple[str, str, float]]:
        """Every stored alarm."""

    def close(self) -> None:
        """Release every resource; later calls may fail."""


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound).

    Code point order is UTF-8 byte order for valid strings, so this is the successor
    of the last character, skipping the surrogates, which no key contains.
    """
    chars = list(prefix)
    while chars:
        point = ord(chars[-1]) + 1
        if point <= 0x10FFFF:
            chars[-1] = chr(0xE000 if 0xD800 <= point <= 0xDFFF else point)
            return "".join(chars)
        chars.pop()
    return None


def key_range(
    prefix: str | None, start: str | None, end: str | None
) -> tuple[str | None, str | None]:
    """``list()`` options as one half-open range ``[low, high)`` of keys."""
    low, high = start, end
    if prefix:
        low = prefix if low is None else max(low, prefix)
        upper = _prefix_end(prefix)
        if upper is not None:
            high = upper if high is None else min(high, upper)
    return low, high


def range_sql(
    select: str,
    mark: str,
    low: str | None,
    high: str | None,
    limit: int | None,
    reverse: bool,
) -> tuple[str, list[object]]:
    """The bounds, order and limit of a driver's ``scan`` appended to ``select``.

    ``select`` ends in a WHERE clause and takes no parameters of its own beyond its
    leading ``namespace``/``object_id`` ones; ``mark`` is the driver's placeholder.
    """
    sql = select
    args: list[object] = []
    if low is not None:
        sql += f" AND key >= {mark}"
        args.append(low)
    if high is not None:
        sql += f" AND key < {mark}"
        args.append(high)
    sql += " ORDER BY key DESC" if reverse else " ORDER BY key"
    if limit is not None:
        sql += f" LIMIT {mark}"
        args.append(limit)
    return sql, args


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


class _Done(Generic[T]):
    """An awaitable that is already complete."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self._value
        yield  # a generator, so that __await__ returns an iterator


class _Lazy(Generic[T]):
    """An awaitable that makes its coroutine only when awaited (so never warns)."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], Awaitable[T]]) -> None:
        self._make = make

    def __await__(self) -> Generator[Any, None, T]:
        return self._result().__await__()

    async def _result(self) -> T:
        return await self._make()


def _none(_: list[int]) -> None:
    return None


def _existed(results: list[int]) -> bool:
    return results[0] > 0


def _count(results: list[int]) -> int:
    return sum(1 for removed in results if removed)


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


def _put_ops(owner: Owner, key: object, value: object) -> list[Op]:
    namespace, object_id = owner
    if isinstance(key, dict):
        if value is not _MISSING:
            raise StorageError("put(dict) takes no value: the dict holds the entries")
        return [
            Op(OpKind.PUT, namespace, object_id, check_key(name), encode_value(name, item))
            for name, item in key.items()
        ]
    if value is _MISSING:
        raise StorageError(f"put({key!r}) needs a value, or a dict of entries")
    name = check_key(key)
    return [Op(OpKind.PUT, namespace, object_id, name, encode_value(name, value))]


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if type(limit) is not int or limit < 1:
        raise StorageError(f"list(limit=...) takes a positive int, got {limit!r}")
    return limit


def _check_bound(name: str, bound: object) -> str | None:
    if bound is None:
        return None
    if type(bound) is not str:
        raise StorageError(f"list({name}=...) takes a str, got {type(bound).__name__}")
    return bound


async def _list(
    engine: Engine,
    owner: Owner,
    layer: dict[str, str | None] | None,
    prefix: object,
    start: object,
    end: object,
    limit: object,
    reverse: bool,
) -> dict[str, Any]:
    low, high = key_range(
        _check_bound("prefix", prefix), _check_bound("start", start), _check_bound("end", end)
    )
    rows = await engine.scan(owner, low, high, _check_limit(limit), bool(reverse), layer)
    return {key: json.loads(value) for key, value in rows}


class ObjectStorage:
    """The :class:`~kitpy.storage.base.Storage` of one (namespace, object id)."""

    __slots__ = ("_engine", "_epoch", "_owner")

    def __init__(self, engine: Engine, namespace: str, object_id: str, epoch: int = 0) -> None:
        self._engine = engine
        self._owner: Owner = (
            check_name("namespace", namespace),
            check_name("object id", object_id),
        )
        self._epoch = epoch  # stamped on every write (a cluster's fencing epoch)

    def _submit(self, ops: list[Op], reduce: Callable[[list[int]], T]) -> Ack[T]:
        if self._epoch:
            for op in ops:
                op.epoch = self._epoch
        return self._engine.submit(self._owner, ops, reduce)

    def __repr__(self) -> str:
        return f"<ObjectStorage {self._owner[0]}/{self._owner[1]}>"

    @overload
    async def get(self, key: str) -> Any | None: ...
    @overload
    async def get(self, key: list[str]) -> dict[str, Any]: ...
    async def get(self, key: str | list[str]) -> Any:
        """The value of ``key`` or None; for a list, a dict of the keys found."""
        return await _get(self._engine, self._owner, key, None)

    @overload
    def put(self, key: str, value: Any) -> Awaitable[None]: ...
    @overload
    def put(self, key: dict[str, Any]) -> Awaitable[None]: ...
    def put(self, key: str | dict[str, Any], value: Any = _MISSING) -> Awaitable[None]:
        """Store ``value`` at ``key`` (or every entry of a dict); await for durability."""
        ops = _put_ops(self._owner, key, value)
        if not ops:
            return _Done(None)
        return self._submit(ops, _none)

    @overload
    def delete(self, key: str) -> Awaitable[bool]: ...
    @overload
    def delete(self, key: list[str]) -> Awaitable[int]: ...
    def delete(self, key: str | list[str]) -> Awaitable[bool] | Awaitable[int]:
        """Delete a key (awaits to whether it existed) or many (to how many existed)."""
        namespace, object_id = self._owner
        if isinstance(key, str):
            op = Op(OpKind.DELETE, namespace, object_id, check_key(key))
            return self._submit([op], _existed)
        ops = [Op(OpKind.DELETE, namespace, object_id, name) for name in check_keys(key)]
        if not ops:
            return _Done(0)
        return self._submit(ops, _count)

    async def list(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """Entries in key order (UTF-8 bytes); ``start`` inclusive, ``end`` exclusive."""
        return await _list(self._engine, self._owner, None, prefix, start, end, limit, reverse)

    def delete_all(self) -> Awaitable[None]:
        """Delete every key of this object (its alarm stays)."""
        op = Op(OpKind.DELETE_ALL, *self._owner)
        return self._submit([op], _none)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with storage.transaction() as txn``: all of txn's writes or none."""
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        txn = _Transaction(self._engine, self._owner)
        try:
            yield txn
        finally:
            txn.finished = True
        if txn.rolled_back or not txn.writes:
            return
        namespace, object_id = self._owner
        ops = [
            Op(OpKind.PUT, namespace, object_id, key, value)
            if value is not None
            else Op(OpKind.DELETE, namespace, object_id, key)
            for key, value in txn.writes.items()
        ]
        await self._submit(ops, _none)

    async def get_alarm(self) -> float | None:
        """The alarm time in epoch seconds, or None."""
        return await self._engine.get_alarm(self._owner)

    def set_alarm(self, when: datetime | float) -> Awaitable[None]:
        """Set the object's one alarm: an aware datetime or epoch seconds."""
        op = Op(OpKind.SET_ALARM, *self._owner, at=alarm_time(when))
        return self._submit([op], _none)

    def delete_alarm(self) -> Awaitable[None]:
        """Remove the object's alarm, if any."""
        op = Op(OpKind.DELETE_ALARM, *self._owner)
        return self._submit([op], _none)

    async def sync(self) -> None:
        """Wait until every write issued so far is durable; raise if one failed."""
        await self._engine.sync(self._owner)


async def _get(
    engine: Engine, owner: Owner, key: object, layer: dict[str, str | None] | None
) -> Any:
    if isinstance(key, str):
        found = await engine.get(owner, [check_key(key)], layer)
        value = found.get(key)
        return None if value is None else json.loads(value)
    found = await engine.get(owner, check_keys(key), layer)
    return {name: json.loads(value) for name, value in found.items()}


class _Transaction:
    """Writes buffered until the ``async with`` block exits; reads see them first."""

    __slots__ = ("_engine", "_owner", "finished", "rolled_back", "writes")

    def __init__(self, engine: Engine, owner: Owner) -> None:
        self._engine = engine
        self._owner = owner
        self.writes: dict[str, str | None] = {}  # key -> JSON text, or None: deleted
        self.rolled_back = False
        self.finished = False

    def _check_usable(self) -> None:
        if self.rolled_back:
            raise StorageError("this transaction was rolled back; start a new one")
        if self.finished:
            raise StorageError("this transaction is over: use it inside its `async with`")

    @overload
    async def get(self, key: str) -> Any | None: ...
    @overload
    async def get(self, key: list[str]) -> dict[str, Any]: ...
    async def get(self, key: str | list[str]) -> Any:
        self._check_usable()
        return await _get(self._engine, self._owner, key, self.writes)

    @overload
    def put(self, key: str, value: Any) -> Awaitable[None]: ...
    @overload
    def put(self, key: dict[str, Any]) -> Awaitable[None]: ...
    def put(self, key: str | dict[str, Any], value: Any = _MISSING) -> Awaitable[None]:
        self._check_usable()
        for op in _put_ops(self._owner, key, value):
            self.writes[op.key] = op.value
        return _Done(None)

    @overload
    def delete(self, key: str) -> Awaitable[bool]: ...
    @overload
    def delete(self, key: list[str]) -> Awaitable[int]: ...
    def delete(self, key: str | list[str]) -> Awaitable[bool] | Awaitable[int]:
        self._check_usable()
        single = isinstance(key, str)
        keys = [check_key(key)] if single else check_keys(key)
        priors: list[tuple[str, str | None]] = []
        for name in keys:
            priors.append((name, self.writes.get(name, _MISSING)))
            self.writes[name] = None
        count = _Lazy(functools.partial(self._existing, priors))
        if single:
            return _Lazy(functools.partial(_as_bool, count))
        return count

    async def _existing(self, priors: list[tuple[str, str | None]]) -> int:
        """How many of the deleted keys existed when the delete was issued."""
        unknown = [name for name, prior in priors if prior is _MISSING]
        stored = await self._engine.get(self._owner, unknown, None) if unknown else {}
        count = 0
        for name, prior in priors:
            if prior is _MISSING:
                count += name in stored
                stored.pop(name, None)  # the same key twice: only the first existed
            else:
                count += prior is not None
        return count

    async def list(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        self._check_usable()
        return await _list(
            self._engine, self._owner, self.writes, prefix, start, end, limit, reverse
        )

    def rollback(self) -> None:
        """Discard every write of this transaction; nothing is committed at exit."""
        self.rolled_back = True
        self.writes.clear()


async def _as_bool(count: Awaitable[int]) -> bool:
    return bool(await count)


class EngineBackend:
    """A :class:`~kitpy.storage.base.StorageBackend` made of an engine and a driver."""

    def __init__(self, driver: Driver, *, offload: bool, label: str) -> None:
        self._engine = Engine(driver, offload=offload, label=label)

    @property
    def commits(self) -> int:
        """Batches committed so far (each one transaction, one fsync for SQLite)."""
        return self._engine.commits

    def storage(self, namespace: str, object_id: str) -> ObjectStorage:
        """The view of one object's storage; cheap, and may be asked for again."""
        return ObjectStorage(self._engine, namespace, object_id)

    async def sync(self) -> None:
        """Wait until every write issued so far, by any object, is durable."""
        await self._engine.sync(None)

    async def pending_alarms(self) -> list[tuple[str, str, float]]:
        """``(namespace, object_id, epoch seconds)`` of every alarm set, soonest first."""
        return await self._engine.alarms()

    async def aclose(self) -> None:
        """Flush every pending write, then close (graceful shutdown)."""
        await self._engine.aclose()
