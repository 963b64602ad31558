"""The driver seam: what a store (dicts, SQLite, PostgreSQL) implements for the engine.

The engine (:mod:`kitpy.storage.engine`) owns every rule that callers observe: group
commit, reads that see pending writes, transactions, alarms not yet committed. A
driver is only a synchronous store of JSON text by ``(namespace, object id, key)``
plus one alarm per object, written in batches of :class:`Op`. A new store is a new
:class:`Driver` and a small :class:`~kitpy.storage.views.EngineBackend` subclass that
names it; the storage contract tests then run on it too (tests/storage/conftest.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Protocol

__all__ = ("Driver", "Op", "OpKind", "range_sql")


class OpKind(Enum):
    """What one write does."""

    PUT = auto()
    DELETE = auto()
    DELETE_ALL = auto()
    SET_ALARM = auto()
    DELETE_ALARM = auto()


@dataclass(slots=True)
class Op:
    """One write, as the driver applies it. ``value`` is JSON text (PUT only), ``at``
    epoch seconds (SET_ALARM only).

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
    """A synchronous store behind the engine. What a driver must guarantee:

    - **Atomic batches.** ``apply(ops)`` applies every op of the batch or none of them,
      and returns only once the batch is durable (SQLite: committed with the WAL
      fsynced). The engine acknowledges every write of the batch on that return.
    - **Order.** Ops are applied in the order given, and a later op sees the earlier
      ones of the same batch: ``PUT k`` then ``DELETE k`` leaves no ``k`` and returns
      ``[0, 1]``; ``DELETE_ALL`` then ``PUT k`` leaves just ``k``.
    - **Results.** ``apply`` returns one int per op: the rows it removed (``DELETE``
      and ``DELETE_ALARM``: 1 if there was one, else 0; ``DELETE_ALL``: how many
      keys; ``PUT`` and ``SET_ALARM``: 0).
    - **A failed batch leaves nothing.** If any op cannot be applied, ``apply`` rolls
      back the whole batch (the store is as it was before the call) and raises
      :class:`~kitpy.errors.StorageError` with a one-line message naming the store and
      what failed ("storage database /x: writing failed: disk full"); every waiter of
      the batch gets that error. Another exception is wrapped by the engine as
      "commit failed". The driver stays usable: the next batch gets a fresh try
      (reopen a broken connection then, rather than failing forever).
    - **Reads see committed batches whole.** ``get``, ``scan``, ``get_alarm`` and
      ``alarms`` see every batch whose ``apply`` returned and never part of one in
      flight. ``scan`` orders keys by their UTF-8 bytes (code point order).
    - **Threads.** With ``offload=True`` (every store that blocks) each call runs in a
      worker thread. The engine runs one ``apply`` at a time per driver; reads may run
      beside it and beside each other. ``close()`` comes last, after the last batch.
    """

    def apply(self, ops: Sequence[Op]) -> list[int]:
        """Apply ``ops`` in order, atomically; per op the number of rows it removed."""

    def get(self, namespace: str, object_id: str, keys: Sequence[str]) -> dict[str, str]:
        """JSON text of the keys found."""

    # Each driver (memory.py, sqlite.py, postgres.py) repeats these signatures: it
    # implements them.
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


def range_sql(
    select: str,
    mark: str,
    low: str | None,
    high: str | None,
    limit: int | None,
    reverse: bool,
) -> tuple[str, list[object]]:
    """The bounds, order and limit of an SQL driver's ``scan`` appended to ``select``.

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
