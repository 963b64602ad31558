"""RPC on stubs: the wire encoding, and calls as events of the object."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from conftest import RunObjects

from kitpy import DurableObject, DurableObjectError, HTTPError, Request, Response, error
from kitpy.objects import rpc
from kitpy.storage import SqliteBackend

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- the encoding, as pure functions over bytes ----------------------------------------

ROUND_TRIPS = [
    None,
    True,
    0,
    -(2**70),
    1.5,
    "",
    "é\u2603\x00",
    b"\x00\xffraw",
    [],
    [1, [2, [b"x"]]],
    {"a": {"b": [None, b""]}},
    {"$bytes": "aGk="},  # a user dict that looks like the bytes tag
    {"$object": {"$bytes": "x"}},  # ... and one that looks like the wrapper
    {"$x": 1},
    {"$bytes": "a", "other": 2},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_values_round_trip_unchanged(value: Any) -> None:
    payload = rpc.encode_call("m", [value], {"k": value})
    assert isinstance(payload, bytes)
    assert rpc.decode_call(payload) == ("m", [value], {"k": value})
    assert rpc.decode_outcome(rpc.encode_result(value)) == value


def test_tuples_cross_as_lists_and_bytes_likes_as_bytes() -> None:
    payload = rpc.encode_call("m", [(1, 2), bytearray(b"ab"), memoryview(b"cd")], {})
    assert rpc.decode_call(payload)[1] == [[1, 2], b"ab", b"cd"]


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({1, 2}, "argument 'by' is a set"),
        (Point(1), "argument 'by' is a Point"),
        (datetime.datetime(2026, 1, 1), "argument 'by' is a datetime"),
        (math.nan, "argument 'by' is a float (nan); NaN and Infinity"),
        ({"a": [1, {2}]}, "argument 'by'['a'][1] is a set"),
        ({1: "x"}, "argument 'by'[1] is an int (1); dict keys must be str"),
    ],
)
def test_a_value_that_cannot_cross_is_a_type_error_naming_method_and_argument(
    value: Any, shown: str
) -> None:
    with pytest.raises(TypeError, match=r"^Counter\.increment\(\): ") as info:
        rpc.encode_call("increment", [], {"by": value}, Counter)
    assert shown in str(info.value)


def test_a_positional_argument_is_named_by_position_and_parameter() -> None:
    with pytest.raises(TypeError, match=r"argument 1 \('by'\) is a set"):
        rpc.encode_call("increment", [{1}], {}, Counter)
    with pytest.raises(TypeError, match=r"Thing\.result\(\): result\[0\] is a set"):
        rpc.encode_result([{1}], "Thing.result()")


def test_errors_cross_as_the_same_type_and_message() -> None:
    with pytest.raises(HTTPError) as http:
        rpc.decode_outcome(rpc.encode_error(HTTPError(404, "no room", {"x-a": "1"})))
    assert (http.value.status, http.value.message, http.value.headers) == (
        404,
        "no room",
        {"x-a": "1"},
    )
    with pytest.raises(KeyError) as key:
        rpc.decode_outcome(rpc.encode_error(KeyError("k")))
    assert str(key.value) == "'k'"
    with pytest.raises(ValueError, match="^bad value$"):
        rpc.decode_outcome(rpc.encode_error(ValueError("bad value")))

    class LimitReached(Exception):
        pass

    with pytest.raises(DurableObjectError, match="LimitReached: too many") as other:
        rpc.decode_outcome(rpc.encode_error(LimitReached("too many")))
    assert other.value.type_name.endswith("LimitReached")
    assert other.value.remote_message == "too many"
    # A built-in subclass defined by the user is not built in.
    with pytest.raises(DurableObjectError, match="Mine: x"):

        class Mine(ValueError):
            pass

        rpc.decode_outcome(rpc.encode_error(Mine("x")))


@pytest.mark.parametrize(
    "payload", [b"", b"\xff", b"[]", b'{"v": 2, "m": "x", "a": [], "k": {}}', b'{"v":1,"m":1}']
)
def test_a_malformed_call_is_a_call_error(payload: bytes) -> None:
    with pytest.raises(rpc.CallError):
        rpc.decode_call(payload)
    with pytest.raises(rpc.CallError):
        rpc.decode_outcome(payload)


def test_an_unknown_tag_is_a_call_error() -> None:
    with pytest.raises(rpc.CallError, match="unknown tag"):
        rpc.decode_call(b'{"v":1,"m":"x","a":[{"$nope":1}],"k":{}}')


# -- calls through stubs ---------------------------------------------------------------


class Counter(DurableObject):
    calls = 0

    async def increment(self, by: int = 1) -> int:
        type(self).calls += 1
        n = await self.state.storage.get("n") or 0
        self.state.storage.put("n", n + by)
        return int(n + by)

    def peek_sync(self) -> str:
        return "sync"

    def stored_sync(self) -> Any:
        return self.state.storage.get("n")  # an awaitable, awaited for the caller

    async def mutate(self, items: list[Any]) -> list[Any]:
        items.append("object")
        return items

    async def echo(self, *args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    async def fail(self, kind: str) -> None:
        if kind == "http":
            error(404, "no such counter")
        if kind == "key":
            raise KeyError("missing")
        raise LookupFailed("custom failure")

    async def bad_result(self) -> Any:
        return {"when": datetime.date(2026, 1, 1)}

    async def fetch(self, request: Request) -> Response:
        return Response("fetched")

    async def websocket_message(self, ws: Any, message: Any) -> None: ...

    async def _secret(self) -> str:
        return "secret"

    limit = 3  # a class attribute, not a method


class LookupFailed(Exception):
    pass


async def test_a_call_runs_the_method_and_returns_its_result(run_objects: RunObjects) -> None:
    async with run_objects({"counters": Counter}) as system:
        stub = system.namespace("counters").get_by_name("a")
        assert await stub.increment(by=2) == 2
        assert await stub.increment(3) == 5
        assert await stub.peek_sync() == "sync"
        assert await stub.stored_sync() == 5
        assert await stub.echo(1, b"\x00", x={"$bytes": "y"}) == [
            [1, b"\x00"],
            {"x": {"$bytes": "y"}},
        ]
        other = system.namespace("counters").get_by_name("b")
        assert await other.increment() == 1


async def test_the_object_gets_copies_not_the_callers_values(run_objects: RunObjects) -> None:
    async with run_objects({"counters": Counter}) as system:
        mine = ["caller"]
        back = await system.namespace("counters").get_by_name("a").mutate(mine)
        assert mine == ["caller"]
        assert back == ["caller", "object"] and back is not mine


async def test_names_that_are_not_rpc_methods_are_attribute_errors(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"counters": Counter}) as system:
        stub = system.namespace("counters").get_by_name("a")
        for name in ["nope", "_secret", "__secret", "alarm", "websocket_message", "limit"]:
            with pytest.raises(AttributeError):
                getattr(stub, name)
        with pytest.raises(AttributeError, match="is private"):
            await stub._secret()
        assert (await stub.fetch("/")).body == b"fetched"  # stub.fetch stays HTTP
        # A payload from elsewhere (another node) is checked by the object side too.
        outcome = await system.call(stub.id, rpc.encode_call("fetch", [], {}))
        with pytest.raises(AttributeError, match="event handler"):
            rpc.decode_outcome(outcome)


async def test_a_value_that_cannot_cross_fails_at_the_call_without_an_event(
    run_objects: RunObjects,
) -> None:
    Counter.calls = 0
    async with run_objects({"counters": Counter}) as system:
        stub = system.namespace("counters").get_by_name("a")
        with pytest.raises(TypeError, match=r"Counter\.increment\(\): argument 'by' is a set"):
            stub.increment(by={1})
        assert Counter.calls == 0
        with pytest.raises(TypeError, match=r"Counter\.bad_result\(\): result\['when'\]"):
            await stub.bad_result()


async def test_errors_reach_the_caller_and_the_log_has_the_traceback(
    run_objects: RunObjects, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_objects({"counters": Counter}) as system:
        stub = system.namespace("counters").get_by_name("a")
        with pytest.raises(HTTPError, match="no such counter") as http:
            await stub.fail("http")
        assert http.value.status == 404
        with pytest.raises(KeyError, match="missing"):
            await stub.fail("key")
        with caplog.at_level(logging.ERROR, logger="kitpy.objects"):
            with pytest.raises(DurableObjectError, match="LookupFailed: custom failure"):
                await stub.fail("other")
        logged = [r for r in caplog.records if r.exc_info]
        assert logged and "Counter.fail()" in logged[-1].getMessage()
        assert logged[-1].exc_info is not None and logged[-1].exc_info[0] is LookupFailed
        assert await stub.increment() == 1  # the object still works


async def test_concurrent_calls_are_serialised_around_storage(run_objects: RunObjects) -> None:
    async with run_objects({"counters": Counter}) as system:
        stub = system.namespace("counters").get_by_name("a")
        results: list[int] = []

        async def one() -> None:
            results.append(await stub.increment())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
        assert sorted(results) == list(range(1, 41))


async def test_calls_and_fetches_share_one_input_gate(run_objects: RunObjects) -> None:
    order: list[str] = []

    class Gated(DurableObject):
        async def fetch(self, request: Request) -> Response:
            order.append("fetch start")
            await self.state.block_concurrency_while(self._slow)
            order.append("fetch end")
            return Response("ok")

        async def _slow(self) -> None:
            for _ in range(20):
                await anyio.lowlevel.checkpoint()

        async def ping(self) -> str:
            order.append("ping")
            return "pong"

    async with run_objects({"g": Gated}) as system:
        stub = system.namespace("g").get_by_name("a")
        async with anyio.create_task_group() as tg:
            tg.start_soon(stub.fetch, "/")
            await anyio.lowlevel.checkpoint()
            tg.start_soon(stub.ping)
        assert order == ["fetch start", "fetch end", "ping"]


async def test_a_result_leaves_only_after_its_writes_are_durable(
    run_objects: RunObjects, tmp_path: Path
) -> None:
    class Writer(DurableObject):
        def store(self, value: str) -> str:
            self.state.storage.put("k", value)  # not awaited: the output gate holds the result
            return "stored"

    path = tmp_path / "db.sqlite3"
    async with run_objects({"w": Writer}, backend=SqliteBackend(path)) as system:
        stub = system.namespace("w").get_by_name("x")
        assert await stub.store("v") == "stored"
        other = SqliteBackend(path)
        try:
            assert await other.storage("w", str(stub.id)).get("k") == "v"
        finally:
            await other.aclose()


async def test_object_system_call_takes_and_returns_bytes(run_objects: RunObjects) -> None:
    async with run_objects({"counters": Counter}) as system:
        object_id = system.namespace("counters").id_from_name("a")
        outcome = await system.call(object_id, rpc.encode_call("increment", [], {"by": 4}))
        assert isinstance(outcome, bytes) and rpc.decode_outcome(outcome) == 4
        with pytest.raises(DurableObjectError, match="CallError: not an RPC payload"):
            rpc.decode_outcome(await system.call(object_id, b"not json"))
