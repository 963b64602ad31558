"""WebSocket auto-response: a matching message is answered without an event."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import pytest
from conftest import RunObjects

from kitpy import DurableObject, Request, Response, WebSocket, WebSocketPair
from kitpy.objects import DurableObjectState, ObjectSystem

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Heartbeat(DurableObject):
    events = 0

    def __init__(self, state: DurableObjectState, env: Any) -> None:
        super().__init__(state, env)
        state.set_websocket_auto_response("ping", "pong")
        self.hold: anyio.Event | None = None

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.state.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        type(self).events += 1
        await ws.send(f"event: {message!s}")

    def block(self) -> None:
        """Close the input gate until the test lets go: no event can start meanwhile."""
        hold = self.hold = anyio.Event()
        self.state.block_concurrency_while(hold.wait)

    def timestamp(self) -> str | None:
        ws = self.state.get_websockets()[0]
        at = self.state.get_websocket_auto_response_timestamp(ws)
        return None if at is None else at.isoformat()


async def connect(system: ObjectSystem) -> WebSocket:
    response = await system.namespace("hb").get_by_name("a").fetch("/")
    assert response.websocket is not None
    return response.websocket


async def test_pings_are_answered_without_an_event(run_objects: RunObjects) -> None:
    Heartbeat.events = 0
    async with run_objects({"hb": Heartbeat}) as system:
        ws = await connect(system)
        stub = system.namespace("hb").get_by_name("a")
        assert await stub.timestamp() is None
        with anyio.fail_after(5):
            for _ in range(20):
                await ws.send("ping")
                assert await ws.receive() == "pong"
        assert Heartbeat.events == 0
        stamp = await stub.timestamp()
        assert stamp is not None
        at = datetime.datetime.fromisoformat(stamp)
        assert abs((datetime.datetime.now(datetime.UTC) - at).total_seconds()) < 3600
        # Anything else is an ordinary event: bytes, other text, a near miss.
        with anyio.fail_after(5):
            for message in [b"ping", "ping ", "hello"]:
                await ws.send(message)
                assert (await ws.receive()).startswith("event: ")
        assert Heartbeat.events == 3


async def test_pings_are_answered_while_the_input_gate_is_closed(
    run_objects: RunObjects,
) -> None:
    Heartbeat.events = 0
    async with run_objects({"hb": Heartbeat}) as system:
        ws = await connect(system)
        await system.namespace("hb").get_by_name("a").block()
        instance = system.live_instance(system.namespace("hb").id_from_name("a"))
        assert isinstance(instance, Heartbeat) and instance.hold is not None
        with anyio.fail_after(5):
            await ws.send("ping")
            assert await ws.receive() == "pong"  # no event could have run
            await ws.send("hello")  # waits for the gate...
            await ws.send("ping")  # ... and so does the ping queued behind it: order kept
            for _ in range(10):
                await anyio.sleep(0)
            assert Heartbeat.events == 0
            instance.hold.set()
            assert await ws.receive() == "event: hello"
            assert await ws.receive() == "pong"
        assert Heartbeat.events == 1


async def test_the_auto_response_can_be_changed_and_turned_off(run_objects: RunObjects) -> None:
    Heartbeat.events = 0
    async with run_objects({"hb": Heartbeat}) as system:
        ws = await connect(system)
        instance = system.live_instance(system.namespace("hb").id_from_name("a"))
        assert isinstance(instance, Heartbeat)
        instance.state.set_websocket_auto_response("hb", "ok")
        assert instance.state.get_websocket_auto_response() == ("hb", "ok")
        with anyio.fail_after(5):
            await ws.send("hb")
            assert await ws.receive() == "ok"
            instance.state.set_websocket_auto_response(None)
            await ws.send("hb")
            assert await ws.receive() == "event: hb"


def test_bad_arguments_are_clear_errors() -> None:
    from kitpy.objects.gate import InputGate
    from kitpy.objects.ids import id_from_name
    from kitpy.storage import MemoryBackend

    state = DurableObjectState(
        id_from_name("x", "y"),
        MemoryBackend().storage("x", "y"),
        InputGate("x"),
        None,  # type: ignore[arg-type]
    )
    with pytest.raises(TypeError, match="takes str response, got NoneType"):
        state.set_websocket_auto_response("ping")
    with pytest.raises(TypeError, match="takes str request, got bytes"):
        state.set_websocket_auto_response(b"ping", "pong")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 2048"):
        state.set_websocket_auto_response("p" * 2049, "pong")
