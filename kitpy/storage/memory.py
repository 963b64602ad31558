"""In-memory storage: the SQLite backend's semantics without durability, for fast tests."""

from __future__ import annotations

from collections.abc import Sequence

from kitpy.storage.driver import Op, OpKind
from kitpy.storage.views import EngineBackend

__all__ = ("MemoryBackend", "MemoryDriver")

_Owner = tuple[str, str]


class MemoryDriver:
    """Dicts behind the engine; every call runs in the event loop (it never blocks)."""

    def __init__(self) -> None:
        self._kv: dict[_Owner, dict[str, str]] = {}
        self._alarms: dict[_Owner, float] = {}

    def apply(self, ops: Sequence[Op]) -> list[int]:
        """Apply ``ops`` atomically: on any error the touched objects are restored."""
        owners = {(op.namespace, op.object_id) for op in ops}
        saved_kv = {owner: dict(self._kv.get(owner, {})) for owner in owners}
        saved_alarms = {owner: self._alarms.get(owner) for owner in owners}
        try:
            return [self._apply(op) for op in ops]
        except BaseException:
            for owner, entries in saved_kv.items():
                self._kv[owner] = entries
            for owner, at in saved_alarms.items():
                if at is None:
                    self._alarms.pop(owner, None)
                else:
                    self._alarms[owner] = at
            raise

    def _apply(self, op: Op) -> int:
        owner = (op.namespace, op.object_id)
        if op.kind is OpKind.PUT:
            self._kv.setdefault(owner, {})[op.key] = op.value
        elif op.kind is OpKind.DELETE:
            entries = self._kv.get(owner)
            return 1 if entries is not None and entries.pop(op.key, None) is not None else 0
        elif op.kind is OpKind.DELETE_ALL:
            return len(self._kv.pop(owner, {}))
        elif op.kind is OpKind.SET_ALARM:
            self._alarms[owner] = op.at
        else:
            return 1 if self._alarms.pop(owner, None) is not None else 0
        return 0

    def get(self, namespace: str, object_id: str, keys: Sequence[str]) -> dict[str, str]:
        entries = self._kv.get((namespace, object_id), {})
        return {key: entries[key] for key in keys if key in entries}

    def scan(
        self,
        namespace: str,
        object_id: str,
        low: str | None,
        high: str | None,
        limit: int | None,
        reverse: bool,
    ) -> list[tuple[str, str]]:
        entries = self._kv.get((namespace, object_id), {})
        # str order is code point order, which is UTF-8 byte order for valid keys.
        keys = sorted(
            (
                key
                for key in entries
                if (low is None or key >= low) and (high is None or key < high)
            ),
            reverse=reverse,
        )
        if limit is not None:
            keys = keys[:limit]
        return [(key, entries[key]) for key in keys]

    def get_alarm(self, namespace: str, object_id: str) -> float | None:
        return self._alarms.get((namespace, object_id))

    def alarms(self) -> list[tuple[str, str, float]]:
        return [(namespace, object_id, at) for (namespace, object_id), at in self._alarms.items()]

    def close(self) -> None:
        return None


class MemoryBackend(EngineBackend):
    """A :class:`~kitpy.storage.base.StorageBackend` that keeps everything in memory."""

    def __init__(self) -> None:
        super().__init__(MemoryDriver(), offload=False, label="memory storage")
