"""kitpy.storage: persistence of JSON values by key for durable objects.

Knows nothing of objects: a :class:`StorageBackend` (one per site) hands out a
per-(namespace, object id) :class:`Storage`. :class:`SqliteBackend` is the durable,
embedded store; :class:`MemoryBackend` has the same semantics in memory, for tests.

- ``base``: the contract (``KeyValue``, ``Storage``, ``Transaction``,
  ``StorageBackend``) and the input rules;
- ``views``: the per-object views that turn calls into ops, and ``EngineBackend``;
- ``engine``: group commit and read-your-writes over one driver;
- ``driver``: the seam a store implements (``Driver``, ``Op``) and what it must
  guarantee; ``memory`` and ``sqlite`` are the two drivers.
"""

from __future__ import annotations

from kitpy.storage.base import Storage as Storage
from kitpy.storage.base import StorageBackend as StorageBackend
from kitpy.storage.base import Transaction as Transaction
from kitpy.storage.memory import MemoryBackend as MemoryBackend
from kitpy.storage.sqlite import SqliteBackend as SqliteBackend

__all__ = (
    "MemoryBackend",
    "SqliteBackend",
    "Storage",
    "StorageBackend",
    "Transaction",
)
