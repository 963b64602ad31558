"""Alarms: fire, retry with backoff, are deleted after success, survive a restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import RunObjects, Until

from kitpy import DurableObject, Request, Response
from kitpy.errors import StorageError
from kitpy.objects import DurableObjectState, ObjectSystem
from kitpy.storage import MemoryBackend, SqliteBackend

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


FIRED: list[str] = []


class Timer(DurableObject):
    """fetch("/in?s=0.01") sets an alarm; the alarm raises ``fail`` times first."""

    fail = 0

    def __init__(self, state: DurableObjectState, env: Any) -> None:
        super().__init__(state, env)
        self.runs = 0

    async def fetch(self, request: Request) -> Response:
        query = request.url.query
        if request.url.path == "/in":
            await self.state.storage.set_alarm(time.time() + float(query["s"]))
        elif request.url.path == "/at":
            when = datetime.now(UTC) + timedelta(seconds=float(query["s"]))
            self.state.storage.set_alarm(when)
        elif request.url.path == "/delete":
            await self.state.storage.delete_alarm()
        elif request.url.path == "/repeat":
            await self.state.storage.put("repeat", int(query["n"]))
            await self.state.storage.set_alarm(time.time())
        alarm = await self.state.storage.get_alarm()
        return Response("none" if alarm is None else "set")

    async def alarm(self) -> None:
        self.runs += 1
        FIRED.append(str(self.state.id))
        if self.runs <= self.fail:
            raise RuntimeError(f"failure {self.runs}")
        repeat = await self.state.storage.get("repeat") or 0
        if repeat > 1:
            await self.state.storage.put("repeat", repeat - 1)
            await self.state.storage.set_alarm(time.time())


def timer(system: ObjectSystem, name: str = "t") -> Any:
    return system.namespace("timers").get_by_name(name)


@pytest.fixture(autouse=True)
def _reset() -> None:
    FIRED.clear()
    Timer.fail = 0


async def test_an_alarm_fires_and_is_then_deleted(run_objects: RunObjects, until: Until) -> None:
    async with run_objects({"timers": Timer}) as system:
        assert (await timer(system).fetch("/in?s=0.01")).body == b"set"
        await until(lambda: len(FIRED) == 1)
        await until(lambda: system.scheduled_alarm(timer(system).id) is None)
        assert (await timer(system).fetch("/")).body == b"none"


async def test_an_aware_datetime_works_and_a_naive_one_is_refused(
    run_objects: RunObjects, until: Until
) -> None:
    async with run_objects({"timers": Timer}) as system:
        await timer(system).fetch("/at?s=0.01")
        await until(lambda: len(FIRED) == 1)

    class Naive(Timer):
        async def fetch(self, request: Request) -> Response:
            self.state.storage.set_alarm(datetime.now())
            return Response("unreachable")

    async with run_objects({"timers": Naive}) as system:
        with pytest.raises(StorageError, match="aware datetime"):
            await timer(system).fetch("/")


async def test_a_failing_alarm_is_retried_with_backoff_then_deleted(
    run_objects: RunObjects, until: Until
) -> None:
    Timer.fail = 2
    async with run_objects({"timers": Timer}, alarm_retry_delay=0.01) as system:
        await timer(system).fetch("/in?s=0")
        await until(lambda: len(FIRED) == 3)
        await until(lambda: system.scheduled_alarm(timer(system).id) is None)
        assert (await timer(system).fetch("/")).body == b"none"
        await anyio.sleep(0.05)
        assert len(FIRED) == 3


async def test_retries_are_capped(
    run_objects: RunObjects, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    Timer.fail = 100
    async with run_objects(
        {"timers": Timer}, alarm_retry_delay=0.001, alarm_max_retries=3
    ) as system:
        await timer(system).fetch("/in?s=0")
        await until(lambda: "giving up" in caplog.text)
        assert len(FIRED) == 4  # the first run and three retries
        assert (await timer(system).fetch("/")).body == b"none"


async def test_an_alarm_may_set_the_next_one(run_objects: RunObjects, until: Until) -> None:
    async with run_objects({"timers": Timer}) as system:
        await timer(system).fetch("/repeat?n=3")
        await until(lambda: len(FIRED) == 3)
        await until(lambda: system.scheduled_alarm(timer(system).id) is None)
        assert (await timer(system).fetch("/")).body == b"none"


async def test_delete_alarm_disarms_it(run_objects: RunObjects) -> None:
    async with run_objects({"timers": Timer}) as system:
        # Due in 0.5 s: time enough for the delete to land first, also on a cluster node.
        await timer(system).fetch("/in?s=0.5")
        assert (await timer(system).fetch("/delete")).body == b"none"
        assert system.scheduled_alarm(timer(system).id) is None
        await anyio.sleep(0.7)
        assert FIRED == []


async def test_an_alarm_rebuilds_an_evicted_object(run_objects: RunObjects, until: Until) -> None:
    async with run_objects({"timers": Timer}, idle_timeout=0.02) as system:
        await timer(system).fetch("/in?s=0.15")
        await until(lambda: system.live_instance(timer(system).id) is None)
        await until(lambda: len(FIRED) == 1)


async def test_an_alarm_set_before_a_restart_fires_after_it(
    run_objects: RunObjects, until: Until, tmp_path: Path
) -> None:
    path = tmp_path / "storage.sqlite3"
    async with run_objects({"timers": Timer}, backend=SqliteBackend(path)) as system:
        object_id = str(timer(system).id)
        await timer(system).fetch("/in?s=0.3")
    assert FIRED == []  # the server stopped before it was due
    async with run_objects({"timers": Timer}, backend=SqliteBackend(path)) as system:
        await until(lambda: FIRED == [object_id])
        await until(lambda: system.scheduled_alarm(timer(system).id) is None)
    check = SqliteBackend(path)
    try:
        assert await check.pending_alarms() == []
    finally:
        await check.aclose()


async def test_an_overdue_alarm_in_storage_fires_at_start_up(
    run_objects: RunObjects, until: Until
) -> None:
    backend = MemoryBackend()
    object_id = str(
        ObjectSystem(backend, {"timers": Timer}, None).namespace("timers").id_from_name("t")
    )
    await backend.storage("timers", object_id).set_alarm(time.time() - 60)
    await backend.storage("gone", object_id).set_alarm(time.time() - 60)  # no binding: skipped
    async with run_objects({"timers": Timer}, backend=backend):
        await until(lambda: FIRED == [object_id])


async def test_an_object_without_alarm_method_has_its_alarm_dropped(
    run_objects: RunObjects, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    class NoAlarm(DurableObject):
        async def fetch(self, request: Request) -> Response:
            await self.state.storage.set_alarm(time.time())
            return Response("ok")

    async with run_objects({"timers": NoAlarm}) as system:
        await timer(system).fetch("/")
        await until(lambda: "has no alarm() method" in caplog.text)
        await until(lambda: system.scheduled_alarm(timer(system).id) is None)
