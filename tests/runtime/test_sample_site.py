"""The on-disk sample site tests/sites/basic, end to end through TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kitpy.testing import TestClient

BASIC = Path(__file__).parent.parent / "sites" / "basic"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(BASIC) as client:
        yield client


def test_hooks_sequence_and_locals(client: TestClient) -> None:
    response = client.get("/", cookies={"user": "ada"})
    assert response.json() == {"seen_by": ["timing", "auth"], "user": "ada"}
    assert response.headers["x-site"] == "basic"


def test_matchers_and_helpers(client: TestClient) -> None:
    assert client.get("/blog").text == "blog index"
    assert client.get("/blog/hello").text == "Hello"
    assert client.get("/blog/hello-2").status_code == 404


def test_group_route(client: TestClient) -> None:
    assert client.get("/users").json() == {"route": "/(admin)/users"}
    assert client.post("/users").status_code == 201


def test_static_shadows_route(client: TestClient) -> None:
    assert client.get("/robots.txt").text == "User-agent: *\n"
    assert client.get("/app.js").headers["x-site"] == "basic"


def test_handle_error(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"message": "basic site failed", "kind": "RuntimeError"}


def test_counter_object(client: TestClient) -> None:
    assert client.get("/api/counter/a").json() == {"count": 1, "greeting": "hello"}
    assert client.get("/api/counter/a").json()["count"] == 2
    with client.websocket("/api/counter/a") as ws:
        ws.send_text("hit")
        assert ws.receive_text() == "hit:3"
    assert not (BASIC / ".kitpy").exists()
