"""One event-loop timer for the keepalive deadlines of every WebSocket of a loop (asyncio).

A server holding thousands of idle WebSockets would otherwise keep one timer handle
(with its bound method and copied context) per socket. :class:`Deadlines` keeps a
heap of ``(when, seq, weakref(owner))`` and a single ``loop.call_at`` for the
earliest: when it fires, every owner whose time has come gets ``deadline_reached()``
called, once per :meth:`Deadlines.add`. Owners are held weakly, so a finished
connection is not kept alive until its deadline; one that no longer wants the call
ignores it (there is no removal, which would cost a heap search).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import weakref
from typing import Protocol

__all__ = ("Deadlines", "DeadlineOwner", "deadlines")


class DeadlineOwner(Protocol):
    def deadline_reached(self) -> None: ...


class Deadlines:
    """Deadlines of many owners on one loop, served by one timer."""

    __slots__ = ("_at", "_handle", "_heap", "_loop", "_seq")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, weakref.ref[DeadlineOwner]]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._at = float("inf")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def add(self, when: float, owner: DeadlineOwner) -> None:
        """Call ``owner.deadline_reached()`` at loop time ``when`` (or soon after)."""
        heapq.heappush(self._heap, (when, next(self._seq), weakref.ref(owner)))
        if when < self._at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._at = float("inf")
        heap = self._heap
        now = self._loop.time()
        due = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        try:
            for ref in due:
                owner = ref()
                if owner is not None:
                    owner.deadline_reached()  # may add() again: served on a later turn
        finally:
            if heap and heap[0][0] < self._at:
                self._arm(heap[0][0])


_local = threading.local()


def deadlines() -> Deadlines:
    """The :class:`Deadlines` of the running asyncio loop (one per loop and thread)."""
    loop = asyncio.get_running_loop()
    current: Deadlines | None = getattr(_local, "deadlines", None)
    if current is None or current.loop is not loop:
        current = _local.deadlines = Deadlines(loop)
    return current
