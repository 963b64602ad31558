"""The per-object views over the engine, and the backend that hands them out.

:class:`ObjectStorage` is what ``backend.storage(namespace, object_id)`` returns: its
writes become ops submitted to the engine (:mod:`kitpy.storage.engine`), its reads
engine reads. A transaction buffers its writes in a layer that its own reads see
first and submits them as one batch when its ``async with`` block exits. Both take
their public methods, argument checks included, from
:class:`~kitpy.storage.base.KeyValue`.

:class:`EngineBackend` is a :class:`~kitpy.storage.base.StorageBackend` made of an
engine and a driver; the SQLite and the memory backends are its subclasses, and so
is the next store's (see :class:`~kitpy.storage.driver.Driver`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar

from kitpy.errors import StorageError
from kitpy.storage.base import (
    MISSING,
    ListQuery,
    Storage,
    Transaction,
    alarm_time,
    check_key,
    check_name,
    encode_value,
)
from kitpy.storage.driver import Driver, Op, OpKind
from kitpy.storage.engine import Ack, Engine, Owner

__all__ = ("EngineBackend", "ObjectStorage", "key_range")

T = TypeVar("T")

Layer = dict[str, str | None]  # a transaction's writes: key -> JSON text, None: deleted


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


def _put_ops(owner: Owner, entries: dict[str, Any]) -> list[Op]:
    namespace, object_id = owner
    return [
        Op(OpKind.PUT, namespace, object_id, check_key(name), encode_value(name, value))
        for name, value in entries.items()
    ]


async def _get_one(engine: Engine, owner: Owner, key: str, layer: Layer | None) -> Any:
    value = (await engine.get(owner, [key], layer)).get(key)
    return None if value is None else json.loads(value)


async def _get_many(
    engine: Engine, owner: Owner, keys: list[str], layer: Layer | None
) -> dict[str, Any]:
    found = await engine.get(owner, keys, layer)
    return {name: json.loads(value) for name, value in found.items()}


async def _list(
    engine: Engine, owner: Owner, layer: Layer | None, query: ListQuery
) -> dict[str, Any]:
    low, high = key_range(query.prefix, query.start, query.end)
    rows = await engine.scan(owner, low, high, query.limit, query.reverse, layer)
    return {key: json.loads(value) for key, value in rows}


class ObjectStorage(Storage):
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

    def _get_one(self, key: str) -> Awaitable[Any | None]:
        return _get_one(self._engine, self._owner, key, None)

    def _get_many(self, keys: list[str]) -> Awaitable[dict[str, Any]]:
        return _get_many(self._engine, self._owner, keys, None)

    def _put(self, entries: dict[str, Any]) -> Awaitable[None]:
        ops = _put_ops(self._owner, entries)
        if not ops:
            return _Done(None)
        return self._submit(ops, _none)

    def _delete_one(self, key: str) -> Awaitable[bool]:
        op = Op(OpKind.DELETE, *self._owner, key)
        return self._submit([op], _existed)

    def _delete_many(self, keys: list[str]) -> Awaitable[int]:
        if not keys:
            return _Done(0)
        ops = [Op(OpKind.DELETE, *self._owner, key) for key in keys]
        return self._submit(ops, _count)

    def _list(self, query: ListQuery) -> Awaitable[dict[str, Any]]:
        return _list(self._engine, self._owner, None, query)

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


class _Transaction(Transaction):
    """Writes buffered until the ``async with`` block exits; reads see them first."""

    __slots__ = ("_engine", "_owner", "finished", "rolled_back", "writes")

    def __init__(self, engine: Engine, owner: Owner) -> None:
        self._engine = engine
        self._owner = owner
        self.writes: Layer = {}
        self.rolled_back = False
        self.finished = False

    def _check_usable(self) -> None:
        if self.rolled_back:
            raise StorageError("this transaction was rolled back; start a new one")
        if self.finished:
            raise StorageError("this transaction is over: use it inside its `async with`")

    async def _get_one(self, key: str) -> Any | None:
        self._check_usable()
        return await _get_one(self._engine, self._owner, key, self.writes)

    async def _get_many(self, keys: list[str]) -> dict[str, Any]:
        self._check_usable()
        return await _get_many(self._engine, self._owner, keys, self.writes)

    def _put(self, entries: dict[str, Any]) -> Awaitable[None]:
        self._check_usable()
        for op in _put_ops(self._owner, entries):
            self.writes[op.key] = op.value
        return _Done(None)

    def _delete_one(self, key: str) -> Awaitable[bool]:
        return _Lazy(functools.partial(_as_bool, self._delete_many([key])))

    def _delete_many(self, keys: list[str]) -> Awaitable[int]:
        self._check_usable()
        priors: list[tuple[str, str | None]] = []
        for name in keys:
            priors.append((name, self.writes.get(name, MISSING)))
            self.writes[name] = None
        return _Lazy(functools.partial(self._existing, priors))

    async def _existing(self, priors: list[tuple[str, str | None]]) -> int:
        """How many of the deleted keys existed when the delete was issued."""
        unknown = [name for name, prior in priors if prior is MISSING]
        stored = await self._engine.get(self._owner, unknown, None) if unknown else {}
        count = 0
        for name, prior in priors:
            if prior is MISSING:
                count += name in stored
                stored.pop(name, None)  # the same key twice: only the first existed
            else:
                count += prior is not None
        return count

    async def _list(self, query: ListQuery) -> dict[str, Any]:
        self._check_usable()
        return await _list(self._engine, self._owner, self.writes, query)

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
