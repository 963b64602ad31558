"""Method lookup: handlers, HEAD from get, 405 with Allow, OPTIONS, plain defs."""

from __future__ import annotations

import threading

import pytest

from .conftest import ClientFactory

HANDLERS = """
import threading

import pytest

async def get(event):
    return {"body": "got"}

def post(event):
    return {"status": 201, "body": threading.current_thread().name}

async def delete(event):
    return {"status": 204}
"""


def test_get_and_async(client_for: ClientFactory) -> None:
    client = client_for({"routes/thing.py": HANDLERS})
    response = client.get("/thing")
    assert (response.status_code, response.text) == (200, "got")


def test_plain_def_runs_in_a_worker_thread(client_for: ClientFactory) -> None:
    client = client_for({"routes/thing.py": HANDLERS})
    response = client.post("/thing")
    assert response.status_code == 201
    assert response.text != threading.current_thread().name
    assert response.text != "MainThread"


def test_head_is_get_without_body_with_length(client_for: ClientFactory) -> None:
    client = client_for({"routes/thing.py": HANDLERS})
    response = client.head("/thing")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "3"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_head_of_a_streamed_body_has_no_length(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/s.py": """
            from kitpy import Response

            async def chunks():
                yield b"a"
                yield b"b"

            async def get(event):
                return Response(chunks())
            """
        }
    )
    assert client.get("/s").content == b"ab"
    response = client.head("/s")
    assert response.content == b"" and "content-length" not in response.headers


def test_405_lists_allowed_methods(client_for: ClientFactory) -> None:
    client = client_for({"routes/thing.py": HANDLERS})
    response = client.put("/thing")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST, DELETE, OPTIONS"
    assert response.text == "Method Not Allowed"


def test_405_as_json_when_asked(client_for: ClientFactory) -> None:
    client = client_for({"routes/thing.py": HANDLERS})
    response = client.patch("/thing", headers={"accept": "application/json"})
    assert response.status_code == 405
    assert response.json() == {"message": "Method Not Allowed"}
    assert response.headers["allow"] == "GET, HEAD, POST, DELETE, OPTIONS"


def test_options_without_handler_is_204_with_allow(client_for: ClientFactory) -> None:
    client = client_for({"routes/thing.py": HANDLERS})
    response = client.options("/thing")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, POST, DELETE, OPTIONS"
    assert response.content == b""


def test_options_handler_wins(client_for: ClientFactory) -> None:
    client = client_for(
        {"routes/x.py": "async def options(event):\n    return {'headers': {'x-cors': '1'}}\n"}
    )
    response = client.options("/x")
    assert response.status_code == 200 and response.headers["x-cors"] == "1"


def test_no_get_means_no_head(client_for: ClientFactory) -> None:
    client = client_for({"routes/x.py": "async def post(event):\n    return {}\n"})
    response = client.head("/x")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"


def test_fallback_answers_other_methods(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/x.py": """
            async def get(event):
                return {"body": "get"}

            async def fallback(event):
                return {"body": "fallback " + event.request.method}
            """
        }
    )
    assert client.get("/x").text == "get"
    assert client.request("PROPFIND", "/x").text == "fallback PROPFIND"
    assert client.delete("/x").text == "fallback DELETE"
    head = client.head("/x")
    assert head.content == b"" and head.headers["content-length"] == "3"


def test_unknown_path_is_404(client_for: ClientFactory) -> None:
    client = client_for({"routes/index.py": "async def get(event):\n    return {}\n"})
    response = client.get("/nope")
    assert (response.status_code, response.text) == (404, "Not Found")
    assert client.get("/nope", headers={"accept": "application/json"}).json() == {
        "message": "Not Found"
    }


def test_handler_timeout_answers_503(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "kitpy.toml": "[server]\nhandler_timeout = 0.05\n",
            "routes/slow.py": """
            import anyio

            async def get(event):
                await anyio.sleep_forever()
            """,
        }
    )
    assert client.get("/slow").status_code == 503


def test_sync_handler_can_use_wait_until(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/x.py": """
            import anyio

            DONE = []

            async def work():
                DONE.append(1)

            def post(event):
                event.platform.wait_until(work())
                return {"status": 202}

            async def get(event):
                for _ in range(100):
                    if DONE:
                        break
                    await anyio.sleep(0.01)
                return {"body": str(len(DONE))}
            """
        }
    )
    assert client.post("/x").status_code == 202
    assert client.get("/x").text == "1"


def test_plain_def_reads_the_body_through_from_thread(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/x.py": """
            import anyio.from_thread

            def post(event):
                data = anyio.from_thread.run(event.request.json)
                return {"body": {"got": data}}
            """
        }
    )
    assert client.post("/x", json={"a": 1}).json() == {"got": {"a": 1}}


def test_on_loop_runs_a_plain_def_on_the_event_loop(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/x.py": """
            import asyncio
            import threading

            from kitpy import on_loop

            @on_loop
            def get(event):
                asyncio.get_running_loop()  # raises RuntimeError off the loop
                return {"body": threading.current_thread().name}

            def post(event):
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    return {"body": "thread"}
                return {"body": "loop"}
            """
        }
    )
    on_loop_thread = client.get("/x")
    assert on_loop_thread.status_code == 200
    assert client.post("/x").text == "thread"  # unmarked: still a worker thread


def test_on_loop_refuses_an_async_def() -> None:
    from kitpy import on_loop

    async def get(event: object) -> dict[str, str]:
        return {}

    with pytest.raises(TypeError, match="plain def"):
        on_loop(get)
