from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import RunObjects

from kitpy import DurableObject, HTTPError, Request, Response, WebSocketPair, error, json
from kitpy.http.results import ResultError
from kitpy.objects import DurableObjectState
from kitpy.objects.namespace import build_request
from kitpy.storage import SqliteBackend

pytestmark = pytest.mark.anyio


class Echo(DurableObject):
    built = 0

    def __init__(self, state: DurableObjectState, env: Any) -> None:
        super().__init__(state, env)
        type(self).built += 1
        self.calls = 0
        self.last: Response | None = None

    async def fetch(self, request: Request) -> Response:
        self.calls += 1
        if request.url.path == "/missing":
            error(404, "no such thing")
        if request.url.path == "/websocket":
            client, server = WebSocketPair()
            server.accept()
            self.last = Response(status=101, websocket=client, headers={"x-room": "1"})
            return self.last
        return json(
            {
                "method": request.method,
                "url": str(request.url),
                "body": (await request.body()).decode(),
                "auth": request.headers.get("authorization"),
                "calls": self.calls,
                "env": self.env,
                "id": str(self.state.id),
                "name": self.state.id.name,
            }
        )


async def _json(response: Response) -> Any:
    import json as _json

    assert response.body is not None
    return _json.loads(response.body)


async def test_fetch_builds_the_request_and_returns_the_objects_response(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"echo": Echo}, env={"GREETING": "hi"}) as system:
        echo = system.namespace("echo")
        stub = echo.get(echo.id_from_name("a"))
        got = await _json(await stub.fetch("hello?x=1", method="post", body="data"))
        assert got == {
            "method": "POST",
            "url": "https://fake-host/hello?x=1",
            "body": "data",
            "auth": None,
            "calls": 1,
            "env": {"GREETING": "hi"},
            "id": str(echo.id_from_name("a")),
            "name": "a",
        }


async def test_one_instance_per_id_and_a_separate_one_per_other_id(
    run_objects: RunObjects,
) -> None:
    Echo.built = 0
    async with run_objects({"echo": Echo}) as system:
        echo = system.namespace("echo")
        a1, a2 = echo.get(echo.id_from_name("a")), echo.get(echo.id_from_name("a"))
        b = echo.get(echo.id_from_name("b"))
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(a1.fetch, "/")
                tg.start_soon(a2.fetch, "/")
        assert (await _json(await b.fetch("/")))["calls"] == 1
        assert (await _json(await a1.fetch("/")))["calls"] == 21
        assert Echo.built == 2
        assert system.live_instance(echo.id_from_name("a")) is not None


async def test_a_forwarded_request_gets_the_new_path_and_keeps_the_rest(
    run_objects: RunObjects,
) -> None:
    incoming = Request(
        "PUT",
        "http://localhost:5173/api/rooms/lobby/websocket?token=t",
        {"authorization": "Bearer x"},
        b"payload",
    )
    async with run_objects({"echo": Echo}) as system:
        stub = system.namespace("echo").get_by_name("lobby")
        got = await _json(await stub.fetch("history", incoming))
        assert got["url"] == "http://localhost:5173/history?token=t"
        assert (got["method"], got["body"], got["auth"]) == ("PUT", "payload", "Bearer x")


@pytest.mark.parametrize(
    ("target", "url"),
    [
        pytest.param("websocket", "http://h:8/websocket?q=1", id="relative"),
        pytest.param("/websocket", "http://h:8/websocket?q=1", id="absolute-path"),
        pytest.param("", "http://h:8/?q=1", id="empty-rest"),
        pytest.param("a/b?z=2", "http://h:8/a/b?z=2", id="own-query"),
        pytest.param("a b", "http://h:8/a%20b?q=1", id="quoted"),
        pytest.param("https://other/x", "https://other/x", id="absolute-url"),
    ],
)
def test_url_resolution_against_the_given_request(target: str, url: str) -> None:
    base = Request("GET", "http://h:8/api/rooms/x/websocket?q=1")
    assert str(build_request(target, base).url) == url


def test_without_a_request_paths_resolve_against_fake_host() -> None:
    assert str(build_request("websocket").url) == "https://fake-host/websocket"
    assert str(build_request("/a?b=c").url) == "https://fake-host/a?b=c"


def test_overrides_replace_method_headers_and_body() -> None:
    base = Request("GET", "http://h/x", {"a": "1"}, b"old")
    built = build_request("y", base, method="post", headers={"b": "2"})
    assert built.method == "POST" and built.headers.get("a") is None
    assert built.headers["b"] == "2"
    with pytest.raises(TypeError, match="not both"):
        build_request(base, base)
    with pytest.raises(TypeError, match="takes a path, a URL or a Request"):
        build_request(42)  # type: ignore[arg-type]


@pytest.mark.one_process
async def test_a_101_response_with_its_websocket_comes_back_unchanged(
    run_objects: RunObjects,
) -> None:
    async with run_objects({"echo": Echo}) as system:
        echo = system.namespace("echo")
        response = await echo.get_by_name("r").fetch("/websocket")
        instance = system.live_instance(echo.id_from_name("r"))
        assert isinstance(instance, Echo)
        assert response is instance.last
        assert response.status == 101 and response.headers["x-room"] == "1"
        assert response.websocket is not None and not response.websocket.closed


async def test_errors_of_the_object_reach_the_caller(run_objects: RunObjects) -> None:
    class NoFetch(DurableObject):
        pass

    class Bad(DurableObject):
        async def fetch(self, request: Request) -> Response:
            return 42  # type: ignore[return-value]

    async with run_objects({"echo": Echo, "none": NoFetch, "bad": Bad}) as system:
        with pytest.raises(HTTPError, match="no such thing") as info:
            await system.namespace("echo").get_by_name("x").fetch("/missing")
        assert info.value.status == 404
        with pytest.raises(NotImplementedError, match="NoFetch has no fetch"):
            await system.namespace("none").get_by_name("x").fetch("/")
        with pytest.raises(TypeError, match=r"Bad.fetch\(\) must return a Response or a resp"):
            await system.namespace("bad").get_by_name("x").fetch("/")
        # The object is still usable after its handler raised.
        assert (await system.namespace("echo").get_by_name("x").fetch("/")).status == 200


async def test_a_failing_constructor_fails_the_fetch_and_is_retried_next_time(
    run_objects: RunObjects,
) -> None:
    attempts: list[int] = []

    class Flaky(DurableObject):
        def __init__(self, state: DurableObjectState, env: Any) -> None:
            super().__init__(state, env)
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("first construction fails")

        async def fetch(self, request: Request) -> Response:
            return Response("ok")

    async with run_objects({"flaky": Flaky}) as system:
        stub = system.namespace("flaky").get_by_name("x")
        with pytest.raises(RuntimeError, match="first construction fails"):
            await stub.fetch("/")
        assert (await stub.fetch("/")).body == b"ok"


async def test_using_objects_outside_run_is_a_clear_error() -> None:
    from kitpy.objects import ObjectSystem
    from kitpy.storage import MemoryBackend

    system = ObjectSystem(MemoryBackend(), {"echo": Echo}, None)
    with pytest.raises(RuntimeError, match=r"outside ObjectSystem.run\(\)"):
        await system.namespace("echo").get_by_name("x").fetch("/")


async def test_a_response_leaves_only_after_its_writes_are_durable(
    run_objects: RunObjects, tmp_path: Path
) -> None:
    class Writer(DurableObject):
        async def fetch(self, request: Request) -> Response:
            self.state.storage.put("k", "v")  # not awaited: the output gate holds the answer
            return Response("stored")

    path = tmp_path / "db.sqlite3"
    async with run_objects({"w": Writer}, backend=SqliteBackend(path)) as system:
        stub = system.namespace("w").get_by_name("x")
        assert (await stub.fetch("/")).body == b"stored"
        # Another connection to the same file sees the write already.
        other = SqliteBackend(path)
        try:
            assert await other.storage("w", str(stub.id)).get("k") == "v"
        finally:
            await other.aclose()


async def test_fetch_may_return_a_response_shaped_dict(run_objects: RunObjects) -> None:
    class Shaped(DurableObject):
        async def fetch(self, request: Request) -> Response:
            if request.url.path == "/bad":
                return {"code": 1}  # type: ignore[return-value]
            return {"status": 201, "headers": {"x-a": "1"}, "body": {"ok": True}}  # type: ignore[return-value]

    async with run_objects({"s": Shaped}) as system:
        stub = system.namespace("s").get_by_name("x")
        response = await stub.fetch("/")
        assert response.status == 201 and response.headers["x-a"] == "1"
        assert response.headers["content-type"].startswith("application/json")
        assert await _json(response) == {"ok": True}
        with pytest.raises(
            ResultError, match=r"Shaped.fetch\(\): returned a dict with unknown key 'code'"
        ):
            await stub.fetch("/bad")
