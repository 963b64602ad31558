"""The storage contract: the classes callers code against, and its input rules.

A :class:`StorageBackend` is one per site; ``backend.storage(namespace, object_id)``
gives the per-object :class:`Storage` view a durable object sees as ``state.storage``.
:class:`KeyValue` declares the read/write surface once (get, put, delete, list, with
their overloads); :class:`Storage` and :class:`Transaction` add what each has besides.
Values are JSON-compatible (``dict`` with ``str`` keys, ``list``, ``str``, ``int``,
``float``, ``bool``, ``None``) and are stored as JSON text; keys are non-empty ``str``.
Key order is UTF-8 byte order, as Cloudflare's (docs/storage.md, "Reading":
``start`` inclusive, ``end`` exclusive).

Writes (``put``, ``delete``, ``delete_all``, ``set_alarm``, ``delete_alarm``) are plain
functions: they validate and enqueue synchronously and return an awaitable that
completes once the write is durable. Writes issued with no ``await`` between them are
committed together, atomically.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, overload

from kitpy.errors import StorageError

__all__ = (
    "MISSING",
    "KeyValue",
    "ListQuery",
    "Storage",
    "StorageBackend",
    "Transaction",
    "alarm_time",
    "check_bound",
    "check_key",
    "check_keys",
    "check_limit",
    "check_name",
    "encode_value",
)


MISSING: Any = object()  # put()'s value when none is given


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The checked options of one ``list()`` call."""

    prefix: str | None
    start: str | None
    end: str | None
    limit: int | None
    reverse: bool


class KeyValue(ABC):
    """The read/write surface that :class:`Storage` and :class:`Transaction` share,
    declared once.

    The public methods check their arguments (the input rules below) and hand plain
    values to the primitives a subclass provides: the engine's views, which turn them
    into ops, and the object's gated wrapper, which passes them on with the input gate
    closed.
    """

    __slots__ = ()

    @overload
    async def get(self, key: str) -> Any | None: ...
    @overload
    async def get(self, key: list[str]) -> dict[str, Any]: ...
    async def get(self, key: str | list[str]) -> Any:
        """The value of ``key`` or None; for a list of keys, a dict of those found."""
        if isinstance(key, str):
            return await self._get_one(check_key(key))
        return await self._get_many(check_keys(key))

    @overload
    def put(self, key: str, value: Any) -> Awaitable[None]: ...
    @overload
    def put(self, key: dict[str, Any]) -> Awaitable[None]: ...
    def put(self, key: str | dict[str, Any], value: Any = MISSING) -> Awaitable[None]:
        """Store ``value`` at ``key`` (or every entry of a dict); await for durability."""
        if isinstance(key, dict):
            if value is not MISSING:
                raise StorageError("put(dict) takes no value: the dict holds the entries")
            return self._put(key)
        if value is MISSING:
            raise StorageError(f"put({key!r}) needs a value, or a dict of entries")
        return self._put({check_key(key): value})

    @overload
    def delete(self, key: str) -> Awaitable[bool]: ...
    @overload
    def delete(self, key: list[str]) -> Awaitable[int]: ...
    def delete(self, key: str | list[str]) -> Awaitable[bool] | Awaitable[int]:
        """Delete a key (awaits to whether it existed) or many (to how many existed)."""
        if isinstance(key, str):
            return self._delete_one(check_key(key))
        return self._delete_many(check_keys(key))

    # The primitives return awaitables, so that a view may hand on its helper's
    # coroutine without one more frame of its own.
    @abstractmethod
    def _get_one(self, key: str) -> Awaitable[Any | None]:
        """The value of one checked key, or None."""

    @abstractmethod
    def _get_many(self, keys: list[str]) -> Awaitable[dict[str, Any]]:
        """The values of the checked keys found."""

    @abstractmethod
    def _put(self, entries: dict[str, Any]) -> Awaitable[None]:
        """Store each entry (its keys and values not checked yet: a view encodes them)."""

    @abstractmethod
    def _delete_one(self, key: str) -> Awaitable[bool]:
        """Delete one checked key; the awaitable says whether it existed."""

    @abstractmethod
    def _delete_many(self, keys: list[str]) -> Awaitable[int]:
        """Delete the checked keys; the awaitable says how many existed."""

    @abstractmethod
    def _list(self, query: ListQuery) -> Awaitable[dict[str, Any]]:
        """The entries ``query`` selects, in key order (or reversed)."""

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
        query = ListQuery(
            check_bound("prefix", prefix),
            check_bound("start", start),
            check_bound("end", end),
            check_limit(limit),
            bool(reverse),
        )
        return await self._list(query)


class Transaction(KeyValue):
    """The ``txn`` of ``async with storage.transaction() as txn``: reads see its own writes."""

    __slots__ = ()

    @abstractmethod
    def rollback(self) -> None:
        """Discard every write of this transaction; nothing is committed at exit."""


class Storage(KeyValue):
    """Persistent JSON values by key for one (namespace, object id)."""

    __slots__ = ()

    @abstractmethod
    def delete_all(self) -> Awaitable[None]:
        """Delete every key of this object (its alarm stays)."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with storage.transaction() as txn``: all of txn's writes or none."""

    @abstractmethod
    async def get_alarm(self) -> float | None:
        """The alarm time in epoch seconds, or None."""

    @abstractmethod
    def set_alarm(self, when: datetime | float) -> Awaitable[None]:
        """Set the object's one alarm: an aware datetime or epoch seconds."""

    @abstractmethod
    def delete_alarm(self) -> Awaitable[None]:
        """Remove the object's alarm, if any."""

    @abstractmethod
    async def sync(self) -> None:
        """Wait until every write issued so far is durable; raise if one failed."""


class StorageBackend(Protocol):
    """One per site: the store shared by every object of every namespace."""

    def storage(self, namespace: str, object_id: str) -> Storage:
        """The view of one object's storage; cheap, and may be asked for again."""

    async def pending_alarms(self) -> list[tuple[str, str, float]]:
        """``(namespace, object_id, epoch seconds)`` of every alarm set, for re-arming."""

    async def aclose(self) -> None:
        """Flush every pending write, then close (graceful shutdown)."""


MAX_DEPTH = 100  # nesting levels in a stored value


def check_name(what: str, name: object) -> str:
    """A namespace or object id: a non-empty str."""
    if type(name) is not str or not name:
        raise StorageError(f"storage {what} must be a non-empty str, got {name!r}")
    return name


def check_key(key: object) -> str:
    """A storage key: a non-empty str encodable as UTF-8 (the key order is byte order)."""
    if type(key) is not str:
        raise StorageError(f"storage keys must be str, got {type(key).__name__}: {key!r}")
    if not key:
        raise StorageError("storage keys must be non-empty strings, got ''")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise StorageError(f"storage key {key!r} is not valid Unicode (lone surrogate)") from None
    return key


def check_limit(limit: object) -> int | None:
    """``list(limit=...)``: None or a positive int."""
    if limit is None:
        return None
    if type(limit) is not int or limit < 1:
        raise StorageError(f"list(limit=...) takes a positive int, got {limit!r}")
    return limit


def check_bound(name: str, bound: object) -> str | None:
    """``list(prefix=/start=/end=...)``: None or a str."""
    if bound is None:
        return None
    if type(bound) is not str:
        raise StorageError(f"list({name}=...) takes a str, got {type(bound).__name__}")
    return bound


def check_keys(keys: object) -> list[str]:
    """A list (or tuple) of keys for get/delete of many."""
    if not isinstance(keys, list | tuple):
        raise StorageError(
            f"storage keys must be a str or a list of str, got {type(keys).__name__}"
        )
    return [check_key(key) for key in keys]


def _find_bad(value: object, where: str, depth: int) -> str | None:
    """Where in ``value`` something is not JSON-compatible, described for a message."""
    if value is None or isinstance(value, str | int):  # bool is an int
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r} (not valid in JSON)"
    if depth > MAX_DEPTH:
        return f"{where} nests deeper than {MAX_DEPTH} levels (or contains itself)"
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_bad(item, f"{where}[{index}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                return f"{where} has a key of type {type(name).__name__}: {name!r} (must be str)"
            found = _find_bad(item, f"{where}[{name!r}]", depth + 1)
            if found:
                return found
        return None
    return f"{where} is of type {type(value).__name__}"


def _reject(_: object) -> object:
    raise TypeError("not JSON")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_reject
)


def encode_value(key: str, value: object) -> str:
    """``value`` as compact JSON text, or StorageError naming the key and the bad type."""
    # Fast path, in C: encode, then decode and compare, which catches what the encoder
    # lets through (tuples become lists, int keys become str keys: both compare unequal).
    try:
        text = _ENCODER.encode(value)
        if json.loads(text) == value:
            text.encode("utf-8")  # no lone surrogates
            return text
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        pass
    problem = _find_bad(value, "the value", 0) or "the value holds a str with a lone surrogate"
    raise StorageError(
        f"cannot store key {key!r}: {problem}; storage values must be JSON-compatible "
        "(dict with str keys, list, str, int, float, bool, None)"
    )


def alarm_time(when: object) -> float:
    """An alarm time as epoch seconds: from an aware datetime or a number."""
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise StorageError(
                f"set_alarm() needs an aware datetime, got naive {when.isoformat()}; "
                "pass e.g. datetime.now(timezone.utc) or epoch seconds"
            )
        return when.timestamp()
    if isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when):
        return float(when)
    raise StorageError(
        f"set_alarm() takes an aware datetime or epoch seconds, got {type(when).__name__}: {when!r}"
    )
