"""One live instance per id; idle eviction; rebuild with storage intact."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from conftest import RunObjects, Until

from kitpy import DurableObject, Request, Response, WebSocketPair
from kitpy.objects import DurableObjectState, ObjectSystem

pytestmark = pytest.mark.anyio

IDLE = 0.05


class Kept(DurableObject):
    built = 0

    def __init__(self, state: DurableObjectState, env: Any) -> None:
        super().__init__(state, env)
        type(self).built += 1
        self.release = anyio.Event()

    async def fetch(self, request: Request) -> Response:
        if request.url.path == "/socket":
            client, server = WebSocketPair()
            self.state.accept_websocket(server)
            return Response(status=101, websocket=client)
        if request.url.path == "/background":
            self.state.wait_until(self.release.wait())
            return Response("started")
        count = await self.state.storage.get("count") or 0
        await self.state.storage.put("count", count + 1)
        return Response(str(count + 1))


def object_id(system: ObjectSystem) -> Any:
    return system.namespace("kept").id_from_name("x")


async def test_an_idle_object_is_evicted_and_rebuilt_with_its_storage(
    run_objects: RunObjects, until: Until
) -> None:
    Kept.built = 0
    async with run_objects({"kept": Kept}, idle_timeout=IDLE) as system:
        stub = system.namespace("kept").get(object_id(system))
        assert (await stub.fetch("/")).body == b"1"
        first = system.live_instance(object_id(system))
        assert first is not None
        await until(lambda: system.live_instance(object_id(system)) is None)
        assert (await stub.fetch("/")).body == b"2"
        assert Kept.built == 2
        assert system.live_instance(object_id(system)) is not first


async def test_an_object_with_an_open_socket_stays_until_the_socket_closes(
    run_objects: RunObjects, until: Until
) -> None:
    async with run_objects({"kept": Kept}, idle_timeout=IDLE) as system:
        stub = system.namespace("kept").get(object_id(system))
        ws = (await stub.fetch("/socket")).websocket
        assert ws is not None
        await anyio.sleep(IDLE * 4)  # several sweeps: it must still be there
        assert system.live_instance(object_id(system)) is not None
        await ws.close()
        await until(lambda: system.live_instance(object_id(system)) is None)


async def test_an_object_stays_while_its_wait_until_work_runs(
    run_objects: RunObjects, until: Until
) -> None:
    async with run_objects({"kept": Kept}, idle_timeout=IDLE) as system:
        stub = system.namespace("kept").get(object_id(system))
        await stub.fetch("/background")
        instance = system.live_instance(object_id(system))
        assert isinstance(instance, Kept)
        await anyio.sleep(IDLE * 4)
        assert system.live_instance(object_id(system)) is instance
        instance.release.set()
        await until(lambda: system.live_instance(object_id(system)) is None)


async def test_run_refuses_to_be_entered_twice(run_objects: RunObjects) -> None:
    async with run_objects({"kept": Kept}) as system:
        with pytest.raises(RuntimeError, match="already running"):
            async with system.run():
                pass


async def test_an_error_inside_run_reaches_the_caller_unwrapped(run_objects: RunObjects) -> None:
    with pytest.raises(LookupError, match="boom"):
        async with run_objects({"kept": Kept}):
            raise LookupError("boom")
