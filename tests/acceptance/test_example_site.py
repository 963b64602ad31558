"""example_site/ speaks the workers-chat-demo wire protocol (docs/tutorial.md, "The full chat")."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .kit import Server

EXAMPLE = Path(__file__).resolve().parents[2] / "example_site"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    site = tmp_path / "example_site"
    shutil.copytree(
        EXAMPLE,
        site,
        ignore=shutil.ignore_patterns(".kitpy", "__pycache__", "tests", ".pytest_cache"),
    )
    srv = Server(site)
    try:
        yield srv.start()
    finally:
        srv.kill() if srv.process is None else srv.stop()


@contextmanager
def join(server: Server, room: str, name: str) -> Iterator[tuple[ClientConnection, list[Any]]]:
    """Connect, send the name, collect everything up to {"ready": true}."""
    with connect(
        f"{server.ws_url}/api/room/{room}/websocket", open_timeout=5, close_timeout=5
    ) as ws:
        ws.send(json.dumps({"name": name}))
        seen: list[Any] = []
        for _ in range(200):
            message = json.loads(ws.recv(timeout=5))
            if message == {"ready": True}:
                break
            seen.append(message)
        else:
            raise AssertionError(f"no ready: {seen}")
        yield ws, seen


def next_json(ws: ClientConnection) -> Any:
    return json.loads(ws.recv(timeout=5))


def test_example_http_surface(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        created = client.post("/api/room")
        assert created.status_code == 200
        assert created.headers["content-type"].startswith("text/plain")
        assert re.fullmatch(r"[0-9a-f]{64}", created.text), created.text
        assert client.get("/api/room/lobby/websocket").status_code == 400
        assert client.get("/api/room/" + "x" * 33 + "/websocket").status_code == 404
    with pytest.raises(InvalidStatus) as info:
        connect(f"{server.ws_url}/api/room/{'y' * 33}/websocket", open_timeout=5, close_timeout=5)
    assert info.value.response.status_code == 404


def test_example_chat_flow_private_room_and_history(server: Server) -> None:
    room = httpx.post(server.url + "/api/room", timeout=10).text
    with join(server, room, "ann") as (ann, _):
        with join(server, room, "bob") as (bob, bob_seen):
            assert {"joined": "ann"} in bob_seen
            assert next_json(ann) == {"joined": "bob"}
            ann.send(json.dumps({"message": "first"}))
            ann.send(json.dumps({"message": "second"}))
            got_ann = [next_json(ann), next_json(ann)]
            got_bob = [next_json(bob), next_json(bob)]
            assert got_ann == got_bob
            assert [m["message"] for m in got_ann] == ["first", "second"]
            assert all(m["name"] == "ann" for m in got_ann)
            assert got_ann[0]["timestamp"] < got_ann[1]["timestamp"]
        assert next_json(ann) == {"quit": "bob"}
    # history survives a restart
    assert server.stop() == 0
    server.start()
    with join(server, room, "carl") as (_, carl_seen):
        messages = [m for m in carl_seen if "message" in m]
        assert [m["message"] for m in messages] == ["first", "second"]


def test_example_limits_and_rate_limit(server: Server) -> None:
    with connect(
        f"{server.ws_url}/api/room/limits/websocket", open_timeout=5, close_timeout=5
    ) as long_name:
        long_name.send(json.dumps({"name": "n" * 33}))
        assert next_json(long_name) == {"error": "Name too long."}
        with pytest.raises(ConnectionClosed):
            long_name.recv(timeout=5)
        assert long_name.close_code == 1009
    with join(server, "limits", "dan") as (ws, _):
        ws.send(json.dumps({"message": "m" * 257}))
        assert next_json(ws) == {"error": "Message too long."}
        limited = False
        for i in range(12):
            ws.send(json.dumps({"message": f"spam {i}"}))
            if next_json(ws).get("error", "").startswith("Your IP is being rate-limited"):
                limited = True
                break
        assert limited
