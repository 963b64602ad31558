"""The input gate: which interleavings of one object's events can happen."""

from __future__ import annotations

from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest
from conftest import RunObjects

from kitpy import DurableObject, Request, Response
from kitpy.objects import DurableObjectState, ObjectResetError, ObjectSystem
from kitpy.storage import MemoryBackend, Storage, StorageBackend

pytestmark = pytest.mark.anyio

#: Checkpoints a slow read yields: plenty of chances for another event to sneak in.
SLOW = 30


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _SlowStorage:
    """A storage whose reads take many scheduler turns, as a disk read would, and wait
    for ``backend.hold`` when the test sets one."""

    def __init__(self, inner: Storage, backend: SlowBackend) -> None:
        self._inner = inner
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, key: Any) -> Any:
        if self._backend.hold is not None:
            await self._backend.hold.wait()
        for _ in range(SLOW):
            await anyio.lowlevel.checkpoint()
        return await self._inner.get(key)


class SlowBackend:
    def __init__(self) -> None:
        self._inner = MemoryBackend()
        self.hold: anyio.Event | None = None

    def storage(self, namespace: str, object_id: str) -> Storage:
        return cast(Storage, _SlowStorage(self._inner.storage(namespace, object_id), self))

    async def pending_alarms(self) -> list[tuple[str, str, float]]:
        return await self._inner.pending_alarms()

    async def aclose(self) -> None:
        await self._inner.aclose()


def slow_backend() -> StorageBackend:
    return cast(StorageBackend, SlowBackend())


def stub(system: ObjectSystem, name: str = "x", namespace: str = "obj") -> Any:
    ns = system.namespace(namespace)
    return ns.get(ns.id_from_name(name))


class Counter(DurableObject):
    """Read-modify-write over storage: the gate makes it atomic."""

    async def fetch(self, request: Request) -> Response:
        n = await self.state.storage.get("n") or 0
        self.state.storage.put("n", n + 1)
        return Response(str(n))


class MemoryCounter(DurableObject):
    """The same read-modify-write, but awaiting something that is not storage."""

    n = 0

    async def fetch(self, request: Request) -> Response:
        n = self.n
        for _ in range(SLOW):
            await anyio.lowlevel.checkpoint()  # not storage: the gate stays open
        self.n = n + 1
        return Response(str(n))


async def _hammer(system: ObjectSystem, count: int) -> list[int]:
    results: list[int] = []

    async def one() -> None:
        response = await stub(system).fetch("/")
        assert response.body is not None
        results.append(int(response.body))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(one)
    return sorted(results)


async def test_a_read_modify_write_over_storage_is_never_interleaved(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"obj": Counter}, backend=slow_backend()) as system:
        assert await _hammer(system, 20) == list(range(20))


async def test_a_non_storage_await_lets_other_events_in(run_objects: RunObjects) -> None:
    # The gate is not a lock: while an event awaits something other than its storage,
    # the next one runs (as on Cloudflare). The naive counter therefore loses updates.
    async with run_objects({"obj": MemoryCounter}) as system:
        results = await _hammer(system, 20)
        assert len(set(results)) < 20


class Logger(DurableObject):
    def __init__(self, state: DurableObjectState, env: Any) -> None:
        super().__init__(state, env)
        self.log: list[str] = []
        self.release = anyio.Event()

    async def fetch(self, request: Request) -> Response:
        path = request.url.path
        if path == "/two-reads":
            self.log.append("A start")
            await self.state.storage.get("a")
            self.log.append("A after first read")  # runs before any other event
            await self.state.storage.get("b")
            self.log.append("A after second read")
        elif path == "/wait":
            self.log.append("A waits")
            await self.release.wait()
            self.log.append("A released")
        elif path == "/release":
            self.log.append("B releases")
            self.release.set()
        elif path == "/block":
            self.log.append("A blocks")
            await self.state.block_concurrency_while(self.release.wait)
            self.log.append("A unblocked")
        else:
            self.log.append(f"event {path}")
        return Response("ok")


def instance(system: ObjectSystem, name: str = "x") -> Logger:
    found = system.live_instance(system.namespace("obj").id_from_name(name))
    assert isinstance(found, Logger)
    return found


async def test_no_event_starts_while_a_storage_read_is_in_flight(
    run_objects: RunObjects,
) -> None:
    backend = SlowBackend()
    async with run_objects({"obj": Logger}, backend=cast(StorageBackend, backend)) as system:
        await stub(system).fetch("/warm-up")
        obj = instance(system)
        backend.hold = anyio.Event()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stub(system).fetch, "/two-reads")
                await anyio.wait_all_tasks_blocked()  # A waits inside its first read
                for name in ("B", "C"):
                    tg.start_soon(stub(system).fetch, f"/{name}")
                    await anyio.wait_all_tasks_blocked()
                assert obj.log == ["event /warm-up", "A start"]
                backend.hold.set()
        assert obj.log == [
            "event /warm-up",
            "A start",
            "A after first read",  # the continuation of a read runs before B or C
            "A after second read",
            "event /B",
            "event /C",
        ]


async def test_events_interleave_at_non_storage_awaits_without_deadlock(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"obj": Logger}) as system:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stub(system).fetch, "/wait")
                await anyio.wait_all_tasks_blocked()
                await stub(system).fetch("/release")
        assert instance(system).log == ["A waits", "B releases", "A released"]


async def test_block_concurrency_while_holds_every_other_event_in_order(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"obj": Logger}) as system:
        await stub(system).fetch("/warm-up")
        obj = instance(system)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stub(system).fetch, "/block")
                await anyio.wait_all_tasks_blocked()
                for i in range(5):
                    tg.start_soon(stub(system).fetch, f"/{i}")
                    await anyio.wait_all_tasks_blocked()
                assert obj.log == ["event /warm-up", "A blocks"]
                obj.release.set()
        assert obj.log == [
            "event /warm-up",
            "A blocks",
            "A unblocked",
            *(f"event /{i}" for i in range(5)),
        ]


async def test_a_block_on_one_object_does_not_hold_another(run_objects: RunObjects) -> None:
    async with run_objects({"obj": Logger}) as system:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stub(system, "a").fetch, "/block")
                await anyio.wait_all_tasks_blocked()
                await stub(system, "b").fetch("/other")  # runs while "a" is blocked
                assert instance(system, "b").log == ["event /other"]
                assert instance(system, "a").log == ["A blocks"]
                instance(system, "a").release.set()


async def test_different_ids_run_concurrently(run_objects: RunObjects) -> None:
    # "a" waits for an event that only "b" can set: one global queue would deadlock.
    async with run_objects({"obj": Logger}) as system:
        await stub(system, "a").fetch("/warm-up")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stub(system, "a").fetch, "/wait")
                await anyio.wait_all_tasks_blocked()
                instance(system, "a").release.set()
                await stub(system, "b").fetch("/other")


async def test_a_transaction_keeps_the_gate_closed_throughout(
    run_objects: RunObjects,
) -> None:
    class TxnCounter(DurableObject):
        async def fetch(self, request: Request) -> Response:
            async with self.state.storage.transaction() as txn:
                n = await txn.get("n") or 0
                for _ in range(SLOW):
                    await anyio.lowlevel.checkpoint()
                await txn.put("n", n + 1)
            return Response(str(n))

    async with run_objects({"obj": TxnCounter}) as system:
        assert await _hammer(system, 10) == list(range(10))


async def test_block_concurrency_while_in_the_constructor_runs_before_any_event(
    run_objects: RunObjects,
) -> None:
    class Loaded(DurableObject):
        def __init__(self, state: DurableObjectState, env: Any) -> None:
            super().__init__(state, env)
            self.value: Any = None
            state.block_concurrency_while(self.load())  # not awaited, as on Cloudflare

        async def load(self) -> None:
            await anyio.sleep(0)  # not storage: still nothing else may start
            self.value = await self.state.storage.get("v") or "initial"

        async def fetch(self, request: Request) -> Response:
            return Response(str(self.value))

    async with run_objects({"obj": Loaded}) as system:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(stub(system).fetch, "/")
            assert (await stub(system).fetch("/")).body == b"initial"


async def test_a_failing_block_resets_the_object(run_objects: RunObjects) -> None:
    built: list[int] = []

    class Fragile(DurableObject):
        def __init__(self, state: DurableObjectState, env: Any) -> None:
            super().__init__(state, env)
            built.append(1)
            state.block_concurrency_while(self.load)

        async def load(self) -> None:
            await anyio.sleep(0)
            if len(built) == 1:
                raise RuntimeError("could not load")

        async def fetch(self, request: Request) -> Response:
            return Response(f"instance {len(built)}")

    async with run_objects({"obj": Fragile}) as system:
        with anyio.fail_after(5):
            with pytest.raises(ObjectResetError, match="was reset.*could not load"):
                await stub(system).fetch("/")
            assert (await stub(system).fetch("/")).body == b"instance 2"


async def test_block_concurrency_while_returns_the_result_and_checks_its_argument(
    run_objects: RunObjects,
) -> None:
    class Block(DurableObject):
        async def fetch(self, request: Request) -> Response:
            async def compute() -> int:
                return 42

            value = await self.state.block_concurrency_while(compute())
            with pytest.raises(TypeError, match="takes a coroutine or an async function"):
                self.state.block_concurrency_while(42)  # type: ignore[arg-type]
            return Response(str(value))

    async with run_objects({"obj": Block}) as system:
        assert (await stub(system).fetch("/")).body == b"42"


async def test_a_cancelled_caller_does_not_cancel_the_objects_work(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"obj": Logger}) as system:
        await stub(system).fetch("/warm-up")
        obj = instance(system)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(stub(system).fetch, "/wait")
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
        obj.release.set()
        with anyio.fail_after(5):
            while "A released" not in obj.log:
                await anyio.sleep(0.005)
