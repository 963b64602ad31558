"""Alarms: each object's one alarm, timed in process, stored durably.

The storage layer keeps the alarm time (``state.storage.set_alarm``); this module
keeps one timer task per armed alarm. When it fires, the object's ``alarm()`` runs as
an event (through the input gate, constructing the object if it is not in memory).

- Success: the alarm is deleted from storage -- unless ``alarm()`` (or another event
  meanwhile) set a new one, which is then armed as usual.
- ``alarm()`` raises: it is retried after ``retry_delay``, then twice that, and so on
  (exponential backoff), at most ``max_retries`` times; after the last failure the
  error is logged and the alarm deleted, as Cloudflare gives up after six retries.
- ``set_alarm`` or ``delete_alarm`` while a timer waits replaces or cancels it; while
  ``alarm()`` runs, they take effect for the future and the running one is neither
  retried nor deleted afterwards.
- At start-up :class:`~kitpy.objects.registry.ObjectSystem` re-arms every alarm found
  in storage, so an alarm set before a restart fires after it; an alarm whose time
  passed while the server was down fires at once. Delivery is at least once: a crash
  during ``alarm()`` or before the alarm is deleted makes it fire again at restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

__all__ = ("AlarmHost", "AlarmScheduler")

logger = logging.getLogger("kitpy.objects")

#: First retry delay in seconds, and how many retries before giving up (Cloudflare's).
RETRY_DELAY = 2.0
MAX_RETRIES = 6

_Key = tuple[str, str]  # (namespace, object id hex)


class AlarmHost(Protocol):
    """What the scheduler needs from the object system."""

    def spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` in a task the system owns (cancelled at shutdown)."""

    async def run_alarm(self, namespace: str, object_id: str) -> None:
        """Deliver one ``alarm()`` event; raises what the handler raised."""

    def clear_alarm(self, namespace: str, object_id: str) -> Awaitable[None]:
        """Delete the stored alarm (issued synchronously; await for durability)."""


class _Alarm:
    __slots__ = ("retries", "running", "scope", "superseded", "when")

    def __init__(self, when: float) -> None:
        self.when = when
        self.scope = anyio.CancelScope()
        self.running = False  # alarm() is executing: not cancelled by a new set
        self.superseded = False  # a later set/delete took over
        self.retries = 0

    def cancel(self) -> None:
        self.superseded = True
        if not self.running:
            self.scope.cancel()


class AlarmScheduler:
    """One timer per armed alarm; see the module docstring for the rules."""

    def __init__(
        self,
        host: AlarmHost,
        *,
        retry_delay: float = RETRY_DELAY,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self._host = host
        self._retry_delay = retry_delay
        self._max_retries = max_retries
        self._alarms: dict[_Key, _Alarm] = {}

    def scheduled(self, namespace: str, object_id: str) -> float | None:
        """The time of the armed alarm of an object, or None."""
        alarm = self._alarms.get((namespace, object_id))
        return None if alarm is None or alarm.superseded else alarm.when

    def set(self, namespace: str, object_id: str, when: float) -> None:
        """Arm (or re-arm) the alarm of an object for ``when`` (epoch seconds)."""
        key = (namespace, object_id)
        old = self._alarms.get(key)
        if old is not None:
            old.cancel()
        alarm = _Alarm(when)
        self._alarms[key] = alarm
        self._host.spawn(lambda: self._run(key, alarm))

    def delete(self, namespace: str, object_id: str) -> None:
        """Disarm the alarm of an object, if armed."""
        old = self._alarms.pop((namespace, object_id), None)
        if old is not None:
            old.cancel()

    async def _run(self, key: _Key, alarm: _Alarm) -> None:
        delay = max(0.0, alarm.when - time.time())
        while True:
            with alarm.scope:
                await anyio.sleep(delay)
            if alarm.superseded:
                return
            alarm.running = True
            try:
                await self._host.run_alarm(*key)
            except Exception as exc:
                alarm.running = False
                if alarm.superseded:
                    return
                alarm.retries += 1
                if alarm.retries > self._max_retries:
                    logger.error(
                        "alarm of %s/%s raised %d times; giving up and deleting it",
                        *key,
                        alarm.retries,
                        exc_info=exc,
                    )
                    await self._finish(key, alarm)
                    return
                delay = self._retry_delay * 2 ** (alarm.retries - 1)
                logger.warning(
                    "alarm of %s/%s raised; retry %d of %d in %.3g s",
                    *key,
                    alarm.retries,
                    self._max_retries,
                    delay,
                    exc_info=exc,
                )
                alarm.scope = anyio.CancelScope()
                continue
            alarm.running = False
            if not alarm.superseded:
                await self._finish(key, alarm)
            return

    async def _finish(self, key: _Key, alarm: _Alarm) -> None:
        # Checked and issued with no await between: a set_alarm that comes later is
        # not undone by this delete.
        if self._alarms.get(key) is alarm:
            del self._alarms[key]
        ack = self._host.clear_alarm(*key)
        try:
            await ack
        except Exception:
            logger.exception("could not delete the fired alarm of %s/%s", *key)
