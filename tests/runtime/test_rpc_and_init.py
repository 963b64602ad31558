"""RPC from endpoints, auto-responses and hooks.py ``init()`` under TestClient."""

from __future__ import annotations

import logging

import pytest

from kitpy.errors import InitError
from kitpy.testing import TestClient

from .conftest import ClientFactory, MakeSite

COUNTER_SITE = {
    "kitpy.toml": """
        [objects]
        counters = "objects.counter:Counter"
    """,
    "objects/__init__.py": "",
    "objects/counter.py": """
        from kitpy import DurableObject, Response, WebSocketPair, error

        class Counter(DurableObject):
            def __init__(self, state, env):
                super().__init__(state, env)
                self.messages = 0
                state.set_websocket_auto_response("ping", "pong")

            async def increment(self, by=1):
                n = (await self.state.storage.get("n") or 0) + by
                self.state.storage.put("n", n)
                return n

            def messages_seen(self):
                return self.messages

            async def missing(self):
                error(404, "no such counter")

            async def broken(self):
                raise ZeroDivisionError("counted to infinity")

            async def weird(self):
                class Odd(Exception):
                    pass
                raise Odd("strange")

            async def fetch(self, request):
                if request.headers.get("upgrade", "").lower() == "websocket":
                    client, server = WebSocketPair()
                    self.state.accept_websocket(server)
                    return Response(status=101, websocket=client)
                return {"status": 202, "body": {"n": await self.state.storage.get("n")}}

            async def websocket_message(self, ws, message):
                self.messages += 1
                await ws.send("heard " + message)
    """,
    "routes/counters/[name]/[op].py": """
        async def post(event):
            stub = event.platform.env.counters.get_by_name(event.params["name"])
            op = event.params["op"]
            if op == "increment":
                return {"body": {"n": await stub.increment(by=int(event.url.query.get("by", 1)))}}
            if op == "messages":
                return {"body": {"messages": await stub.messages_seen()}}
            if op == "fetch":
                return await stub.fetch("/", event.request)
            return {"body": {"result": await getattr(stub, op)()}}
    """,
    "routes/counters/[name]/websocket.py": """
        async def get(event):
            stub = event.platform.env.counters.get_by_name(event.params["name"])
            return await stub.fetch("/websocket", event.request)
    """,
}


def test_an_endpoint_calls_object_methods(client_for: ClientFactory) -> None:
    client = client_for(COUNTER_SITE)
    assert client.post("/counters/a/increment?by=2").json() == {"n": 2}
    assert client.post("/counters/a/increment?by=3").json() == {"n": 5}
    assert client.post("/counters/b/increment").json() == {"n": 1}
    shaped = client.post("/counters/a/fetch")
    assert shaped.status_code == 202 and shaped.json() == {"n": 5}


def test_errors_from_object_methods_become_responses(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(COUNTER_SITE)
    missing = client.post("/counters/a/missing", headers={"accept": "application/json"})
    assert missing.status_code == 404 and missing.json() == {"message": "no such counter"}
    with caplog.at_level(logging.ERROR):
        assert client.post("/counters/a/broken").status_code == 500
        assert client.post("/counters/a/weird").status_code == 500
    text = caplog.text
    assert "ZeroDivisionError: counted to infinity" in text  # the object's traceback
    assert "DurableObjectError" in text and "Odd: strange" in text  # what the endpoint got
    assert "no such counter" not in text  # an HTTPError is an answer, not a failure
    # An unknown method is an AttributeError in the endpoint: a 500, named in the log.
    assert client.post("/counters/a/nope").status_code == 500
    assert "Counter has no method 'nope'" in caplog.text


def test_pings_are_answered_without_an_event(client_for: ClientFactory) -> None:
    client = client_for(COUNTER_SITE)
    with client.websocket("/counters/room/websocket") as ws:
        for _ in range(5):
            ws.send_text("ping")
            assert ws.receive_text() == "pong"
        assert client.post("/counters/room/messages").json() == {"messages": 0}
        ws.send_text("hello")
        assert ws.receive_text() == "heard hello"
    assert client.post("/counters/room/messages").json() == {"messages": 1}


INIT_SITE = {
    "kitpy.toml": """
        [objects]
        counters = "objects.counter:Counter"
    """,
    "objects/__init__.py": "",
    "objects/counter.py": COUNTER_SITE["objects/counter.py"],
    "shared.py": "CALLS = []\n",
    "hooks.py": """
        from shared import CALLS

        async def init(env):
            CALLS.append("init")
            # Objects are up: init may prepare them before the first request.
            await env.counters.get_by_name("seeded").increment(by=41)
    """,
    "routes/calls.py": """
        from shared import CALLS

        async def get(event):
            n = await event.platform.env.counters.get_by_name("seeded").increment()
            return {"body": {"calls": CALLS, "n": n}}
    """,
}


def test_init_runs_once_before_the_first_request(client_for: ClientFactory) -> None:
    client = client_for(INIT_SITE)
    assert client.get("/calls").json() == {"calls": ["init"], "n": 42}
    assert client.get("/calls").json()["calls"] == ["init"]


def test_a_sync_init_without_arguments(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "shared.py": "STARTED = []\n",
            "hooks.py": """
                from shared import STARTED

                def init():
                    STARTED.append(True)
            """,
            "routes/index.py": """
                from shared import STARTED

                def get(event):
                    return {"body": {"started": STARTED}}
            """,
        }
    )
    assert client.get("/").json() == {"started": [True]}


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_a_failing_init_fails_the_start_with_its_cause(make_site: MakeSite, kind: str) -> None:
    site = make_site(
        {
            "hooks.py": f"""
                {kind} init():
                    raise RuntimeError("cannot reach the database")
            """,
            "routes/index.py": "def get(event):\n    return {'body': 'never'}\n",
        }
    )
    with pytest.raises(
        InitError, match=r"hooks.py: init\(\) raised RuntimeError: cannot reach"
    ) as info:
        TestClient(site)
    assert isinstance(info.value.__cause__, RuntimeError)
