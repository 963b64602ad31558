"""Durable object bindings: env namespaces, fetch through an endpoint, binding errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitpy.errors import ConfigError, SiteError
from kitpy.runtime.site import load_site
from kitpy.testing import TestClient

from .conftest import ClientFactory, MakeSite

ROOM = """
from kitpy import DurableObject, Response, WebSocketPair, json

class Room(DurableObject):
    async def fetch(self, request):
        if request.headers.get("upgrade") == "websocket":
            client, server = WebSocketPair()
            self.state.accept_websocket(server, tags=["chat"])
            return Response(status=101, websocket=client)
        n = (await self.state.storage.get("n") or 0) + 1
        await self.state.storage.put("n", n)
        return json({"n": n, "path": request.url.path, "greeting": self.env["GREETING"]})

    async def websocket_message(self, ws, message):
        for peer in self.state.get_websockets("chat"):
            await peer.send(message)
"""

ROUTE = """
async def get(event):
    rooms = event.platform.env.rooms
    room = rooms.get(rooms.id_from_name(event.params["id"]))
    return await room.fetch("/" + event.params["rest"], event.request)
"""

SITE = {
    "kitpy.toml": '[objects]\nrooms = "objects.room:Room"\n[env]\nGREETING = "hi"\n',
    "objects/room.py": ROOM,
    "routes/api/rooms/[id]/[...rest].py": ROUTE,
}


def test_fetch_through_an_endpoint(client_for: ClientFactory) -> None:
    client = client_for(SITE)
    assert client.get("/api/rooms/a/x/y").json() == {"n": 1, "path": "/x/y", "greeting": "hi"}
    assert client.get("/api/rooms/a/x").json()["n"] == 2
    assert client.get("/api/rooms/b/x").json()["n"] == 1


def test_101_from_an_object_passes_through(client_for: ClientFactory) -> None:
    client = client_for(SITE)
    with (
        client.websocket("/api/rooms/lobby/ws") as one,
        client.websocket("/api/rooms/lobby/ws") as two,
    ):
        one.send_text("hello all")
        assert one.receive_text() == "hello all"
        assert two.receive_text() == "hello all"


def test_storage_lives_in_the_state_dir(make_site: MakeSite, tmp_path: Path) -> None:
    site = make_site(SITE)
    state = tmp_path / "state"
    with TestClient(site, state_dir=state) as client:
        assert client.get("/api/rooms/a/x").json()["n"] == 1
    assert (state / "storage.sqlite3").exists()
    with TestClient(site, state_dir=state) as client:
        assert client.get("/api/rooms/a/x").json()["n"] == 2
    with TestClient(site) as client:  # a fresh temp folder
        assert client.get("/api/rooms/a/x").json()["n"] == 1
    assert not (site / ".kitpy").exists()


def test_env_namespace_by_item_and_attribute(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **SITE,
            "routes/check.py": """
            async def get(event):
                env = event.platform.env
                return {"body": {"same": env.rooms is env["rooms"], "has": "rooms" in env}}
            """,
        }
    )
    assert client.get("/check").json() == {"same": True, "has": True}


@pytest.mark.parametrize(
    ("binding", "files", "match"),
    [
        pytest.param(
            "objects.nope:Room",
            {},
            r"^kitpy\.toml:2: \[objects\] rooms = \"objects.nope:Room\": no module 'objects.nope'",
            id="missing-module",
        ),
        pytest.param(
            "objects.room:Nope",
            {"objects/room.py": ROOM},
            r"^kitpy\.toml:2: .*module 'objects.room' has no class 'Nope'",
            id="missing-class",
        ),
        pytest.param(
            "objects.room:Plain",
            {"objects/room.py": "class Plain:\n    pass\n"},
            r"^kitpy\.toml:2: .*Plain is not a subclass of kitpy.DurableObject",
            id="not-a-durable-object",
        ),
        pytest.param(
            "objects.room:helper",
            {"objects/room.py": "def helper():\n    pass\n"},
            r"helper is not a subclass of kitpy.DurableObject",
            id="a-function",
        ),
    ],
)
def test_bad_bindings(make_site: MakeSite, binding: str, files: dict[str, str], match: str) -> None:
    site = make_site({"kitpy.toml": f'# objects\n[objects]\nrooms = "{binding}"\n', **files})
    with pytest.raises(ConfigError, match=match.replace("toml:2", "toml:3")):
        load_site(site)


def test_object_module_with_syntax_error_names_it(make_site: MakeSite) -> None:
    site = make_site(
        {"kitpy.toml": '[objects]\nrooms = "objects.room:Room"\n', "objects/room.py": "class (:\n"}
    )
    with pytest.raises(SiteError, match=r"^objects/room\.py:1: syntax error"):
        load_site(site)


def test_an_injected_objects_factory_builds_the_object_system(
    make_site: MakeSite, tmp_path: Path
) -> None:
    """SiteApp(objects=...) is the seam a cluster node plugs into: it replaces the
    embedded SQLite store, and the objects still answer through it."""
    import json as jsonlib
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from typing import Any

    import anyio

    from kitpy.http.request import Request
    from kitpy.objects import ObjectSystem
    from kitpy.runtime.app import load_app
    from kitpy.runtime.site import Site
    from kitpy.storage import MemoryBackend

    built: list[str] = []

    @asynccontextmanager
    async def in_memory(site: Site, env: Any, state_dir: Path) -> AsyncIterator[ObjectSystem]:
        built.append(",".join(site.bindings))
        system = ObjectSystem(MemoryBackend(), site.bindings, env)
        async with system.run():
            yield system

    state = tmp_path / "state"
    app = load_app(make_site(SITE), state_dir=state, objects=in_memory)

    async def go() -> list[int]:
        counts = []
        async with app.lifespan():
            for _ in range(2):
                request = Request("GET", "http://127.0.0.1/api/rooms/a/x", {"host": "127.0.0.1"})
                response = await app(request)
                counts.append(jsonlib.loads(response.body or b"")["n"])
        return counts

    try:
        assert anyio.run(go) == [1, 2]
    finally:
        app.close()
    assert built == ["rooms"]
    assert not (state / "storage.sqlite3").exists()
